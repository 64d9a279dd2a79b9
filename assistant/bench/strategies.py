"""Other ways to decide when to ask the model, to compare ours against on the same traces.

Both speak exactly the event/command interface of :class:`assistant.engine.SuggestionEngine`
(``handle(event) -> commands``, ``next_deadline``, ``stats``, an injected clock), so the server,
the benchmark and the tests drive them unchanged, and every version still gets exactly one
terminal command and never a stale suggestion: the comparison is about requests, tokens and
latency, not about correctness.

- :class:`NaiveEngine`: a request on every keystroke, never cancelled. Every request runs to the
  end and is billed; only the latest version's suggestion is shown.
- :class:`CopilotStyleEngine`: after copilot.vim (see the class).
- :class:`ContinueStyleEngine`: after Continue's autocomplete (continuedev/continue): a fixed
  350 ms debounce restarted by every keystroke, the request in flight aborted by any new
  keystroke, an LRU cache keyed on the exact text before the cursor, and a suggestion shown
  only when complete (an inline completion item is not streamed).
"""

from __future__ import annotations

import functools
import time
from collections import OrderedDict
from dataclasses import dataclass

from ..suggest.engine import (
    Accept,
    CancelRequest,
    ClearSuggestion,
    Clock,
    Closed,
    Command,
    CursorMoved,
    Dismiss,
    Edit,
    EngineConfig,
    EngineStats,
    Event,
    ProviderChunk,
    ProviderDone,
    ProviderFailed,
    ShowSuggestion,
    StartRequest,
    SuggestionEngine,
    Tick,
)
from ..suggest.text import finalize, visible_prefix


@dataclass
class _Request:
    request_id: int
    version: int
    prefix: str
    suffix: str
    received: str = ""
    shown: str = ""


class _Versions:
    """The bookkeeping every strategy shares: the open version and its one terminal command."""

    def __init__(self, clock: Clock):
        self.clock = clock
        self.stats = EngineStats()
        self.prefix = ""
        self.suffix = ""
        self.version = -1
        self._open: int | None = None
        self._edit_time = 0.0
        self._next_request_id = 1

    @property
    def open_version(self) -> int | None:
        return self._open

    def _new_edit(self, ev: Edit) -> list[Command]:
        if ev.version <= self.version:
            raise ValueError(f"version {ev.version} is not newer than {self.version}")
        self.stats.edits += 1
        cmds: list[Command] = []
        if self._open is not None:
            cmds.append(Closed(self._open, "cancelled", "superseded"))
        self.prefix, self.suffix, self.version = ev.prefix, ev.suffix, ev.version
        self._open, self._edit_time = ev.version, self.clock()
        return cmds

    def _final(self, text: str, source: str, **extra) -> ShowSuggestion:
        version, self._open = self._open, None
        assert version is not None
        latency = (self.clock() - self._edit_time) * 1000
        return ShowSuggestion(version, text, final=True, source=source, latency_ms=latency, **extra)

    def _close(self, reason: str) -> list[Command]:
        cmds: list[Command] = [ClearSuggestion()]
        if self._open is not None:
            cmds.append(Closed(self._open, "cancelled", reason))
            self._open = None
        return cmds

    def _fail(self, ev: ProviderFailed) -> list[Command]:
        self.stats.requests_failed += 1
        if self._open is None:
            return []
        version, self._open = self._open, None
        return [ClearSuggestion(), Closed(version, "error", ev.error.kind.value, ev.error)]

    def _start(self) -> tuple[_Request, StartRequest]:
        rid = self._next_request_id
        self._next_request_id += 1
        assert self._open is not None
        self.stats.requests_started += 1
        req = _Request(rid, self._open, self.prefix, self.suffix)
        return req, StartRequest(rid, self._open, self.prefix, self.suffix)

    def _worth_asking(self) -> bool:
        return bool(self.prefix.strip())

    @staticmethod
    def _finished_text(req: _Request, ev: ProviderDone) -> str:
        return finalize(req.received, req.prefix, req.suffix, truncated=ev.truncated)

    def _model_final(self, req: _Request, ev: ProviderDone, text: str) -> ShowSuggestion:
        """The open version's final frame from a request that finished for it."""
        self.stats.shown_model += bool(text)
        return self._final(
            text, ev.source, request_id=req.request_id, usage=ev.usage, model=ev.model
        )


