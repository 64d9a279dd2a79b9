"""Two other ways to decide when to ask the model, to compare ours against on the same traces.

Both speak exactly the event/command interface of :class:`assistant.engine.SuggestionEngine`
(``handle(event) -> commands``, ``next_deadline``, ``stats``, an injected clock), so the server,
the benchmark and the tests drive them unchanged, and every version still gets exactly one
terminal command and never a stale suggestion: the comparison is about requests, tokens and
latency, not about correctness.

- :class:`NaiveEngine`: a request on every keystroke, never cancelled. Every request runs to the
  end and is billed; only the latest version's suggestion is shown.
- :class:`ContinueStyleEngine`: after Continue's autocomplete (continuedev/continue): a fixed
  350 ms debounce restarted by every keystroke, the request in flight aborted by any new
  keystroke, an LRU cache keyed on the exact text before the cursor, and a suggestion shown
  only when complete (an inline completion item is not streamed).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

from .engine import (
    Accept,
    CancelRequest,
    ClearSuggestion,
    Clock,
    Closed,
    Command,
    CursorMoved,
    Dismiss,
    Edit,
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
from .suggestion_text import finalize, visible_prefix


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
                text = finalize(req.received, req.prefix, req.suffix, truncated=event.truncated)
                self.stats.shown_model += bool(text)
                return [
                    self._final(
                        text,
                        event.source,
                        request_id=req.request_id,
                        usage=event.usage,
                        model=event.model,
                    )
                ]
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


class ContinueStyleEngine(_Versions):
    """Fixed debounce, abort on keystroke, exact-prefix LRU cache, shown when complete."""

    def __init__(self, config: ContinueConfig | None = None, clock: Clock = time.monotonic):
        super().__init__(clock)
        self.config = config or ContinueConfig()
        self.cache: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._deadline: float | None = None
        self._inflight: _Request | None = None

    @property
    def next_deadline(self) -> float | None:
        return self._deadline

    @property
    def inflight_request(self) -> int | None:
        return self._inflight.request_id if self._inflight else None

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
                if self._deadline is None or self.clock() < self._deadline or self._open is None:
                    return []
                self._deadline = None
                req, start = self._start()
                self._inflight = req
                return [start]
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
                text = finalize(fl.received, fl.prefix, fl.suffix, truncated=event.truncated)
                if text:
                    self.cache[(fl.prefix, fl.suffix)] = text
                    self.cache.move_to_end((fl.prefix, fl.suffix))
                    while len(self.cache) > self.config.cache_entries:
                        self.cache.popitem(last=False)
                if self._open != fl.version:
                    return []
                self.stats.shown_model += bool(text)
                return [
                    self._final(
                        text,
                        event.source,
                        request_id=fl.request_id,
                        usage=event.usage,
                        model=event.model,
                    )
                ]
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

    def _abort(self, reason: str) -> list[Command]:
        fl, self._inflight = self._inflight, None
        if fl is None:
            return []
        self.stats.requests_cancelled += 1
        return [CancelRequest(fl.request_id, reason)]


STRATEGIES = {
    "naive": NaiveEngine,
    "continue": ContinueStyleEngine,
    "ours": SuggestionEngine,
}


def make_engine(name: str, clock: Clock = time.monotonic):
    """A fresh engine of strategy ``name`` ("naive", "continue" or "ours")."""
    try:
        cls = STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; one of {sorted(STRATEGIES)}") from None
    return cls(clock=clock)
