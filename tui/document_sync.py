"""The client's half of protocol 1.1 (docs/protocol.md), sans I/O: which ``open`` or ``edit``
frame brings the server's copy of the document up to the editor's text.

The server keeps the text once it has been opened; each keystroke then costs one small ``edit``
(the changed span, in code points) and a ``suggest`` that names the resulting version, instead
of the whole text before the cursor. :class:`DocumentSync` remembers what the server was last
sent and computes that span with block comparisons, so even a 100 KB document is diffed in
microseconds. After a reconnect, a ``resync`` error or any refused ``open``/``edit``, call
:meth:`reset`: the next frame is a whole ``open`` again. The editor's text is never touched.
"""

from __future__ import annotations

import json
from collections.abc import Callable

_BLOCK = 256


def common_prefix(a: str, b: str) -> int:
    """Length of the longest common prefix of ``a`` and ``b`` (code points)."""
    n = min(len(a), len(b))
    lo, step = 0, _BLOCK
    while lo < n:  # gallop over equal blocks (C comparisons), then bisect the differing one
        hi = min(n, lo + step)
        if a[lo:hi] != b[lo:hi]:
            while hi - lo > 8:
                mid = (lo + hi) // 2
                if a[lo:mid] == b[lo:mid]:
                    lo = mid
                else:
                    hi = mid
            while lo < hi and a[lo] == b[lo]:
                lo += 1
            return lo
        lo, step = hi, step * 2
    return n


def common_suffix(a: str, b: str, limit: int) -> int:
    """Length of the longest common suffix of ``a`` and ``b``, at most ``limit``."""
    la, lb = len(a), len(b)
    n = min(la, lb, limit)
    lo, step = 0, _BLOCK
    while lo < n:
        hi = min(n, lo + step)
        if a[la - hi : la - lo] != b[lb - hi : lb - lo]:
            while hi - lo > 8:
                mid = (lo + hi) // 2
                if a[la - mid : la - lo] == b[lb - mid : lb - lo]:
                    lo = mid
                else:
                    hi = mid
            while lo < hi and a[la - 1 - lo] == b[lb - 1 - lo]:
                lo += 1
            return lo
        lo, step = hi, step * 2
    return n


def single_change(old: str, new: str) -> tuple[int, int, str] | None:
    """The one ``[start, end, text]`` change (code points into ``old``) that turns ``old`` into
    ``new``, or None when they are equal."""
    if old == new:
        return None
    start = common_prefix(old, new)
    tail = common_suffix(old, new, min(len(old), len(new)) - start)
    return start, len(old) - tail, new[start : len(new) - tail]


class DocumentSync:
    """What the server holds of this editor's document, and the frame that updates it."""

    def __init__(self) -> None:
        self.version: int | None = None  # the id of the last open/edit sent; None: not open
        self._text = ""
        self._cursor = 0

    def reset(self) -> None:
        """The server's copy is gone or unknown (new connection, ``resync``, refused frame)."""
        self.version = None

    def holds(self, text: str, cursor: int) -> bool:
        """Whether the server's copy is already ``text`` with the cursor at ``cursor``."""
        return self.version is not None and cursor == self._cursor and text == self._text

    def frame(self, text: str, cursor: int, frame_id: int) -> dict | None:
        """The ``open`` or ``edit`` (with id ``frame_id``) that makes the server's copy ``text``
        with the cursor at ``cursor``; None when it already is. Once the frame is sent, its id is
        the document's version: a ``suggest`` names it."""
        if self.version is None:
            frame = {"type": "open", "id": frame_id, "text": text, "cursor": cursor}
        else:
            edit = self._edit(text, cursor)
            if edit is None:
                return None
            frame = {"type": "edit", "id": frame_id, **edit}
        self.version, self._text, self._cursor = frame_id, text, cursor
        return frame

    def suggest_frames(self, text: str, cursor: int, next_id: Callable[[], int]) -> list[dict]:
        """The frames that ask for a suggestion at ``cursor`` in ``text``; the last is the
        ``suggest``. One frame per keystroke once the document is open: the ``suggest`` carries
        the edit itself (its id becomes the version), or names the version when nothing
        changed. The first time: an ``open``, then a ``suggest`` naming it."""
        if self.version is None:
            opened = self.frame(text, cursor, next_id())
            return [opened, {"type": "suggest", "id": next_id(), "version": self.version}]
        frame_id = next_id()
        edit = self._edit(text, cursor)
        if edit is None:
            return [{"type": "suggest", "id": frame_id, "version": self.version}]
        self.version, self._text, self._cursor = frame_id, text, cursor
        return [{"type": "suggest", "id": frame_id, **edit}]

    def _edit(self, text: str, cursor: int) -> dict | None:
        change = single_change(self._text, text)
        if change is None and cursor == self._cursor:
            return None
        changes = [list(change)] if change else []
        return {"base": self.version, "changes": changes, "cursor": cursor}

    def refused(self, frame_id: int | None, code: str) -> None:
        """An ``error`` frame arrived: after a ``resync``, or a refusal of the frame that made the
        current version, the server's copy is unknown and the next frame must be an ``open``."""
        if code == "resync" or (frame_id is not None and frame_id == self.version):
            self.reset()


def fits(text: str, limits: dict) -> bool:
    """Whether the server (its ``ready`` frame's ``limits``) can hold ``text`` as a document:
    at most ``max_document_chars`` code points, and one ``open`` frame carrying it."""
    if len(text) > int(limits.get("max_document_chars") or 120_000):
        return False
    room = int(limits.get("max_frame_bytes") or 1_048_576) - 96
    return len(text) * 6 + 2 <= room or len(json.dumps(text, ensure_ascii=False).encode()) <= room


def speaks_documents(ready: dict | None) -> bool:
    """Whether the server's ``ready`` frame announces protocol 1.1 (open / edit)."""
    if not ready or ready.get("protocol") != 1:
        return False
    minor = ready.get("protocol_minor")
    return isinstance(minor, int) and minor >= 1
