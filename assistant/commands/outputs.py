"""Options checked before a run that takes minutes: where a command will write its report, for
every command that writes one (``bench``'s --json/--markdown, ``bench --server``'s --json/--junit),
and how long the bench's documents are (``--lead-in``, ``--lead-out``, with or without
``--server``)."""

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


# Every suggest frame carries the whole document, and a server refuses frames over 1 MiB by
# default (``max_frame_bytes``); a prompt sends at most 64 KB of it anyway.
MAX_DOCUMENT_CHARS = 262_144


def document_chars(args) -> tuple[int, int]:
    """``--lead-in`` and ``--lead-out``: characters of existing text before and after the
    cursor, 0 or more (OptionError otherwise). The built-in bench and ``--server`` share them."""
    from ..emulator.options import OptionError

    chars = []
    for dest, flag in (("lead_in", "--lead-in"), ("lead_out", "--lead-out")):
        value = getattr(args, dest, 0) or 0
        if value < 0:
            raise OptionError(f"{flag} must be 0 or more characters, not {value}")
        chars.append(value)
    if sum(chars) > MAX_DOCUMENT_CHARS:
        raise OptionError(
            f"--lead-in and --lead-out come to {sum(chars):,} characters; at most "
            f"{MAX_DOCUMENT_CHARS:,} (every suggest frame carries the whole document)"
        )
    return chars[0], chars[1]
