"""The server's copy of one client's document (protocol 1.1, docs/protocol.md), sans I/O.

A 1.1 client sends its text once (``open``) and afterwards only what changed (``edit``), so a
keystroke in a 100 KB document costs the network and the server a few dozen bytes instead of the
whole text before the cursor. :class:`Document` holds that copy: the text, the cursor and the
*version*, which is the id of the ``open`` or ``edit`` frame that produced this state. An edit
names the version it was made against (its ``base``); any other base means the two copies may
differ, and the only safe answer is to ask for the whole text again (``resync``).

Offsets are code points (Python's ``str`` indices), never UTF-16 units or bytes. Every check
happens before anything changes: a refused edit leaves the copy exactly as it was.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from .protocol import BAD_REQUEST, RESYNC, TOO_LARGE, Change, EditDocument, OpenDocument

# The largest an ``open`` frame around a document can be besides the text itself:
# {"type":"open","id":9007199254740991,"text":…,"cursor":9007199254740991}
OPEN_FRAME_OVERHEAD = 96


class DocumentError(Exception):
    """An ``open`` or ``edit`` the document refuses; ``code`` is the error frame's code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class DocumentLimits:
    max_chars: int = 120_000
    max_frame_bytes: int = 1_048_576  # the whole text must still fit one ``open`` frame


def encoded_size(text: str) -> int:
    """Bytes of ``text`` as a JSON string (quotes included). JSON escapes character by character,
    so the size of a concatenation is the sum of its parts' sizes minus the extra quotes: an edit
    updates the document's size from the changed pieces alone."""
    try:
        return len(orjson.dumps(text))
    except orjson.JSONEncodeError:  # a lone surrogate: count it as the \uXXXX escape it needs
        return len(text.encode("utf-8", "backslashreplace")) + 2


class Document:
    """Text, cursor and version of one client's document, changed only by valid frames."""

    __slots__ = ("_size", "cursor", "limits", "text", "version")

    def __init__(self, version: int, text: str, cursor: int, limits: DocumentLimits) -> None:
        self.limits = limits
        size = encoded_size(text)
        self._check_size(len(text), size)
        _check_cursor(cursor, len(text))
        self.version = version
        self.text = text
        self.cursor = cursor
        self._size = size  # encoded_size(self.text), kept up to date edit by edit

    def edit(self, version: int, base: int, changes: tuple[Change, ...], cursor: int) -> None:
        """Apply ``changes`` (offsets into the text at ``base``, in order, not overlapping) and
        move the cursor; the document is then at ``version``. All or nothing."""
        if base != self.version:
            raise DocumentError(
                RESYNC,
                f"edit is against version {base} but the document is at version "
                f"{self.version}: send the whole text again with open",
            )
        text = self.text
        length, size, previous_end = len(text), self._size, 0
        for change in changes:
            if not previous_end <= change.start <= change.end <= len(text):
                raise DocumentError(
                    BAD_REQUEST,
                    f"change [{change.start}, {change.end}] is out of range or overlaps the "
                    f"one before it (text length {len(text)}, previous end {previous_end})",
                )
            previous_end = change.end
            length += len(change.text) - (change.end - change.start)
            size += encoded_size(change.text) - encoded_size(text[change.start : change.end])
        self._check_size(length, size)
        _check_cursor(cursor, length)
        if len(changes) == 1:
            c = changes[0]
            text = "".join((text[: c.start], c.text, text[c.end :]))  # (a + b + c copies a twice)
        elif changes:
            pieces, at = [], 0
            for c in changes:
                pieces += (text[at : c.start], c.text)
                at = c.end
            pieces.append(text[at:])
            text = "".join(pieces)
        self.text, self.cursor, self.version, self._size = text, cursor, version, size

    def around_cursor(self) -> tuple[str, str]:
        """(text before the cursor, text after it): what a v1 ``suggest`` would have carried."""
        return self.text[: self.cursor], self.text[self.cursor :]

    def _check_size(self, length: int, size: int) -> None:
        limits = self.limits
        if length > limits.max_chars:
            raise DocumentError(
                TOO_LARGE, f"the document would be over {limits.max_chars} characters"
            )
        if size + OPEN_FRAME_OVERHEAD > limits.max_frame_bytes:
            raise DocumentError(
                TOO_LARGE,
                f"the document would no longer fit one {limits.max_frame_bytes}-byte open frame",
            )


def _check_cursor(cursor: int, length: int) -> None:
    if not 0 <= cursor <= length:
        raise DocumentError(
            BAD_REQUEST, f"cursor {cursor} is outside the text (0 to {length} code points)"
        )


class DocumentSession:
    """One connection's document: applies ``open``/``edit`` frames and answers what text a
    ``suggest`` at a version means. Starts with no document (a v1 client never opens one)."""

    __slots__ = ("document", "limits")

    def __init__(self, limits: DocumentLimits) -> None:
        self.limits = limits
        self.document: Document | None = None

    def apply(self, frame: OpenDocument | EditDocument) -> Document:
        """The document after ``frame``; raises :class:`DocumentError` and changes nothing when
        the frame cannot be applied."""
        if isinstance(frame, OpenDocument):
            self.document = Document(frame.id, frame.text, frame.cursor, self.limits)
            return self.document
        doc = self.document
        if doc is None:
            raise DocumentError(RESYNC, "no document is open on this connection: send open")
        doc.edit(frame.id, frame.base, frame.changes, frame.cursor)
        return doc

    def around_cursor(self, version: int) -> tuple[str, str]:
        """(prefix, suffix) of the document at ``version``, which must be the current one."""
        doc = self.document
        if doc is None:
            raise DocumentError(RESYNC, "no document is open on this connection: send open")
        if doc.version != version:
            raise DocumentError(
                RESYNC,
                f"suggest is for version {version} but the document is at version "
                f"{doc.version}: send the whole text again with open",
            )
        return doc.around_cursor()