class _Debounced(_Versions):
    """A strategy that asks once the typist has been idle for a while, one request at a time."""

    def __init__(self, clock: Clock):
        super().__init__(clock)
        self._deadline: float | None = None
        self._inflight: _Request | None = None

    @property
    def next_deadline(self) -> float | None:
        return self._deadline

    @property
    def inflight_request(self) -> int | None:
        return self._inflight.request_id if self._inflight else None

    def _on_tick(self) -> list[Command]:
        if self._deadline is None or self.clock() < self._deadline or self._open is None:
            return []
        self._deadline = None
        req, start = self._start()
        self._inflight = req
        return [start]

    def _abort(self, reason: str, slot: str = "_inflight") -> list[Command]:
        """Cancel the request held in ``slot`` (an attribute), if any."""
        req = getattr(self, slot)
        setattr(self, slot, None)
        if req is None:
            return []
        self.stats.requests_cancelled += 1
        return [CancelRequest(req.request_id, reason)]


class NaiveEngine(_Versions):
    """A request per keystroke, none ever cancelled; only the latest version is shown."""

    def __init__(self, config: object = None, clock: Clock = time.monotonic):
        super().__init__(clock)
        self.config = config
        self._requests: dict[int, _Request] = {}

    @property
    def next_deadline(self) -> float | None:
        return None

    @property
    def inflight_request(self) -> int | None:
        return max(self._requests) if self._requests else None

    @property
    def inflight_requests(self) -> list[int]:
        return sorted(self._requests)

    def handle(self, event: Event) -> list[Command]:
        match event:
            case Edit():
                cmds = self._new_edit(event)
                if not self._worth_asking():
                    return cmds + [self._final("", "none")]
                req, start = self._start()
                self._requests[req.request_id] = req
                return cmds + [start]
            case Tick() | Accept():
                if isinstance(event, Accept):
                    self.stats.accepted_chars += max(0, event.chars)
                return []
            case ProviderChunk():
                req = self._requests.get(event.request_id)
                if req is None or not event.text:
                    return []
                req.received += event.text
                return self._stream(req)
            case ProviderDone():
                req = self._requests.pop(event.request_id, None)
                if req is None:
                    return []
                self.stats.requests_completed += 1
                if req.version != self._open:
                    return []  # ran to the end for nothing: billed, never shown
                return [self._model_final(req, event, self._finished_text(req, event))]
            case ProviderFailed():
                req = self._requests.pop(event.request_id, None)
                if req is None or req.version != self._open:
                    return []
                return self._fail(event)
            case CursorMoved():
                self.prefix, self.suffix = event.prefix, event.suffix
                return self._close("superseded")
            case Dismiss():
                return self._close("client")
        raise TypeError(f"not an engine event: {event!r}")

    def _stream(self, req: _Request) -> list[Command]:
        if req.version != self._open:
            return []
        visible = visible_prefix(req.received, req.prefix)
        if visible and visible != req.shown:
            req.shown = visible
            return [ShowSuggestion(req.version, visible, final=False, request_id=req.request_id)]
        return []


@dataclass(frozen=True)
class ContinueConfig:
    debounce_ms: float = 350.0
    cache_entries: int = 256


class ContinueStyleEngine(_Debounced):
    """Fixed debounce, abort on keystroke, exact-prefix LRU cache, shown when complete."""

    def __init__(self, config: ContinueConfig | None = None, clock: Clock = time.monotonic):
        super().__init__(clock)
        self.config = config or ContinueConfig()
        self.cache: OrderedDict[tuple[str, str], str] = OrderedDict()

    def handle(self, event: Event) -> list[Command]:
        match event:
            case Edit():
                cmds = self._new_edit(event)
                cmds += self._abort("superseded")
                cmds.append(ClearSuggestion())
                self._deadline = None
                cached = self.cache.get((event.prefix, event.suffix))
                if cached is not None:
                    self.cache.move_to_end((event.prefix, event.suffix))
                    self.stats.shown_cache += 1
                    return cmds + [self._final(cached, "cache")]
                if not self._worth_asking():
                    return cmds + [self._final("", "none")]
                self._deadline = self.clock() + self.config.debounce_ms / 1000
                return cmds
            case Tick():
                return self._on_tick()
            case ProviderChunk():
                fl = self._inflight
                if fl is not None and fl.request_id == event.request_id:
                    fl.received += event.text
                return []
            case ProviderDone():
                fl = self._inflight
                if fl is None or fl.request_id != event.request_id:
                    return []
                self._inflight = None
                self.stats.requests_completed += 1
                text = self._finished_text(fl, event)
                if text:
                    self.cache[(fl.prefix, fl.suffix)] = text
                    self.cache.move_to_end((fl.prefix, fl.suffix))
                    while len(self.cache) > self.config.cache_entries:
                        self.cache.popitem(last=False)
                if self._open != fl.version:
                    return []
                return [self._model_final(fl, event, text)]
            case ProviderFailed():
                fl = self._inflight
                if fl is None or fl.request_id != event.request_id:
                    return []
                self._inflight = None
                return self._fail(event)
            case CursorMoved():
                self.prefix, self.suffix = event.prefix, event.suffix
                self._deadline = None
                return self._abort("superseded") + self._close("superseded")
            case Dismiss():
                self._deadline = None
                return self._abort("client") + self._close("client")
            case Accept():
                self.stats.accepted_chars += max(0, event.chars)
                return []
        raise TypeError(f"not an engine event: {event!r}")


