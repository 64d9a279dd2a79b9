"""A connection's corrections as you type: each finished sentence of the document the client
last sent is checked in the background and answered with a ``check`` frame (docs/protocol.md).

The offline rules (spelling from the lexicon, doubled words) run at once, on the event loop.
With a model checker (a key), the model is asked about each finished sentence once the writer
pauses (``MODEL_PAUSE_S``), one small request at a time, and its findings replace the
sentence's earlier ``check``. What is due is decided by
:class:`~assistant.check.checker.SentenceChecker` (sans-I/O); this module adds the clock, the
tasks and the frames.

Only a window of ``WINDOW_CHARS`` either side of the cursor is looked at, so opening a long
document does not flood the client with a frame for each of its sentences, and on a keystroke
only the text around the cursor before and after it (``BEHIND_CHARS`` back, ``AHEAD_CHARS`` on):
no other sentence can have been finished by that keystroke; and nothing at all when the
keystroke typed one character that is not white space, which finishes no sentence (a sentence
is left by the space or line break after it). Splitting the whole 4,000-character window into
sentences on every keystroke cost 190 µs of CPU a keystroke in a 100 KB document; this costs
about 15 µs (docs/performance.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from assistant.check import spelling
from assistant.check.checker import SentenceChecker
from assistant.check.offline import CheckFinding
from assistant.check.sentences import Sentence, sentences
from assistant.providers.base import ProviderError

from .outbox import Outbox

WINDOW_CHARS = 2_000
BEHIND_CHARS = 600  # a keystroke may finish the sentence it left: the one before the cursor
AHEAD_CHARS = 200


def check_frame(
    version: int, sentence: Sentence, base: int, found: tuple[CheckFinding, ...], cost_usd: float
) -> dict:
    """``check``: the findings in ``sentence`` (offsets into the window at ``base``) as offsets
    in code points into the document at ``version``."""
    at = base + sentence.start
    findings = [
        {
            "start": at + f.start,
            "end": at + f.end,
            "quote": sentence.text[f.start : f.end],
            "replacement": f.replacement,
            "message": f.message,
            "source": f.source,
            "category": f.category,
        }
        for f in found
    ]
    return {
        "type": "check",
        "version": version,
        "sentence": {"start": at, "end": base + sentence.end},
        "findings": findings,
        "cost_usd": round(cost_usd, 8),
    }


def _around(was: int, now: int, length: int) -> list[tuple[int, int]]:
    """The pieces of the window a keystroke can have finished a sentence in: around the
    cursor's previous place and its new one (one piece when they are close)."""
    spans = sorted(
        (max(0, c - BEHIND_CHARS), min(length, c + AHEAD_CHARS))
        for c in {was, now}
        if 0 <= c <= length
    )
    merged: list[tuple[int, int]] = []
    for lo, hi in spans:
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return merged


