"""Saving without ever leaving a half-written file, and a recovery copy while work is unsaved.

A save writes a temporary file in the same directory, fsyncs it, and renames it over the target
(``os.replace`` is atomic on POSIX), then fsyncs the directory so the rename itself survives a
crash. The recovery copy ``.<name>.assistant-recovery`` beside the file is written the same way
while there are unsaved changes and removed after a save; on open, a recovery copy newer than
the file (and different from it) is offered back to the user.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

RECOVERY_SUFFIX = ".assistant-recovery"


def recovery_path(path: Path) -> Path:
    return path.with_name(f".{path.name}{RECOVERY_SUFFIX}")


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8) all at once; keeps the file's permission bits."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = None
    fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(directory)


@dataclass(frozen=True)
class OpenedFile:
    text: str
    exists: bool
    recovery: str | None  # a newer, different recovery copy, when there is one


def read_text(path: Path) -> str:
    with open(path, encoding="utf-8", newline="") as fh:
        return fh.read()


def open_file(path: Path) -> OpenedFile:
    """The file's text ("" when it does not exist yet) and any recovery copy worth offering.

    Raises FileNotFoundError when neither the file nor its directory exists."""
    path = Path(path)
    try:
        text = read_text(path)
        exists = True
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        if not path.parent.is_dir():
            # Opening would work, but no save or recovery copy ever could: refuse up front
            # rather than let the writer type into a text with nowhere to go.
            raise FileNotFoundError(f"the directory {path.parent} does not exist") from None
        text, exists, mtime = "", False, float("-inf")
    recovery: str | None = None
    rpath = recovery_path(path)
    try:
        if rpath.stat().st_mtime >= mtime:
            candidate = read_text(rpath)
            if candidate != text:
                recovery = candidate
    except (FileNotFoundError, UnicodeDecodeError):
        recovery = None
    return OpenedFile(text, exists, recovery)


def save_file(path: Path, text: str) -> None:
    """Atomically write ``text`` to ``path`` and drop the recovery copy it supersedes."""
    atomic_write(Path(path), text)
    discard_recovery(path)


def write_recovery(path: Path, text: str) -> None:
    atomic_write(recovery_path(Path(path)), text)


def discard_recovery(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        recovery_path(Path(path)).unlink()
