"""What a writer gets, counted from the WebSocket frames either end of a connection sees.

The server (for ``/metrics``) and the terminal editor (for its status bar) both see the same
frames: ``suggest`` and ``accept`` going out from the editor, ``delta``/``done``/``cancelled``/
``error`` coming back. From them this rebuilds what was on screen, the way a client shows it
(the latest id's text; the rest of a ghost the writer types into), and feeds it to
:class:`assistant.usefulness.UsefulnessTracker`, so both count shown, accepted, characters saved
and pause -> visible exactly as the benchmark does. Sans-I/O: the caller passes the times.
"""

from __future__ import annotations

from .usefulness import Usefulness, UsefulnessTracker


class FrameUsefulness:
    def __init__(self, tracker: UsefulnessTracker | None = None) -> None:
        self.tracker = tracker or UsefulnessTracker()
        self._latest: int | None = None  # the newest suggest id
        self._doc = ""  # its text before the cursor
        self._streamed = ""  # what its deltas have shown so far
        self._after_accept = False  # the next suggest is the edit an accept made

    @property
    def counts(self) -> Usefulness:
        return self.tracker.counts

    def suggest(self, t: float, fid: int, prefix: str) -> None:
        """The editor sent ``suggest``: a key was typed (or an accept inserted text)."""
        if self._after_accept:
            self._after_accept = False
        else:
            self.tracker.key(t, "type")
        # What is left of the ghost after what was typed (the text before the cursor and the
        # ghost, compared after the old text before the cursor: no copy of the document).
        ghost, doc = self.tracker.ghost_text, self._doc
        rest = ""
        if ghost and prefix.startswith(doc):
            typed = prefix[len(doc) :]
            if ghost.startswith(typed):
                rest = ghost[len(typed) :]
        self._latest, self._doc, self._streamed = fid, prefix, ""
        self.tracker.ghost(t, prefix, rest)

    def accept(self, t: float, chars: int) -> None:
        """The editor sent ``accept`` (Tab or a word)."""
        self.tracker.key(t, "accept", chars)
        self._after_accept = True

    def frame(self, t: float, frame: dict) -> None:
        """A frame from the server, at the time the editor gets it (or the server sends it)."""
        kind = frame.get("type")
        if frame.get("id") != self._latest or self._latest is None:
            return  # only the newest id's frames are ever on screen
        if kind == "delta":
            self._streamed += str(frame.get("text") or "")
            self.tracker.ghost(t, self._doc, self._streamed)
        elif kind == "done":
            self.tracker.ghost(t, self._doc, str(frame.get("text") or ""))
        elif kind in ("cancelled", "error"):
            self.tracker.ghost(t, self._doc, "")

    def finish(self, t: float) -> Usefulness:
        return self.tracker.finish(t)
