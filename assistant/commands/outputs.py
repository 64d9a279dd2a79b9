"""Where a command will write its report: checked before a run that takes minutes, for every
command that writes one (``bench``'s --json/--markdown, ``bench --server``'s --json/--junit)."""

from __future__ import annotations

import os
from pathlib import Path


def check_output_path(name: str | None, option: str) -> None:
    """OptionError unless a report could be written to ``name``: checked before the run, which
    takes minutes (``--json /nonexistent/x.json`` once ran the whole bench, then crashed)."""
    from ..emulator.options import OptionError

    if not name:
        return
    path = Path(name)
    directory = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise OptionError(f"{option} {name}: is a directory")
    if not directory.is_dir():
        raise OptionError(f"{option} {name}: the directory {directory} does not exist")
    if not os.access(directory, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise OptionError(f"{option} {name}: not writable")