@dataclass(frozen=True)
class CopilotConfig:
    idle_ms: float = 15.0
    cache_entries: int = 100


@dataclass
class _Finished:
    prefix: str
    suffix: str
    text: str


class CopilotStyleEngine(_Debounced):
    """After copilot.vim: a 15 ms idle delay, any change cancels the request in flight, typing
    through the shown suggestion, an LRU of 100 prefixes (a hit needs the very same suffix), and
    a prefetch: when a suggestion is shown, the completion that follows it is asked for at once,
    so accepting it (Tab) finds the next one ready. Suggestions are shown when complete."""

    def __init__(self, config: CopilotConfig | None = None, clock: Clock = time.monotonic):
        super().__init__(clock)
        self.config = config or CopilotConfig()
        self.cache: OrderedDict[str, tuple[str, str]] = OrderedDict()  # prefix -> (suffix, text)
        self._prefetch: _Request | None = None
        self._shown: _Finished | None = None

    @property
    def inflight_requests(self) -> list[int]:
        return sorted(r.request_id for r in (self._inflight, self._prefetch) if r is not None)

    def handle(self, event: Event) -> list[Command]:
        match event:
            case Edit():
                return self._on_edit(event)
            case Tick():
                return self._on_tick()
            case ProviderChunk():
                for req in (self._inflight, self._prefetch):
                    if req is not None and req.request_id == event.request_id:
                        req.received += event.text
                return []
            case ProviderDone():
                return self._on_done(event)
            case ProviderFailed():
                pf = self._prefetch
                if pf is not None and pf.request_id == event.request_id:
                    self._prefetch = None
                    self.stats.requests_failed += 1
                    return []
                fl = self._inflight
                if fl is None or fl.request_id != event.request_id:
                    return []
                self._inflight = None
                return self._fail(event)
            case CursorMoved():
                self.prefix, self.suffix = event.prefix, event.suffix
                return self._drop("superseded")
            case Dismiss():
                return self._drop("client")
            case Accept():
                self.stats.accepted_chars += max(0, event.chars)
                return []
        raise TypeError(f"not an engine event: {event!r}")

    def _on_edit(self, ev: Edit) -> list[Command]:
        cmds = self._new_edit(ev)
        cmds += self._abort("superseded")
        self._deadline = None
        sh = self._shown
        if sh is not None and sh.suffix == ev.suffix and ev.prefix.startswith(sh.prefix):
            typed = ev.prefix[len(sh.prefix) :]
            if sh.text.startswith(typed) and len(typed) < len(sh.text):
                self.stats.shown_typethrough += 1
                return cmds + [self._final(sh.text[len(typed) :], "typethrough")]
        self._shown = None
        cmds.append(ClearSuggestion())
        pf = self._prefetch
        if pf is not None and (pf.prefix, pf.suffix) == (ev.prefix, ev.suffix):
            # The writer accepted the suggestion the prefetch follows: it serves this version.
            self._prefetch, self._inflight = None, pf
            pf.version = ev.version
            return cmds
        cmds += self._abort("superseded", "_prefetch")
        hit = self.cache.get(ev.prefix)
        if hit is not None and hit[0] == ev.suffix:
            self.cache.move_to_end(ev.prefix)
            self.stats.shown_cache += 1
            self._shown = _Finished(ev.prefix, ev.suffix, hit[1])
            return cmds + [self._final(hit[1], "cache")] + self._prefetch_after(self._shown)
        if not self._worth_asking():
            return cmds + [self._final("", "none")]
        self._deadline = self.clock() + self.config.idle_ms / 1000
        return cmds

    def _on_done(self, ev: ProviderDone) -> list[Command]:
        pf = self._prefetch
        if pf is not None and pf.request_id == ev.request_id:
            self._prefetch = None
            self.stats.requests_completed += 1
            self._remember(pf, self._finished_text(pf, ev))
            return []
        fl = self._inflight
        if fl is None or fl.request_id != ev.request_id:
            return []
        self._inflight = None
        self.stats.requests_completed += 1
        text = self._finished_text(fl, ev)
        self._remember(fl, text)
        if self._open != fl.version:
            return []
        shown = _Finished(fl.prefix, fl.suffix, text)
        self._shown = shown if text else None
        return [self._model_final(fl, ev, text)] + (self._prefetch_after(shown) if text else [])

    def _prefetch_after(self, shown: _Finished) -> list[Command]:
        target = shown.prefix + shown.text
        hit = self.cache.get(target)
        if self._prefetch is not None or (hit is not None and hit[0] == shown.suffix):
            return []
        rid = self._next_request_id
        self._next_request_id += 1
        self.stats.requests_started += 1
        self._prefetch = _Request(rid, self.version, target, shown.suffix)
        return [StartRequest(rid, self.version, target, shown.suffix)]

    def _remember(self, req: _Request, text: str) -> None:
        if not text:
            return
        self.cache[req.prefix] = (req.suffix, text)
        self.cache.move_to_end(req.prefix)
        while len(self.cache) > self.config.cache_entries:
            self.cache.popitem(last=False)

    def _drop(self, reason: str) -> list[Command]:
        self._deadline = None
        self._shown = None
        cancel = "client" if reason == "client" else "superseded"
        cmds = self._abort(cancel) + self._abort(cancel, "_prefetch")
        return cmds + self._close(reason)