class CheckRuntime:
    """Checks for one connection. ``account(model, usage) -> cost`` books what a model check
    spent (the connection's total, /metrics, the hub's ledger); ``model`` is the hub's model
    checker (``check(document_text, sentence, document=key)``), or None offline;
    ``model_available()`` says whether a model request now would reach the model (not while the
    provider is parked on a refused key or a rate limit: the sentences wait for it)."""

    def __init__(
        self,
        outbox: Outbox,
        *,
        account: Callable[[str, Any], float],
        model: Any | None = None,
        model_available: Callable[[], bool] = lambda: True,
        document: str = "",
        enabled: bool = True,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.outbox = outbox
        self._account = account
        self.model = model
        self._model_available = model_available
        self.document = document  # the key the model checker keeps this writer's text under
        self.checker = SentenceChecker(spelling.ready)
        self.version = -1
        self._window = ""  # the text around the cursor
        self._base = 0  # where the window starts in the document
        self._cursor = 0  # in the window
        self._cut = (False, False)  # the window starts / ends inside a line of the document
        self._previous_cursor = 0  # in the window as it was at the previous keystroke
        self._previous_length = 0  # of the document at the previous keystroke
        self._full: tuple[str, str] = ("", "")  # the document (prefix, suffix), joined on use
        self._typed_at = 0.0
        self._unsent_cost = 0.0  # a model check whose sentence was gone: told with the next
        self._timer: asyncio.TimerHandle | None = None
        self._loading: asyncio.Task | None = None
        self._model_task: asyncio.Task | None = None
        self._model_queue: list[Sentence] = []
        self.model_pause_seen = asyncio.Event()  # the writer paused long enough for the model
        self.model_asked = 0  # sentences queued for the model
        self.closing = not enabled  # (checks turned off: nothing is ever looked at)

    # ------------------------------------------------------------------------- from frames

    def observe(self, version: int, prefix: str, suffix: str) -> None:
        """The document as the client last sent it, around its cursor (a v1 ``suggest``, or the
        1.1 document after an ``open``/``edit``/``suggest``): check what the writer finished,
        and look again on a pause."""
        if self.closing:
            return
        before, after = prefix[-WINDOW_CHARS:], suffix[:WINDOW_CHARS]
        first = self.version < 0
        previous = self._base + self._previous_cursor  # in the document
        self.version = version
        self._window = before + after
        self._base = len(prefix) - len(before)
        self._cursor = len(before)
        head = len(before) < len(prefix) and prefix[-len(before) - 1] != "\n"
        tail = len(after) < len(suffix) and suffix[len(after)] != "\n"
        self._cut = (head, tail)
        self._full = (prefix, suffix)
        self._typed_at = self.loop.time()
        if first:
            self.checker.opened(self._window, self._cursor, cut=self._cut)
        if spelling.ready() is None and self._loading is None:
            self._loading = self.loop.create_task(self._load_speller())
        length = len(prefix) + len(suffix)
        typed_one = (
            length == self._previous_length + 1
            and len(prefix) == previous + 1
            and not prefix[-1].isspace()
        )
        if first:
            self._check(0.0)
        elif not typed_one:  # around where the cursor was and where it is
            was = previous - self._base
            for lo, hi in _around(was, self._cursor, len(self._window)):
                self._check(0.0, lo, hi)
        self._previous_cursor = self._cursor
        self._previous_length = length
        if self._timer is None:
            self._arm(self.checker.pause_s)

    def stop(self) -> None:
        self.closing = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for task in (self._loading, self._model_task):
            if task is not None:
                task.cancel()
        if self.model is not None:
            self.model.forget(self.document)  # its text is never a base for another writer

    # ----------------------------------------------------------------------------- checks

    def _arm(self, after_s: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_later(max(0.0, after_s), self._on_pause)

    def _on_pause(self) -> None:
        """One timer per connection, re-armed for the rest of the pause when the writer typed
        since it was set (cheaper than a new timer a keystroke)."""
        self._timer = None
        if self.closing:
            return
        idle = self.loop.time() - self._typed_at
        if idle < self.checker.pause_s:
            self._arm(self.checker.pause_s - idle)
            return
        self._check(idle)
        if self.model is None:
            return
        if idle < self.checker.model_pause_s:
            self._arm(self.checker.model_pause_s - idle)
            return
        self.model_pause_seen.set()
        if not self._model_available():
            return
        due = self.checker.model_due(self._window, self._cursor, idle, cut=self._cut)
        self.model_asked += len(due)
        self._model_queue.extend(due)
        if self._model_queue and (self._model_task is None or self._model_task.done()):
            self._model_task = self.loop.create_task(self._ask_model())

    def _check(self, idle_s: float, lo: int = 0, hi: int | None = None) -> None:
        """Check what is finished in the window, or in its piece ``lo:hi``."""
        window = self._window
        hi = len(window) if hi is None else hi
        cut = (
            self._cut[0] if lo == 0 else window[lo - 1] != "\n",
            self._cut[1] if hi == len(window) else window[hi] != "\n",
        )
        piece = window[lo:hi] if lo or hi < len(window) else window
        for sentence in self.checker.due(piece, self._cursor - lo, idle_s, cut=cut):
            self._send(sentence, self.checker.findings(sentence.text), at=lo)

    def _send(self, sentence: Sentence, found: tuple, cost: float = 0.0, at: int = 0) -> None:
        cost, self._unsent_cost = cost + self._unsent_cost, 0.0
        frame = check_frame(self.version, sentence, self._base + at, found, cost)
        self.outbox.emit("check", None, frame)

    async def _load_speller(self) -> None:
        """Build the speller in a thread (about 0.85 s once per process: the lexicon, then its
        deletes index), then check what was finished meanwhile."""
        try:
            await asyncio.to_thread(spelling.speller)
        except Exception:
            logging.getLogger("assistant.server").exception("the speller failed to load")
            return
        if not self.closing:
            self._check(self.loop.time() - self._typed_at)

    async def _ask_model(self) -> None:
        """The model's pass over the queued sentences, one request at a time. A result is sent
        only if its sentence is still in the document, unchanged; else it is only cached (a
        stale result is never shown on other text)."""
        while self._model_queue and not self.closing:
            sentence = self._model_queue.pop(0)
            try:
                result = await self.model.check(
                    "".join(self._full), sentence.text, document=self.document
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not isinstance(exc, ProviderError):
                    logging.getLogger("assistant.server").exception("model check failed")
                self.checker.model_failed(sentence.text)
                continue
            cost = self._account(result.model, result.usage)
            self.checker.model_answered(sentence.text, result.findings)
            current = next((s for s in sentences(self._window) if s.text == sentence.text), None)
            if current is None:
                self._unsent_cost += cost
                continue
            self._send(current, self.checker.findings(sentence.text), cost)
