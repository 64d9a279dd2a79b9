"""``python -m assistant.bench``: the load part's server child (``--serve-child PROFILE``, started
by the suggestion bench), or else ``assistant bench`` with these arguments."""

import sys

if len(sys.argv) == 3 and sys.argv[1] == "--serve-child":
    from .suggestions import _serve_child

    _serve_child(sys.argv[2])
else:
    from ..cli import main

    raise SystemExit(main(["bench", *sys.argv[1:]]))
