"""The suggestion engine: a sans-I/O state machine, one per document.

Events go in (an edit, a tick of the clock, a chunk from the provider, an accept) and commands come
out (start a request, cancel one, show a suggestion, close a version). The engine never awaits,
sleeps or reads a clock of its own; the runtime (the WebSocket server, the benchmark, a test)
performs the commands and feeds back what happened. That keeps every rule here testable in
microseconds and the same for every runtime.

Versions: each edit carries a version (the client's request id). Every version gets exactly one
terminal command: ``ShowSuggestion(final=True)`` or ``Closed``. Once a newer edit has been seen,
nothing more is ever emitted for an older version, so a stale suggestion cannot be shown.

Requests: at most one is in flight. A newer edit cancels it unless the text the user typed is
consistent with what the request is streaming (type-through), in which case the same request keeps
serving the newer version. With ``keep_request_over_typo`` (off by default), a request that no
longer fits is kept while the engine waits out a mid-word debounce, so a typo backspaced in time
gets it back.

Prefetch (``EngineConfig.prefetch``): once a suggestion is shown, the engine asks for the one that
follows its acceptance (the text with the suggestion appended). It is not any version's request:
nothing of it is shown until the user reaches its text (Tab, or typing the suggestion through),
and it is cancelled as soon as the user goes another way. Finished early, it waits in the cache.

Acceptance: the engine learns from ``Accept`` and from the user typing away from (or dismissing)
a shown suggestion. After ``cold_after`` rejections in a row it asks less often (only after a
pause), until a suggestion is accepted or typed through again.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from ..pricing import Usage
from ..providers.base import ProviderError
from .text import finalize, likely_rejected, trim_restated_fragment, visible_prefix

Clock = Callable[[], float]

# ---------------------------------------------------------------------------------------------
# Events (runtime -> engine)


@dataclass(frozen=True)
class Edit:
    """The document changed (or the client asks again): text before and after the cursor."""

    prefix: str
    suffix: str
    version: int


@dataclass(frozen=True)
class CursorMoved:
    """The cursor moved without typing: whatever is shown no longer belongs there."""

    prefix: str
    suffix: str


@dataclass(frozen=True)
class Tick:
    """Time passed; the runtime sends one at ``engine.next_deadline`` (or whenever it likes)."""


@dataclass(frozen=True)
class ProviderChunk:
    request_id: int
    text: str


@dataclass(frozen=True)
class ProviderDone:
    request_id: int
    usage: Usage | None = None
    model: str = ""
    source: str = "model"  # "model" or "offline"
    truncated: bool = False  # stopped on the token cap
    retry_when_free: bool = False  # a lesser tier answered while a better one was busy


@dataclass(frozen=True)
class ProviderFailed:
    request_id: int
    error: ProviderError


@dataclass(frozen=True)
class Accept:
    """The user took ``chars`` characters of the suggestion (telemetry; the client inserts them)."""

    chars: int


@dataclass(frozen=True)
class TierFree:
    """The provider has room again for a better tier (the local model loaded, or a slot freed).

    An empty answer that came with ``retry_when_free`` is held open, not shown; this asks
    again for the same version if the user is still paused there."""


@dataclass(frozen=True)
class Dismiss:
    """Esc, or the client cancelled: hide the suggestion and stop asking until the next edit."""


Event = (
    Edit
    | CursorMoved
    | Tick
    | ProviderChunk
    | ProviderDone
    | ProviderFailed
    | Accept
    | Dismiss
    | TierFree
)

# ---------------------------------------------------------------------------------------------
# Commands (engine -> runtime)


@dataclass(frozen=True)
class StartRequest:
    request_id: int
    version: int
    prefix: str
    suffix: str
    prefetch: bool = False  # asked ahead of an accept: no version waits on it (yet)


@dataclass(frozen=True)
class CancelRequest:
    request_id: int
    reason: str  # "superseded" | "client"


@dataclass(frozen=True)
class ShowSuggestion:
    """Show ``text`` after the cursor for ``version``. ``final`` closes the version.

    While streaming (not final) ``text`` only ever grows, so a runtime may send just the new tail.
    """

    version: int
    text: str
    final: bool
    source: str = ""  # final: "model" | "offline" | "prefetch" | "cache" | "typethrough" | "none"
    request_id: int | None = None
    usage: Usage | None = None
    model: str = ""
    latency_ms: float = 0.0


@dataclass(frozen=True)
class ClearSuggestion:
    """Hide whatever is shown (the runtime may already have done so on its own)."""


@dataclass(frozen=True)
class Closed:
    """Terminal for a version that got no suggestion."""

    version: int
    outcome: Literal["cancelled", "error"]
    reason: str = ""  # cancelled: "superseded" | "client"
    error: ProviderError | None = None


Command = StartRequest | CancelRequest | ShowSuggestion | ClearSuggestion | Closed

# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EngineConfig:
    debounce_min_ms: float = 25.0
    debounce_max_ms: float = 150.0
    # The debounce is the typist's usual gap between keys times this factor: mid-word, and at a
    # word or sentence boundary (0 there: ask at once).
    pause_factor: float = 1.0
    boundary_pause_factor: float = 0.0
    cache_entries: int = 256
    cache_context_chars: int = 96  # how much text before the cursor keys the cache
    cache_suffix_chars: int = 32
    type_ahead_slack: int = 6  # chars typed past a streaming request's text before giving up on it
    suggest_mid_line: bool = False  # ask even when words follow the cursor on its line
    prefetch: bool = False  # ask for the suggestion after the shown one (costs calls)
    recall_suggestions: int = 4  # recent suggestions kept to show again after a backspace (0: off)
    # A request the text left runs on until a new one starts (a typo backspaced in time gets it
    # back). Off: the product cancels a stale request at once, and on the noisy bench keeping it
    # won nothing beyond run-to-run noise (docs/performance.md).
    keep_request_over_typo: bool = False
    drop_likely_rejected: bool = True  # trim restated fragments, drop short and echoed text
    recall_back_chars: int = 12  # how far before a suggestion's start a backspace may go
    min_suggestion_chars: int = 3  # shorter suggestions save nothing once Tab is counted
    cold_after: int = 3  # rejections in a row before asking less often (0: never)
    cold_pause_ms: float = 0.0  # then wait this long after a keystroke before asking
    tier_wait_ms: float = 3000.0  # how long an empty retry_when_free answer waits for TierFree
    tier_retries: int = 2  # asks again at most this often per version


@dataclass
class EngineStats:
    edits: int = 0
    requests_started: int = 0
    requests_cancelled: int = 0
    requests_failed: int = 0
    requests_completed: int = 0
    shown_model: int = 0
    shown_typethrough: int = 0
    shown_cache: int = 0
    weak_dropped: int = 0
    accepted_chars: int = 0
    shown_prefetch: int = 0
    shown_recalled: int = 0
    prefetches_started: int = 0
    prefetches_cancelled: int = 0
    suggestions_accepted: int = 0
    suggestions_rejected: int = 0


@dataclass
class _Inflight:
    request_id: int
    prefix: str
    suffix: str
    started: float
    received: str = ""
    shown: str = ""  # what has been shown of it for the current version
    prefetch_from: str | None = None  # a prefetch not yet reached: the suggestion's anchor
    prefetched: bool = False  # asked ahead of an accept (reached or not)


@dataclass
class _Shown:
    """A finished suggestion, anchored at the prefix it was made for."""

    prefix: str
    suffix: str
    text: str
    source: str


class SuggestionCache:
    """LRU of finished suggestions keyed by the context they were made for.

    A lookup also finds an entry made a few characters earlier whose text the user has since
    typed, so backspacing and re-typing restores a suggestion with no request.
    """

    def __init__(self, entries: int, context_chars: int, suffix_chars: int):
        self._data: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._entries = entries
        self._ctx = context_chars
        self._sfx = suffix_chars
        self._longest = 0

    def _key(self, prefix: str, suffix: str) -> tuple[str, str]:
        return prefix[-self._ctx :], suffix[: self._sfx]

    def put(self, prefix: str, suffix: str, text: str) -> None:
        key = self._key(prefix, suffix)
        self._data[key] = text
        self._data.move_to_end(key)
        self._longest = max(self._longest, len(text))
        while len(self._data) > self._entries:
            self._data.popitem(last=False)

    def get(self, prefix: str, suffix: str) -> str | None:
        """The rest of a cached suggestion that fits the cursor at the end of ``prefix``."""
        # Keys only ever look at the last ``ctx + longest`` characters: slice those once, not
        # the whole document once per candidate (that scaled with the document's length).
        prefix = prefix[-(self._ctx + self._longest) :]
        for typed_len in range(0, min(self._longest, len(prefix)) + 1):
            anchor = prefix[: len(prefix) - typed_len]
            text = self._data.get(self._key(anchor, suffix))
            if text is None:
                continue
            typed = prefix[len(anchor) :]
            if text.startswith(typed) and len(text) > len(typed):
                self._data.move_to_end(self._key(anchor, suffix))
                return text[len(typed) :]
        return None

    def __len__(self) -> int:
        return len(self._data)


_BOUNDARY = set(" \t\n.,;:!?)]}\"'")


class SuggestionEngine:
    def __init__(self, config: EngineConfig | None = None, clock: Clock = time.monotonic):
        self.config = config or EngineConfig()
        self.clock = clock
        self.stats = EngineStats()
        self.cache = SuggestionCache(
            self.config.cache_entries,
            self.config.cache_context_chars,
            self.config.cache_suffix_chars,
        )
        self.prefix = ""
        self.suffix = ""
        self.version = -1
        self._open: int | None = None  # version still owed a terminal command
        self._edit_time = 0.0  # when the open version's edit arrived
        self._last_edit: float | None = None
        self._gap_ewma_ms = 150.0
        self._deadline: float | None = None
        self._inflight: _Inflight | None = None
        self._shown: _Shown | None = None
        self._recent: deque[_Shown] = deque(maxlen=max(1, self.config.recall_suggestions))
        self._awaiting_verdict: _Shown | None = None  # a new suggestion on screen, not yet judged
        self._rejections = 0  # in a row
        self._next_request_id = 1
        self._tier_wait: ProviderDone | None = None  # an empty answer held for TierFree
        self._tier_retries = 0

    # -- queries ----------------------------------------------------------------------------

    @property
    def next_deadline(self) -> float | None:
        """Clock time at which the runtime should send a Tick, or None."""
        return self._deadline

    @property
    def inflight_request(self) -> int | None:
        return self._inflight.request_id if self._inflight else None

    @property
    def open_version(self) -> int | None:
        return self._open

    @property
    def cold(self) -> bool:
        """The writer has rejected the last ``cold_after`` suggestions: ask less often."""
        n = self.config.cold_after
        return n > 0 and self._rejections >= n

    def debounce_ms(self, prefix: str) -> float:
        """How long to wait after this keystroke before asking the model.

        None after a word or sentence boundary (the user is likely to pause, and a suggestion
        for the next words is most useful there); mid-word, a short pause scaled to this
        typist's pace so a fast typist does not trigger a request per letter. While the writer
        rejects what is shown (``cold``), at least ``cold_pause_ms``: only a pause asks.
        """
        cfg = self.config
        factor = (
            cfg.boundary_pause_factor if not prefix or prefix[-1] in _BOUNDARY else cfg.pause_factor
        )
        if factor <= 0:
            wait = 0.0
        else:
            wait = min(cfg.debounce_max_ms, max(cfg.debounce_min_ms, factor * self._gap_ewma_ms))
        return max(wait, cfg.cold_pause_ms) if self.cold else wait

    # -- the one entry point ----------------------------------------------------------------

    def handle(self, event: Event) -> list[Command]:
        match event:
            case Edit():
                return self._on_edit(event)
            case Tick():
                return self._on_tick()
            case ProviderChunk():
                return self._on_chunk(event)
            case ProviderDone():
                return self._on_done(event)
            case ProviderFailed():
                return self._on_failed(event)
            case CursorMoved():
                self.prefix, self.suffix = event.prefix, event.suffix
                self._awaiting_verdict = None
                return self._drop_everything("superseded")
            case Dismiss():
                if self._awaiting_verdict is not None:
                    self._judge(accepted=False)
                return self._drop_everything("client")
            case Accept():
                self.stats.accepted_chars += max(0, event.chars)
                if event.chars > 0 and self._awaiting_verdict is not None:
                    self._judge(accepted=True)  # (the rest of it, taken later, is the same one)
                return []
            case TierFree():
                return self._on_tier_free()
        raise TypeError(f"not an engine event: {event!r}")

    # -- handlers ---------------------------------------------------------------------------

    def _on_edit(self, ev: Edit) -> list[Command]:
        if ev.version <= self.version:
            raise ValueError(f"version {ev.version} is not newer than {self.version}")
        now = self.clock()
        cmds: list[Command] = []
        self.stats.edits += 1
        if self._last_edit is not None:
            gap_ms = (now - self._last_edit) * 1000
            if gap_ms < 1500:  # a pause says nothing about typing pace
                self._gap_ewma_ms = 0.7 * self._gap_ewma_ms + 0.3 * gap_ms
        self._last_edit = now
        if self._open is not None:
            cmds.append(Closed(self._open, "cancelled", "superseded"))
        self.prefix, self.suffix, self.version = ev.prefix, ev.suffix, ev.version
        self._open, self._edit_time = ev.version, now
        self._deadline = None
        self._learn_from_edit()
        self._tier_wait, self._tier_retries = None, 0

        # 1. The request in flight may still fit: the user typed what it is streaming (or, for a
        #    prefetch, is still on the way to the text it was asked for).
        fl = self._inflight
        if fl is not None and fl.prefetch_from is not None:
            if self._typed_since(fl.prefix, fl.suffix) is not None:
                fl.prefetch_from = None  # reached: from now on it serves the user like any other
            elif not self._on_the_way_to(fl):
                cmds.extend(self._cancel_inflight("superseded"))
                fl = None
        if fl is not None and fl.prefetch_from is None:
            if self._fits(fl):
                fl.shown = ""
                cmds.extend(self._show_streaming(fl))
                return cmds
            if not self.config.keep_request_over_typo:
                cmds.extend(self._cancel_inflight("superseded"))
            # Else kept until a new request starts (a backspace may bring it back).

        # 2. A finished suggestion the user is typing through.
        sh = self._shown
        if sh is not None:
            typed = self._typed_since(sh.prefix, sh.suffix)
            if typed is not None and sh.text.startswith(typed) and len(typed) < len(sh.text):
                self.stats.shown_typethrough += 1
                return (
                    cmds
                    + self._drop_unfit_inflight()
                    + [self._final(sh.text[len(typed) :], "typethrough")]
                )
            self._shown = None
            cmds.append(ClearSuggestion())

        # 3. Something we made before for this very context, or just before a backspace.
        cached = self.cache.get(ev.prefix, ev.suffix)
        source = "cache"
        if cached is None:
            cached, source = self._recall(), "recalled"
        if cached is not None:
            if source == "cache":
                self.stats.shown_cache += 1
            else:
                self.stats.shown_recalled += 1
            self._shown = _Shown(ev.prefix, ev.suffix, cached, "cache")
            self._awaiting_verdict = self._shown
            return cmds + self._drop_unfit_inflight() + [self._final(cached, "cache")]

        # 4. Ask, after the debounce.
        if not self._worth_asking():
            return cmds + self._drop_unfit_inflight() + [self._final("", "none")]
        self._deadline = now + self.debounce_ms(ev.prefix) / 1000
        cmds.extend(self._on_tick())
        return cmds

    def _on_tick(self) -> list[Command]:
        if self._deadline is None or self.clock() < self._deadline or self._open is None:
            return []
        self._deadline = None
        if self._tier_wait is not None:  # the better tier stayed busy: show the empty answer
            held, self._tier_wait = self._tier_wait, None
            return [self._final("", held.source, request_id=held.request_id, model=held.model)]
        cmds = self._cancel_inflight("superseded")
        rid = self._new_request_id()
        self._inflight = _Inflight(rid, self.prefix, self.suffix, self.clock())
        self.stats.requests_started += 1
        cmds.append(StartRequest(rid, self._open, self.prefix, self.suffix))
        return cmds

    def _on_chunk(self, ev: ProviderChunk) -> list[Command]:
        fl = self._inflight
        if fl is None or ev.request_id != fl.request_id or not ev.text:
            return []  # a late chunk of a cancelled request: never shown
        fl.received += ev.text
        return self._show_streaming(fl)

    def _on_done(self, ev: ProviderDone) -> list[Command]:
        fl = self._inflight
        if fl is None or ev.request_id != fl.request_id:
            return []
        self._inflight = None
        self.stats.requests_completed += 1
        text = finalize(fl.received, fl.prefix, fl.suffix, truncated=ev.truncated)
        if self.config.drop_likely_rejected:
            text = trim_restated_fragment(text, fl.prefix)
            if text and likely_rejected(text, fl.prefix, self.config.min_suggestion_chars):
                text = ""
        if not text and fl.received.strip():
            self.stats.weak_dropped += 1
        if text:
            self.cache.put(fl.prefix, fl.suffix, text)
        if self._open is None or fl.prefetch_from is not None:
            return []  # nobody waits on it (a prefetch not reached yet waits in the cache)
        typed = self._typed_since(fl.prefix, fl.suffix)
        fits = text.startswith(typed) and len(typed) < len(text) if typed is not None else False
        if self._deadline is not None and not fits:
            return []  # kept in case of a backspace; the request that is due will answer
        if (
            not text
            and typed == ""
            and ev.retry_when_free
            and self._tier_retries < self.config.tier_retries
        ):
            # Nothing now, from a stand-in tier: wait (a while) for the better one to be free.
            self._tier_wait = ev
            self._deadline = self.clock() + self.config.tier_wait_ms / 1000
            return []
        if typed is not None and (not text or fits):
            source = "prefetch" if fl.prefetched else ev.source
            if fl.prefetched:
                self.stats.shown_prefetch += bool(text)
            else:
                self.stats.shown_model += bool(text)
            cmds: list[Command] = [
                self._final(
                    text[len(typed) :] if text else "",
                    source,
                    request_id=fl.request_id,
                    usage=ev.usage,
                    model=ev.model,
                )
            ]
            if text:
                self._shown = _Shown(fl.prefix, fl.suffix, text, ev.source)
                self._recent.append(self._shown)
                self._awaiting_verdict = self._shown
                cmds.extend(self._prefetch_after(self._shown))
            else:
                self._shown = None
            return cmds
        # The user typed past (or away from) this suggestion while it finished: ask again.
        self._deadline = self.clock()
        return self._on_tick()

    def _on_tier_free(self) -> list[Command]:
        if self._tier_wait is None or self._open is None or self._inflight is not None:
            return []
        self._tier_wait = None
        self._tier_retries += 1
        self._deadline = self.clock()
        return self._on_tick()

    def _on_failed(self, ev: ProviderFailed) -> list[Command]:
        fl = self._inflight
        if fl is None or ev.request_id != fl.request_id:
            return []
        self._inflight = None
        self.stats.requests_failed += 1
        if self._open is None or fl.prefetch_from is not None:
            return []
        if not self._fits(fl) and self._deadline is not None:
            return []  # kept only in case of a backspace; the request that is due will answer
        version, self._open = self._open, None
        return [ClearSuggestion(), Closed(version, "error", ev.error.kind.value, ev.error)]

    # -- helpers ----------------------------------------------------------------------------

    def _new_request_id(self) -> int:
        rid = self._next_request_id
        self._next_request_id += 1
        return rid

    def _typed_since(self, prefix: str, suffix: str) -> str | None:
        """What the user typed after ``prefix`` with the same text after the cursor, if that is all."""
        if self.suffix != suffix or not self.prefix.startswith(prefix):
            return None
        return self.prefix[len(prefix) :]

    def _fits(self, fl: _Inflight) -> bool:
        """The user's text is consistent with what ``fl`` is streaming (or may still catch up)."""
        typed = self._typed_since(fl.prefix, fl.suffix)
        if typed is None:
            return False
        visible = self._visible(fl)
        return visible.startswith(typed) or (
            typed.startswith(visible) and len(typed) - len(visible) <= self.config.type_ahead_slack
        )

    def _visible(self, fl: _Inflight) -> str:
        """What may be shown of a streaming request (append-only as it grows)."""
        raw = visible_prefix(fl.received, fl.prefix)
        if not self.config.drop_likely_rejected:
            return raw
        return trim_restated_fragment(raw, fl.prefix, complete=False)

    def _on_the_way_to(self, fl: _Inflight) -> bool:
        """The user is between a suggestion's start and its end, still typing or accepting it."""
        anchor = fl.prefetch_from
        return (
            anchor is not None
            and self.suffix == fl.suffix
            and fl.prefix.startswith(self.prefix)
            and len(self.prefix) >= len(anchor)
        )

    def _drop_unfit_inflight(self) -> list[Command]:
        """Served without a request: a request that no longer fits the text has no more use."""
        fl = self._inflight
        if fl is None or fl.prefetch_from is not None or self._fits(fl):
            return []
        return self._cancel_inflight("superseded")

    def _recall(self) -> str | None:
        """The rest of a recent suggestion whose start lies a few characters after the cursor:
        the user backspaced over the end of what they had typed before it."""
        back = self.config.recall_back_chars
        if self.config.recall_suggestions <= 0:
            return None
        for sh in reversed(self._recent):
            if sh.suffix != self.suffix or len(self.prefix) < len(sh.prefix) - back:
                continue
            whole_len = len(sh.prefix) + len(sh.text)
            if len(self.prefix) >= whole_len or not sh.prefix.startswith(self.prefix):
                continue  # (typed through or past it: the cache and type-through cover that)
            erased = sh.prefix[len(self.prefix) :]
            if "\n" in erased:
                continue  # a ghost is one line: it cannot give back a line break
            return erased + sh.text
        return None

    def _prefetch_after(self, sh: _Shown) -> list[Command]:
        """Ask now for what follows ``sh`` once it is accepted (when configured and idle)."""
        if not self.config.prefetch or self._inflight is not None:
            return []
        prefix = sh.prefix + sh.text
        if self.cache.get(prefix, sh.suffix) is not None:
            return []
        rid = self._new_request_id()
        self._inflight = _Inflight(
            rid, prefix, sh.suffix, self.clock(), prefetch_from=sh.prefix, prefetched=True
        )
        self.stats.prefetches_started += 1
        return [StartRequest(rid, self.version, prefix, sh.suffix, prefetch=True)]

    def _learn_from_edit(self) -> None:
        """Typing away from a new suggestion rejects it; typing it to its end takes it."""
        sh = self._awaiting_verdict
        if sh is None:
            return
        typed = self._typed_since(sh.prefix, sh.suffix)
        if typed is not None and sh.text.startswith(typed):
            if len(typed) == len(sh.text):
                self._judge(accepted=True)
            return
        if typed is not None and typed.startswith(sh.text):
            self._judge(accepted=True)  # typed through it and on
        else:
            self._judge(accepted=False)

    def _judge(self, accepted: bool) -> None:
        self._awaiting_verdict = None
        if accepted:
            self.stats.suggestions_accepted += 1
            self._rejections = 0
        else:
            self.stats.suggestions_rejected += 1
            self._rejections += 1

    def _show_streaming(self, fl: _Inflight) -> list[Command]:
        if fl.prefetch_from is not None:
            return []  # the user has not reached it (yet)
        typed = self._typed_since(fl.prefix, fl.suffix)
        visible = self._visible(fl)
        if typed is None:
            return []
        if visible.startswith(typed):
            rest = visible[len(typed) :]
            if rest and rest != fl.shown and self._open is not None:
                fl.shown = rest
                return [ShowSuggestion(self._open, rest, final=False, request_id=fl.request_id)]
            return []
        if typed.startswith(visible) and len(typed) - len(visible) <= self.config.type_ahead_slack:
            return []  # the stream may still catch up with what was typed
        # It went another way than the user: useless now. Ask again for the current text.
        cmds = self._cancel_inflight("superseded")
        if self._open is None:
            return cmds
        self._deadline = max(self.clock(), self._edit_time + self.debounce_ms(self.prefix) / 1000)
        return cmds + self._on_tick()

    def _final(self, text: str, source: str, **extra) -> ShowSuggestion:
        version, self._open = self._open, None
        self._deadline = None  # the version is served: no request is due for it
        assert version is not None
        latency = (self.clock() - self._edit_time) * 1000
        return ShowSuggestion(version, text, final=True, source=source, latency_ms=latency, **extra)

    def _cancel_inflight(self, reason: str) -> list[Command]:
        fl, self._inflight = self._inflight, None
        if fl is None:
            return []
        self.stats.requests_cancelled += 1
        if fl.prefetch_from is not None:
            self.stats.prefetches_cancelled += 1
        return [CancelRequest(fl.request_id, reason)]

    def _drop_everything(self, reason: str) -> list[Command]:
        cmds = self._cancel_inflight("client" if reason == "client" else "superseded")
        self._deadline = None
        self._tier_wait = None
        self._shown = None
        cmds.append(ClearSuggestion())
        if self._open is not None:
            cmds.append(Closed(self._open, "cancelled", reason))
            self._open = None
        return cmds

    def _worth_asking(self) -> bool:
        # (isspace and find, not strip and split: those copy the document, every keystroke)
        if not self.prefix or self.prefix.isspace():
            return False
        if self.config.suggest_mid_line:
            return True
        end = self.suffix.find("\n")
        rest_of_line = self.suffix if end < 0 else self.suffix[:end]
        return not any(c.isalnum() for c in rest_of_line)


@dataclass
class ManualClock:
    """A clock tests and simulations move by hand."""

    now: float = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
