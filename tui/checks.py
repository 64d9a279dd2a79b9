"""The terminal editor's corrections as you type: the server's ``check`` frames kept as marks on
the text, each underlined and applied with one key (F8; F7 is TextArea's select all).

A mark holds the text it flags (``quote``). The server's offsets are for the text it was sent,
and the writer may have typed since (a model check comes a second or two later), so a new mark
is placed where its quote is: at its offsets, or else at the nearest place within ``DRIFT``
code points. From then on each edit moves the marks after it, and drops a mark it touches: that
sentence was edited, and the server checks its new text. Nothing here changes the text; the app
applies a mark as one edit.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .document_sync import single_change

DRIFT = 200  # how far a mark's quote may have moved since its check was sent
NEAR = 80  # F8 with no mark under the cursor applies the nearest within this many code points


@dataclass(frozen=True, slots=True)
class Mark:
    start: int
    end: int
    quote: str
    replacement: str
    message: str


class CheckMarks:
    """The marks shown on one document."""

    def __init__(self) -> None:
        self.marks: list[Mark] = []
        self.text = ""  # the text the marks are placed on

    def on_check(self, frame: dict, text: str) -> None:
        """A ``check`` frame replaces every mark inside its sentence; malformed findings are
        ignored."""
        try:
            lo, hi = int(frame["sentence"]["start"]), int(frame["sentence"]["end"])
            found = [
                Mark(
                    int(f["start"]),
                    int(f["end"]),
                    str(f["quote"]),
                    str(f["replacement"]),
                    str(f.get("message") or ""),
                )
                for f in frame["findings"]
            ]
        except (KeyError, TypeError, ValueError):
            return
        self.marks = [m for m in self.marks if not (lo <= m.start and m.end <= hi)]
        for mark in found:
            placed = _relocate(mark, text)
            if placed is not None and all(
                placed.end <= k.start or k.end <= placed.start for k in self.marks
            ):
                self.marks.append(placed)
        self.marks.sort(key=lambda m: m.start)
        self.text = text

    def edited(self, text: str) -> None:
        """The text changed (one span, as the editor reports each edit): move the marks after
        it, drop those it touched."""
        change = single_change(self.text, text)
        self.text = text
        if change is None or not self.marks:
            return
        start, end, inserted = change
        shift = len(inserted) - (end - start)
        kept = []
        for m in self.marks:
            if m.end < start or (m.end == start and start < end):
                kept.append(m)
            elif m.start > end or (m.start == end and start < end):
                kept.append(replace(m, start=m.start + shift, end=m.end + shift))
        self.marks = kept

    def nearest(self, cursor: int) -> Mark | None:
        """The mark under the cursor, else the nearest within ``NEAR``."""
        best, gap = None, NEAR + 1
        for mark in self.marks:
            d = (
                0
                if mark.start <= cursor <= mark.end
                else min(abs(cursor - mark.start), abs(cursor - mark.end))
            )
            if d < gap:
                best, gap = mark, d
        return best

    def remove(self, mark: Mark) -> None:
        self.marks = [m for m in self.marks if m != mark]


def _relocate(mark: Mark, text: str) -> Mark | None:
    if not mark.quote:
        return None
    if text[mark.start : mark.end] == mark.quote:
        return mark
    lo = max(0, mark.start - DRIFT)
    window = text[lo : mark.end + DRIFT]
    spots = []
    at = window.find(mark.quote)
    while at >= 0:
        spots.append(lo + at)
        at = window.find(mark.quote, at + 1)
    if not spots:
        return None
    start = min(spots, key=lambda s: abs(s - mark.start))
    return replace(mark, start=start, end=start + len(mark.quote))