STRATEGIES = {
    "naive": NaiveEngine,
    "continue": ContinueStyleEngine,
    "copilot": CopilotStyleEngine,
    "ours": SuggestionEngine,
}

# Variants of ours for the before/after figures of each engine change (docs/performance.md):
# "ours-before" has every change of issue 10 switched off (the engine as it was); each other
# variant switches one change on over it; "ours+prefetch" is ours with prefetch on.
_BEFORE = dict(
    prefetch=False,
    recall_suggestions=0,
    keep_request_over_typo=False,
    drop_likely_rejected=False,
    cold_after=0,
)
ENGINE_VARIANTS = {
    "ours-before": _BEFORE,
    "ours-before+reuse": {**_BEFORE, "recall_suggestions": 4, "keep_request_over_typo": True},
    "ours-before+drop": {**_BEFORE, "drop_likely_rejected": True},
    "ours-before+cold": {**_BEFORE, "cold_after": 3, "cold_pause_ms": 300.0},
    "ours+cold": {"cold_pause_ms": 300.0},
    "ours+prefetch": {"prefetch": True},
    "ours+keep": {"keep_request_over_typo": True},
    # Issue 26: wait for a pause (a multiple of the typist's usual gap between keys) before asking.
    "ours+bpause": {"boundary_pause_factor": 1.0},
    "ours+pause1.5": {"pause_factor": 1.5, "boundary_pause_factor": 1.5, "debounce_max_ms": 300.0},
    "ours+pause2": {"pause_factor": 2.0, "boundary_pause_factor": 2.0, "debounce_max_ms": 400.0},
    # Mid-word only: wait 250 ms before asking (at a word boundary ask at once, as ours does).
    "ours+mid250": {"pause_factor": 10.0, "debounce_max_ms": 250.0},
}
for _name, _changes in ENGINE_VARIANTS.items():
    STRATEGIES[_name] = functools.partial(
        lambda changes, clock=time.monotonic: SuggestionEngine(EngineConfig(**changes), clock),
        _changes,
    )


def make_engine(name: str, clock: Clock = time.monotonic):
    """A fresh engine of strategy ``name`` ("naive", "continue", "copilot" or "ours")."""
    try:
        cls = STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; one of {sorted(STRATEGIES)}") from None
    return cls(clock=clock)
