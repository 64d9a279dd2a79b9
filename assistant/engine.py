"""The suggestion engine: a sans-I/O state machine, one per document.

Events go in (an edit, a tick of the clock, a chunk from the provider, an accept) and commands come
out (start a request, cancel one, show a suggestion, close a version). The engine never awaits,
sleeps or reads a clock of its own; the runtime (the WebSocket server, the benchmark, a test)
performs the commands and feeds back what happened. That keeps every rule here testable in
microseconds and the same for every runtime.

Versions: each edit carries a version (the client's request id). Every version gets exactly one
terminal command: ``ShowSuggestion(final=True)`` or ``Closed``. Once a newer edit has been seen,
nothing more is ever emitted for an older version, so a stale suggestion cannot be shown.

Requests: at most one is in flight. A newer edit cancels it at once unless the text the user typed
is consistent with what the request is streaming (type-through), in which case the same request
keeps serving the newer version.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from .pricing import Usage
from .providers.base import ProviderError
from .suggestion_text import finalize, visible_prefix

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


@dataclass(frozen=True)
class ProviderFailed:
    request_id: int
    error: ProviderError


@dataclass(frozen=True)
class Accept:
    """The user took ``chars`` characters of the suggestion (telemetry; the client inserts them)."""

    chars: int


@dataclass(frozen=True)
class Dismiss:
    """Esc, or the client cancelled: hide the suggestion and stop asking until the next edit."""


Event = Edit | CursorMoved | Tick | ProviderChunk | ProviderDone | ProviderFailed | Accept | Dismiss

# ---------------------------------------------------------------------------------------------
# Commands (engine -> runtime)


@dataclass(frozen=True)
class StartRequest:
    request_id: int
    version: int
    prefix: str
    suffix: str


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
    source: str = ""  # final only: "model" | "offline" | "cache" | "typethrough" | "none"
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
    cache_entries: int = 256
    cache_context_chars: int = 96  # how much text before the cursor keys the cache
    cache_suffix_chars: int = 32
    type_ahead_slack: int = 6  # chars typed past a streaming request's text before giving up on it
    suggest_mid_line: bool = False  # ask even when words follow the cursor on its line


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


@dataclass
class _Inflight:
    request_id: int
    prefix: str
    suffix: str
    started: float
    received: str = ""
    shown: str = ""  # what has been shown of it for the current version


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
        self._next_request_id = 1

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

    def debounce_ms(self, prefix: str) -> float:
        """How long to wait after this keystroke before asking the model.

        None after a word or sentence boundary (the user is likely to pause, and a suggestion
        for the next words is most useful there); mid-word, a short pause scaled to this
        typist's pace so a fast typist does not trigger a request per letter.
        """
        if not prefix or prefix[-1] in _BOUNDARY:
            return 0.0
        cfg = self.config
        return min(cfg.debounce_max_ms, max(cfg.debounce_min_ms, self._gap_ewma_ms))

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
                return self._drop_everything("superseded")
            case Dismiss():
                return self._drop_everything("client")
            case Accept():
                self.stats.accepted_chars += max(0, event.chars)
                return []
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

        # 1. The request in flight may still fit: the user typed what it is streaming.
        fl = self._inflight
        if fl is not None:
            typed = self._typed_since(fl.prefix, fl.suffix)
            visible = visible_prefix(fl.received, fl.prefix)
            if typed is not None and (
                visible.startswith(typed)
                or (
                    typed.startswith(visible)
                    and len(typed) - len(visible) <= self.config.type_ahead_slack
                )
            ):
                fl.shown = ""
                cmds.extend(self._show_streaming(fl))
                return cmds
            cmds.extend(self._cancel_inflight("superseded"))

        # 2. A finished suggestion the user is typing through.
        sh = self._shown
        if sh is not None:
            typed = self._typed_since(sh.prefix, sh.suffix)
            if typed is not None and sh.text.startswith(typed) and len(typed) < len(sh.text):
                self.stats.shown_typethrough += 1
                return cmds + [self._final(sh.text[len(typed) :], "typethrough")]
            self._shown = None
            cmds.append(ClearSuggestion())

        # 3. Something we made before for this very context.
        cached = self.cache.get(ev.prefix, ev.suffix)
        if cached is not None:
            self.stats.shown_cache += 1
            self._shown = _Shown(ev.prefix, ev.suffix, cached, "cache")
            return cmds + [self._final(cached, "cache")]

        # 4. Ask, after the debounce.
        if not self._worth_asking():
            return cmds + [self._final("", "none")]
        self._deadline = now + self.debounce_ms(ev.prefix) / 1000
        cmds.extend(self._on_tick())
        return cmds

    def _on_tick(self) -> list[Command]:
        if self._deadline is None or self.clock() < self._deadline or self._open is None:
            return []
        self._deadline = None
        cmds = self._cancel_inflight("superseded")
        rid = self._next_request_id
        self._next_request_id += 1
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
        if not text and fl.received.strip():
            self.stats.weak_dropped += 1
        if text:
            self.cache.put(fl.prefix, fl.suffix, text)
        if self._open is None:
            return []
        typed = self._typed_since(fl.prefix, fl.suffix)
        if typed is not None and (not text or (text.startswith(typed) and len(typed) < len(text))):
            self._shown = _Shown(fl.prefix, fl.suffix, text, ev.source) if text else None
            self.stats.shown_model += bool(text)
            return [
                self._final(
                    text[len(typed) :] if text else "",
                    ev.source,
                    request_id=fl.request_id,
                    usage=ev.usage,
                    model=ev.model,
                )
            ]
        # The user typed past (or away from) this suggestion while it finished: ask again.
        self._deadline = self.clock()
        return self._on_tick()

    def _on_failed(self, ev: ProviderFailed) -> list[Command]:
        fl = self._inflight
        if fl is None or ev.request_id != fl.request_id:
            return []
        self._inflight = None
        self.stats.requests_failed += 1
        if self._open is None:
            return []
        version, self._open = self._open, None
        return [ClearSuggestion(), Closed(version, "error", ev.error.kind.value, ev.error)]

    # -- helpers ----------------------------------------------------------------------------

    def _typed_since(self, prefix: str, suffix: str) -> str | None:
        """What the user typed after ``prefix`` with the same text after the cursor, if that is all."""
        if self.suffix != suffix or not self.prefix.startswith(prefix):
            return None
        return self.prefix[len(prefix) :]

    def _show_streaming(self, fl: _Inflight) -> list[Command]:
        typed = self._typed_since(fl.prefix, fl.suffix)
        visible = visible_prefix(fl.received, fl.prefix)
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
        self._deadline = max(self.clock(), self._edit_time + self.debounce_ms(self.prefix) / 1000)
        return cmds + self._on_tick()

    def _final(self, text: str, source: str, **extra) -> ShowSuggestion:
        version, self._open = self._open, None
        assert version is not None
        latency = (self.clock() - self._edit_time) * 1000
        return ShowSuggestion(version, text, final=True, source=source, latency_ms=latency, **extra)

    def _cancel_inflight(self, reason: str) -> list[Command]:
        fl, self._inflight = self._inflight, None
        if fl is None:
            return []
        self.stats.requests_cancelled += 1
        return [CancelRequest(fl.request_id, reason)]

    def _drop_everything(self, reason: str) -> list[Command]:
        cmds = self._cancel_inflight("client" if reason == "client" else "superseded")
        self._deadline = None
        self._shown = None
        cmds.append(ClearSuggestion())
        if self._open is not None:
            cmds.append(Closed(self._open, "cancelled", reason))
            self._open = None
        return cmds

    def _worth_asking(self) -> bool:
        if not self.prefix.strip():
            return False
        if self.config.suggest_mid_line:
            return True
        rest_of_line = self.suffix.split("\n", 1)[0]
        return not any(c.isalnum() for c in rest_of_line)


@dataclass
class ManualClock:
    """A clock tests and simulations move by hand."""

    now: float = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
