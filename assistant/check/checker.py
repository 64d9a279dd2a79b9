"""One document's checks as you type, sans-I/O: which finished sentences are due, and what was
found in each, cached by the sentence's text.

The cache is what makes checking every sentence cheap and quiet: a sentence is checked once per
text it has ever had (moving it, or typing elsewhere, checks nothing again), and a result is
only ever shown for the exact text it was found in, so a sentence edited since is never flagged
with a stale finding. The model's pass (with a key) is asked for only after a longer pause
(``MODEL_PAUSE_S``): none while the writer types fast.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from .offline import CheckFinding, offline_findings
from .sentences import PAUSE_S, Sentence, finished_sentences
from .spelling import Speller

MODEL_PAUSE_S = 1.0  # no keystroke for this long: ask the model about the finished sentences
MAX_SENTENCES = 4096  # sentence texts remembered per document (about 400 KB of prose)


def merge(*groups: tuple[CheckFinding, ...]) -> tuple[CheckFinding, ...]:
    """The findings of several checkers, in order; of findings that overlap the first kept."""
    kept: list[CheckFinding] = []
    for group in groups:
        for f in group:
            if all(f.end <= k.start or k.end <= f.start for k in kept):
                kept.append(f)
    return tuple(sorted(kept, key=lambda f: f.start))


class SentenceChecker:
    """What is due for one document. ``speller()`` returns the speller, or None while it loads
    (then nothing is due yet)."""

    def __init__(
        self,
        speller: Callable[[], Speller | None],
        *,
        pause_s: float = PAUSE_S,
        model_pause_s: float = MODEL_PAUSE_S,
        max_sentences: int = MAX_SENTENCES,
    ) -> None:
        self._speller = speller
        self.pause_s = pause_s
        self.model_pause_s = model_pause_s
        self.max_sentences = max_sentences
        self._offline: OrderedDict[str, tuple[CheckFinding, ...]] = OrderedDict()
        self._model: OrderedDict[str, tuple[CheckFinding, ...]] = OrderedDict()
        self._asked: set[str] = set()  # sent to the model, no answer yet
        self._opened: set[str] = set()  # finished when the document was opened: not the model's
        self.checked = 0  # sentences the offline rules ran on (a cache miss each)

    def due(
        self, text: str, cursor: int, idle_s: float, *, cut: tuple[bool, bool] = (False, False)
    ) -> list[Sentence]:
        """Finished sentences of ``text`` never checked offline; checks them (cached). Nothing
        while the speller is loading: a check without it would look clean and be wrong.
        ``cut``: ``text`` is a piece of the document (see ``finished_sentences``)."""
        speller = self._speller()
        if speller is None:
            return []
        out = []
        for sentence in finished_sentences(text, cursor, idle_s, self.pause_s, cut=cut):
            if sentence.text in self._offline:
                continue
            self.checked += 1
            self._remember(
                self._offline, sentence.text, tuple(offline_findings(sentence.text, speller))
            )
            out.append(sentence)
        return out

    def findings(self, sentence: str) -> tuple[CheckFinding, ...]:
        """What was found in ``sentence`` (offsets into it): the offline rules' and the model's."""
        offline = self._offline.get(sentence)
        if offline is None:
            offline = tuple(offline_findings(sentence, self._speller()))
        return merge(self._model.get(sentence, ()), offline)

    def opened(self, text: str, cursor: int, *, cut: tuple[bool, bool] = (False, False)) -> None:
        """The document as first seen: the sentences finished in it were not written now, so the
        model is not asked about them (no cost for opening a file); the offline rules still are."""
        for sentence in finished_sentences(text, cursor, 0.0, self.pause_s, cut=cut):
            if len(self._opened) < self.max_sentences:
                self._opened.add(sentence.text)

    def model_due(
        self, text: str, cursor: int, idle_s: float, *, cut: tuple[bool, bool] = (False, False)
    ) -> list[Sentence]:
        """Finished sentences the model has not seen, once the writer has paused long enough."""
        if idle_s < self.model_pause_s:
            return []
        out = []
        for sentence in finished_sentences(text, cursor, idle_s, self.pause_s, cut=cut):
            t = sentence.text
            if t not in self._model and t not in self._asked and t not in self._opened:
                self._asked.add(sentence.text)
                out.append(sentence)
        return out

    def model_answered(self, sentence: str, found: tuple[CheckFinding, ...]) -> None:
        self._asked.discard(sentence)
        self._remember(self._model, sentence, found)

    def model_failed(self, sentence: str) -> None:
        """The model could not answer: the sentence keeps its offline findings, not asked again
        (a failing provider is not retried sentence by sentence)."""
        self._asked.discard(sentence)
        self._remember(self._model, sentence, ())

    def _remember(self, cache: OrderedDict, sentence: str, found: tuple) -> None:
        cache[sentence] = found
        cache.move_to_end(sentence)
        while len(cache) > self.max_sentences:
            cache.popitem(last=False)
