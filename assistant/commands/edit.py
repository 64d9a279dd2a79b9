"""``assistant edit FILE``: open the terminal editor, against a running server or one started
in-process (offline without a key, Sonnet/Haiku with one, the emulator with ``--emulator``)."""

from __future__ import annotations

import os
import sys
from contextlib import ExitStack
from pathlib import Path


def run(args) -> int:
    from tui.app import EditorApp

    from ..config import load_settings
    from ..endpoint import endpoint_problem

    path = Path(args.file)
    if path.is_dir():
        print(f"assistant edit: {path} is a directory", file=sys.stderr)
        return 2
    problem = endpoint_problem(args.server) if args.server else ""
    if problem:  # an editor that could never reach its server: said now, not in its status bar
        print(f"assistant edit: --server {problem}", file=sys.stderr)
        return 2
    if not path.exists() and not path.parent.is_dir():
        # Before any server starts: a text typed here could never be saved (nor its recovery
        # copy written), so it is refused rather than trapped.
        print(
            f"assistant edit: cannot open {path}: the directory {path.parent} does not exist",
            file=sys.stderr,
        )
        return 2
    with ExitStack() as stack:
        if args.server:
            url = args.server
            token = args.token or os.environ.get("ASSISTANT_TOKEN")
        else:
            from server.runner import ServerThread

            settings = load_settings()
            try:
                srv = stack.enter_context(ServerThread(settings, emulator=bool(args.emulator)))
            except Exception as exc:
                print(f"assistant edit: could not start the server: {exc}", file=sys.stderr)
                return 1
            url, token = srv.ws_url, srv.token
        try:
            app = EditorApp(path, server_url=url, token=token)
        except (OSError, UnicodeDecodeError) as exc:
            print(f"assistant edit: cannot open {path}: {exc}", file=sys.stderr)
            return 2
        app.run()
    return app.return_code or 0
