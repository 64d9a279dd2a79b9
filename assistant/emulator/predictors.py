"""Who writes the emulated model's suggestions: how often it is right is chosen per run.

Every figure measured against an always-right model (the oracle) is an upper bound: type-through
carries almost every suggestion and a writer accepts nearly all of them. Real completion models
are right far less often (Copilot users accept about 27-30 % of shown completions), and then the
engine asks again, costs rise and a pause may find nothing on screen. So the emulator offers
three predictors, chosen per run:

- ``oracle``: the passage's next words whenever the text before the cursor is found in a known
  passage (today's behaviour, the upper bound);
- ``noisy``: with probability ``accuracy`` (P) the first word is what the writer types next, and
  each later word stays right with a decaying probability; otherwise the suggestion diverges
  with plausible words. A pure function of (seed, the request's text near the cursor), so the
  same request gets the same answer in every strategy and every repeated run, which keeps
  comparisons fair;
- ``local``: the embedded local model (a real language model) writes the text, through the
  public provider API; the run's latency profile still decides when tokens arrive.

Passages come from the built-in typing passages or from a user's plain-text file
(:func:`load_oracle_file`: passages separated by blank lines).
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from .text import _PHRASES, _oracle_continuation, _vocabulary, plausible_continuation

PREDICTORS = ("oracle", "noisy", "local")
DEFAULT_ACCURACY = 0.3
# Once the first word is right, word i (1, 2, ...) stays right with probability DECAY ** i:
# 0.85, 0.72, 0.61, ... so a right suggestion is right for about three words on average.
WORD_DECAY = 0.85
MAX_SUGGESTION_WORDS = 40  # more than any suggestion request's token cap lets through

_WORD = re.compile(r"\s*\S+")
_FRAGMENT = re.compile(r"[A-Za-z]+$")


LOCAL_MISSING = (
    "the local predictor needs the local model, which is not installed (pip install '.[local]')"
)


class PredictorUnavailable(RuntimeError):
    """The chosen predictor cannot run here (the local model is not installed)."""


class OracleFileError(ValueError):
    """A passage file that cannot be used: missing, a directory, binary or empty."""


class Predictor(Protocol):
    name: str

    def describe(self) -> str:
        """How figures name this predictor: "oracle", "noisy (P = 0.3)", "local (gemma...)"."""
        ...

    async def continuation(self, before: str, after: str, max_tokens: int) -> str:
        """The text the model writes at the cursor (before cutting to ``max_tokens``)."""
        ...


# How much text around the cursor decides a request's draw. Not the whole document: the noisy
# predictor is as often right with any far context, so a prompt that sends less of it (a
# narrower window on a long document) must meet the same draws, or a before/after comparison
# of the window compares two different sets of lucky guesses.
REQUEST_KEY_CHARS = 2_048


def _request_rng(seed: int, before: str, after: str) -> random.Random:
    near = f"{seed}\0{before[-REQUEST_KEY_CHARS:]}\0{after[:REQUEST_KEY_CHARS]}"
    digest = hashlib.sha256(near.encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


class OraclePredictor:
    """Always right where the passage is known; plausible prose elsewhere."""

    name = "oracle"

    def __init__(self, passages: Sequence[str], seed: int = 0):
        self.passages = tuple(passages)
        self.seed = seed

    def describe(self) -> str:
        return "oracle"

    def text(self, before: str, after: str = "") -> str:
        found = _oracle_continuation(before, self.passages)
        if found is not None:
            return found
        return plausible_continuation(before, _request_rng(self.seed, before, after))

    async def continuation(self, before: str, after: str, max_tokens: int) -> str:
        return self.text(before, after)


class NoisyPredictor:
    """Right about the next word with probability ``accuracy``, then right for a few words."""

    name = "noisy"

    def __init__(
        self,
        passages: Sequence[str],
        seed: int = 0,
        accuracy: float = DEFAULT_ACCURACY,
        decay: float = WORD_DECAY,
    ):
        if not 0.0 <= accuracy <= 1.0:
            raise ValueError(f"accuracy must be between 0 and 1, not {accuracy}")
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"decay must be between 0 and 1, not {decay}")
        self.passages = tuple(passages)
        self.seed = seed
        self.accuracy = accuracy
        self.decay = decay

    def describe(self) -> str:
        return f"noisy (P = {self.accuracy:g})"

    def text(self, before: str, after: str = "") -> str:
        rng = _request_rng(self.seed, before, after)
        truth = _oracle_continuation(before, self.passages)
        if truth is None:
            return plausible_continuation(before, rng)
        words = _WORD.findall(truth)[:MAX_SUGGESTION_WORDS]
        right = 0
        if words and rng.random() < self.accuracy:
            right = 1
            while right < len(words) and rng.random() < self.decay**right:
                right += 1
        kept = "".join(words[:right])
        if right >= len(words):
            return kept
        return kept + _diverging(before + kept, words[right], rng)

    async def continuation(self, before: str, after: str, max_tokens: int) -> str:
        return self.text(before, after)


def _diverging(before: str, true_word: str, rng: random.Random) -> str:
    """Plausible words that do not start with ``true_word`` (what the writer types next)."""
    head = ""
    fragment = _FRAGMENT.search(before) if before and not true_word[:1].isspace() else None
    if fragment is not None:
        # Mid-word: finish the word differently ("Tues" + "day" -> "Tuesdays", "Tuesday's").
        typed = fragment.group().lower()
        meant = typed + true_word.strip().lower()
        words, _ = _vocabulary()
        others = [
            w[len(typed) :]
            for w in words[:20000]
            if w.startswith(typed) and len(w) > len(typed) and not meant.startswith(w)
        ][:20]
        if others:
            head = rng.choice(others)
    meant_word = true_word.strip().lower()
    phrases = [p for p in _PHRASES if p.split()[0].lower() != meant_word] or list(_PHRASES)
    tail = "".join(rng.choice(phrases) for _ in range(2))
    if not head and before[-1:].isspace():
        tail = tail.lstrip()
    return head + tail


class LocalPredictor:
    """The local model's own continuation, memoised per request text so that the same request
    reads the same answer in every strategy (and costs one generation)."""

    name = "local"

    def __init__(self, provider: Any = None, max_tokens: int = 16, memo_entries: int = 4096):
        """``provider``: any suggestion provider (default the local model's)."""
        if provider is None:
            if not self.available():
                raise PredictorUnavailable(LOCAL_MISSING)
            from ..providers.local import LocalModelProvider

            provider = LocalModelProvider()
        self._provider = provider
        self.model = getattr(self._provider, "model", "local")
        self.max_tokens = max_tokens
        self._memo: OrderedDict[tuple[str, str, int], str] = OrderedDict()
        self._memo_entries = memo_entries

    @staticmethod
    def available() -> bool:
        try:
            from ..providers.local import LocalModelProvider
        except Exception:  # the module itself may fail to import without its dependency
            return False
        try:
            return bool(LocalModelProvider.available())
        except Exception:
            return False

    def describe(self) -> str:
        return f"local ({self.model})"

    async def continuation(self, before: str, after: str, max_tokens: int) -> str:
        from ..providers.base import CompletionRequest, ProviderError, TextChunk

        cap = max(1, min(max_tokens, self.max_tokens))
        key = (before, after, cap)
        if key in self._memo:
            self._memo.move_to_end(key)
            return self._memo[key]
        parts: list[str] = []
        try:
            async for event in self._provider.stream(CompletionRequest(before, after, cap)):
                if isinstance(event, TextChunk):
                    parts.append(event.text)
        except ProviderError:
            return ""  # not memoised: a busy or failing model may answer next time
        text = "".join(parts)
        self._memo[key] = text
        while len(self._memo) > self._memo_entries:
            self._memo.popitem(last=False)
        return text

    async def warm(self) -> None:
        await self._provider.warm("")


def make_predictor(
    name: str | Predictor,
    passages: Sequence[str] = (),
    *,
    seed: int = 0,
    accuracy: float = DEFAULT_ACCURACY,
) -> Predictor:
    """The predictor called ``name`` (one of :data:`PREDICTORS`; a predictor object is used as
    it is)."""
    if not isinstance(name, str):
        return name
    if name == "oracle":
        return OraclePredictor(passages, seed)
    if name == "noisy":
        return NoisyPredictor(passages, seed, accuracy)
    if name == "local":
        return LocalPredictor()
    raise ValueError(f"unknown predictor {name!r}; choose one of {', '.join(PREDICTORS)}")


def describe_predictor(name: str, accuracy: float = DEFAULT_ACCURACY) -> str:
    """The label of a predictor without building it (figures carry P for noisy)."""
    return f"noisy (P = {accuracy:g})" if name == "noisy" else name


def parse_passages(text: str) -> tuple[str, ...]:
    """Passages of a plain text: blocks separated by one or more blank lines."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return tuple(p.strip() for p in re.split(r"\n(?:[ \t]*\n)+", text) if p.strip())


def load_oracle_file(path: str | Path) -> tuple[str, ...]:
    """The passages of a user's plain-text file, or :class:`OracleFileError` saying what is
    wrong with it (missing, a directory, unreadable, binary, not UTF-8, empty)."""
    p = Path(path)
    if not p.exists():
        raise OracleFileError(f"oracle file {str(path)!r} does not exist")
    if p.is_dir():
        raise OracleFileError(f"oracle file {str(path)!r} is a directory, not a text file")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise OracleFileError(f"oracle file {str(path)!r} cannot be read: {exc.strerror}") from exc
    if b"\0" in data:
        raise OracleFileError(f"oracle file {str(path)!r} looks binary (it holds NUL bytes)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise OracleFileError(
            f"oracle file {str(path)!r} is not UTF-8 text (bad byte at offset {exc.start})"
        ) from exc
    passages = parse_passages(text)
    if not passages:
        raise OracleFileError(f"oracle file {str(path)!r} is empty (no text to predict from)")
    return passages
