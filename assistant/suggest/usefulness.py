"""What a writer gets from the suggestions: shown, accepted, characters saved, and how soon a
suggestion is on screen when they pause. Sans-I/O: fed what happened (keys pressed, the ghost
text on screen) with the caller's timestamps, so the benchmark's typists, the server's /metrics
and tests all count the same way.

Definitions (the field's, chiefly Continue's and Copilot's telemetry):

- A **suggestion** is one ghost as the writer sees it: from the moment ghost text appears until it
  disappears. Typing through it (the typed character is the ghost's next one), accepting part of
  it, or more of it streaming in keeps it the same suggestion, whatever request ids it spans.
- **Shown**: on screen for at least 250 ms (Continue's rule), or accepted.
- **Accepted**: the writer took any of it (Tab, or word by word) within 10 s of it appearing.
  **Rejected**: shown and not accepted within 10 s.
- **Accepted characters**: all the text taken; **characters saved** subtracts one for each accept
  key pressed (a Tab that takes "the" saves two keystrokes, not three).
- **Pause**: the writer stops typing for at least 300 ms after a typing key (a character or a
  backspace). When the caller knows the writer's plan (the benchmark's typists replay a trace,
  so the gap they meant to leave is known) that plan decides, so every strategy is measured at
  the same pauses, whatever its ghosts made the typist do; otherwise (a live server) the gap
  observed decides: no key for 300 ms, or the next key is an accept (the writer stopped to
  read). **Pause -> visible**: from that typing key to the first moment a suggestion is on
  screen (0 when one already was), until the writer's next key; a pause that ends with nothing on
  screen counts as a miss (reported as a share, not as a latency).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

SHOWN_MS = 250.0
REJECT_AFTER_S = 10.0
PAUSE_MS = 300.0

KeyKind = Literal["type", "backspace", "accept"]


@dataclass
class Usefulness:
    """Counts for one writer (or many: ``+`` adds them up)."""

    typed_keys: int = 0  # characters and backspaces
    accept_keys: int = 0  # Tab / Ctrl+Right presses
    suggestions: int = 0  # ghosts that appeared at all
    shown: int = 0
    accepted: int = 0
    rejected: int = 0
    accepted_chars: int = 0
    pauses: int = 0
    pauses_with_suggestion: int = 0
    pause_to_visible_ms: list[float] = field(default_factory=list)

    def __add__(self, other: Usefulness) -> Usefulness:
        return Usefulness(
            self.typed_keys + other.typed_keys,
            self.accept_keys + other.accept_keys,
            self.suggestions + other.suggestions,
            self.shown + other.shown,
            self.accepted + other.accepted,
            self.rejected + other.rejected,
            self.accepted_chars + other.accepted_chars,
            self.pauses + other.pauses,
            self.pauses_with_suggestion + other.pauses_with_suggestion,
            self.pause_to_visible_ms + other.pause_to_visible_ms,
        )

    @property
    def keys(self) -> int:
        return self.typed_keys + self.accept_keys

    @property
    def chars_saved(self) -> int:
        """Accepted characters net of the keys pressed to accept them."""
        return self.accepted_chars - self.accept_keys

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.shown if self.shown else 0.0

    @property
    def visible_at_pause_share(self) -> float:
        return self.pauses_with_suggestion / self.pauses if self.pauses else 0.0

    def saved_share(self, chars_written: int) -> float:
        """Share of the text written that the writer did not have to type."""
        return self.chars_saved / chars_written if chars_written > 0 else 0.0


def per_thousand_saved(amount: float, chars_saved: int) -> float | None:
    """``amount`` (model calls, dollars) per 1,000 characters saved; None when none were."""
    return 1000 * amount / chars_saved if chars_saved > 0 else None


def is_continuation(old_doc: str, old_ghost: str, doc: str, ghost: str) -> bool:
    """Whether ghost ``ghost`` after ``doc`` is still the suggestion ``old_ghost`` after
    ``old_doc``: the writer typed (or accepted) into it, or more of it streamed in."""
    if not ghost or not old_ghost or not (doc is old_doc or doc.startswith(old_doc)):
        return False
    # Both texts start with ``old_doc``; compare what follows it, without copying the document
    # (it can be 100 KB, and this runs for every frame a server sends).
    new = doc[len(old_doc) :] + ghost
    return old_ghost.startswith(new) or new.startswith(old_ghost)


@dataclass
class _Episode:
    start: float
    doc: str
    ghost: str
    accepted: bool = False


class UsefulnessTracker:
    """Feed ``key`` and ``ghost`` in time order (and ``finish`` at the end); read ``counts``.

    ``ghost(t, doc, text)``: from time ``t`` the screen shows ``text`` after the cursor, with
    ``doc`` before it ("" = nothing shown). ``key(t, kind, chars)``: a key press; ``chars`` is
    what an accept key took. After every key, call ``ghost`` with what the key left on screen
    (the rest of a typed-through ghost, or nothing).
    """

    def __init__(
        self,
        shown_ms: float = SHOWN_MS,
        reject_after_s: float = REJECT_AFTER_S,
        pause_ms: float = PAUSE_MS,
    ):
        self.shown_s = shown_ms / 1000
        self.reject_after_s = reject_after_s
        self.pause_s = pause_ms / 1000
        self.counts = Usefulness()
        self._episode: _Episode | None = None
        self._pause_from: float | None = None  # the last typing key, while no key followed it
        self._pause_planned: bool | None = None  # whether the writer means to pause after it
        self._visible_at: float | None = None  # first time a ghost was on screen since then

    # -- what the typist (or a runtime) reads --------------------------------------------------

    @property
    def ghost_text(self) -> str:
        return self._episode.ghost if self._episode else ""

    @property
    def ghost_since(self) -> float | None:
        """When the suggestion now on screen first appeared (None: nothing on screen)."""
        return self._episode.start if self._episode else None

    # -- events ----------------------------------------------------------------------------------

    def key(self, t: float, kind: KeyKind, chars: int = 0, pause: bool | None = None) -> None:
        """``pause``: for a typing key, whether the writer means to stop for 300 ms or more
        after it (None: unknown, the gap observed decides)."""
        self._end_pause(t, ended_by_accept=kind == "accept")
        if kind == "accept":
            self.counts.accept_keys += 1
            self.counts.accepted_chars += max(0, chars)
            ep = self._episode
            if ep is not None and t - ep.start <= self.reject_after_s:
                ep.accepted = True
        else:
            self.counts.typed_keys += 1
            self._pause_from, self._pause_planned = t, pause
            self._visible_at = None  # set by the ghost() that says what the key left on screen

    def ghost(self, t: float, doc: str, text: str) -> None:
        ep = self._episode
        if ep is not None and is_continuation(ep.doc, ep.ghost, doc, text):
            ep.doc, ep.ghost = doc, text
        else:
            if ep is not None:
                self._close(t)
            if not text:
                return
            self._episode = _Episode(t, doc, text)
            self.counts.suggestions += 1
        if self._pause_from is not None and self._visible_at is None:
            self._visible_at = t

    def finish(self, t: float) -> Usefulness:
        self._end_pause(t, ended_by_accept=False)
        if self._episode is not None:
            self._close(t)
        return self.counts

    # -- bookkeeping -----------------------------------------------------------------------------

    def _close(self, t: float) -> None:
        ep, self._episode = self._episode, None
        assert ep is not None
        c = self.counts
        if ep.accepted:
            c.shown += 1
            c.accepted += 1
        elif t - ep.start >= self.shown_s:
            c.shown += 1
            c.rejected += 1

    def _end_pause(self, t: float, ended_by_accept: bool) -> None:
        start, self._pause_from = self._pause_from, None
        if start is None:
            return
        planned = self._pause_planned
        if planned is False or (
            planned is None and not ended_by_accept and t - start < self.pause_s
        ):
            return
        c = self.counts
        c.pauses += 1
        if self._visible_at is not None and self._visible_at <= t:
            c.pauses_with_suggestion += 1
            c.pause_to_visible_ms.append((self._visible_at - start) * 1000)


def total(parts: Sequence[Usefulness]) -> Usefulness:
    out = Usefulness()
    for p in parts:
        out = out + p
    return out
