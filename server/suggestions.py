"""A connection's suggestions: the runtime around its :class:`SuggestionEngine`.

The engine is sans-I/O; this part gives it a clock, a timer for its deadlines, and provider
streams for its requests, and turns its commands into frames: deltas (the first at once, later
growth at most every ``DELTA_INTERVAL_S``), ``done``, ``cancelled`` and ``error``. Every request
is costed when it ends, a cancelled one by what it streamed, and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from assistant.providers.base import (
    CompletionRequest,
    Final,
    ProviderError,
    ProviderErrorKind,
    TextChunk,
)
from assistant.suggest.engine import (
    Accept,
    CancelRequest,
    ClearSuggestion,
    Closed,
    Dismiss,
    Edit,
    EngineConfig,
    ProviderChunk,
    ProviderDone,
    ProviderFailed,
    ShowSuggestion,
    StartRequest,
    SuggestionEngine,
    Tick,
    TierFree,
)
from assistant.suggest.usefulness_frames import FrameUsefulness

from . import protocol as p
from .logs import log as server_log
from .logs import log_event
from .outbox import ConnectionStats, Outbox
from .wiring import price

ERROR_CODES = {
    ProviderErrorKind.RATE_LIMITED: p.RATE_LIMITED,
    ProviderErrorKind.OVERLOADED: p.UNAVAILABLE,
    ProviderErrorKind.AUTH: p.UNAVAILABLE,
    ProviderErrorKind.NETWORK: p.UNAVAILABLE,
    ProviderErrorKind.TIMEOUT: p.UNAVAILABLE,
    ProviderErrorKind.INTERNAL: p.UNAVAILABLE,
    ProviderErrorKind.BAD_REQUEST: p.INTERNAL,  # our prompt was wrong, not the client's frame
}

# After a suggestion's first delta (sent at once: the ghost appears as soon as there is text),
# more text goes out at most this often, what streamed in between in one frame. A model answer
# streams a token every few ms, and a frame each was 20 WebSocket frames an answer, for growth
# no reader sees faster than this (9-13 % of the server's CPU per keystroke at 250 typists,
# docs/reliability.md).
DELTA_INTERVAL_S = 0.025

# The suggestions whose shown length is kept for clamping ``accept`` (a writer accepts the one
# on screen; 64 is many keystrokes of margin for a late accept).
SHOWN_IDS_KEPT = 64


def _timer_delay(seconds: float) -> float:
    """The delay to arm for a deadline ``seconds`` away, so the timer never fires before it.

    uvloop keeps time in whole milliseconds and rounds a timer's delay to the nearest one, so
    ``call_at(deadline)`` fires up to half a millisecond early; the engine's ``Tick`` then does
    nothing, the timer is re-armed with a zero delay, and the loop spins (hundreds of wake-ups,
    measured) until its clock reaches the deadline. Whole milliseconds rounded up, plus a tenth
    of one that uvloop's rounding drops, fire at the first millisecond at or after the deadline:
    on uvloop when the spinning timer used to get through, on asyncio's loop at most 1.1 ms
    after the deadline."""
    if seconds <= 0:
        return 0.0
    # A deadline a float's rounding error ahead (loop.time() is whole ms, the deadline is not
    # always) waits for the next millisecond, as the spinning timer did, not for none.
    return max(1, math.ceil(seconds * 1000 - 1e-6)) / 1000 + 0.0001


@dataclass
class _Request:
    """A provider request in flight (engine request id, not the client's id)."""

    request_id: int
    version: int
    prefix: str
    suffix: str
    billable: bool
    started: float = 0.0
    task: asyncio.Task | None = None
    streamed: list[str] = field(default_factory=list)
    reservation: Any = None  # the writer's budget held for it (server.connection._reserve)
    meter: dict = field(default_factory=dict)  # the usage message_start reported, if it came


def make_engine(hub: Any, loop: asyncio.AbstractEventLoop) -> Any:
    """The connection's engine: the hub's factory's (the benchmark compares strategies with
    it), else a :class:`SuggestionEngine` from the settings."""
    if hub.engine_factory is not None:
        return hub.engine_factory(loop.time)
    settings = hub.settings
    return SuggestionEngine(
        EngineConfig(
            debounce_min_ms=settings.debounce_min_ms,
            debounce_max_ms=settings.debounce_max_ms,
            cache_entries=settings.cache_entries,
            prefetch=settings.prefetch,
            cold_pause_ms=settings.cold_pause_ms,
        ),
        clock=loop.time,
    )


class SuggestionRuntime:
    """Drives one engine. ``account(model, usage) -> cost`` books what a request spent;
    ``message_of(err)`` is the redacted text of a provider error."""

    def __init__(
        self,
        hub: Any,
        conn_id: str,
        outbox: Outbox,
        stats: ConnectionStats,
        *,
        account: Callable[..., float],
        message_of: Callable[[ProviderError | None], str],
        reserve: Callable[[float], Awaitable[Any]] | None = None,
        give_back: Callable[[Any], None] = lambda reservation: None,
        on_accept: Callable[[int], None] = lambda chars: None,
    ) -> None:
        self.hub = hub
        self._reserve = reserve
        self._give_back = give_back
        self._on_accept = on_accept
        self.id = conn_id
        self.setup = hub.setup
        self.metrics = hub.metrics
        self.settings = hub.settings
        self.loop = asyncio.get_running_loop()
        self.engine = make_engine(hub, self.loop)
        self.outbox = outbox
        self.stats = stats
        self._account = account
        self._message_of = message_of
        self.usefulness = FrameUsefulness()  # what the writer got, for /metrics
        self._published = (0, 0, 0, 0, 0)  # shown, accepted, rejected, pauses, served
        self._requests: dict[int, _Request] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self.latest_suggest = -1
        self._delta_version: int | None = None
        self._delta_sent = ""
        self._delta_pending = ""  # the latest text for _delta_version, not yet sent
        self._delta_last_at = 0.0  # when the last delta for _delta_version went out
        self._delta_timer: asyncio.TimerHandle | None = None
        self._warmed_offline = False
        # suggest id -> [characters shown under it, characters accepted of them]
        self._shown: OrderedDict[int, list[int]] = OrderedDict()
        self.closing = False  # shutdown or disconnect: the engine gets nothing more

    # ------------------------------------------------------------------------- from frames

    def suggest(self, fid: int, prefix: str, suffix: str) -> None:
        self.stats.suggests += 1
        self.latest_suggest = self.outbox.stale_below = fid
        self.usefulness.suggest(self.loop.time(), fid, prefix)
        self.publish_usefulness()
        self.warm_once(prefix, suffix)
        self._handle(Edit(prefix, suffix, fid))

    def warm_once(self, prefix: str, suffix: str) -> None:
        """The first ``warm`` (or, without one, the first ``suggest``) hands the document to the
        offline tier; later ones would only redo that work."""
        if not self._warmed_offline:
            self._warmed_offline = True
            self.hub.warm_offline(prefix, suffix, self.id)

    def cancel(self, fid: int) -> None:
        if fid == self.latest_suggest:
            self._handle(Dismiss())

    def accept(self, fid: int, chars: int) -> None:
        """The writer took ``chars`` of suggestion ``fid``: at most what was shown under that id
        and not taken yet (an ``accept`` naming a ping's id, or claiming 2**64 characters, must
        not reach the counters the cost per saved character is computed from)."""
        entry = self._shown.get(fid)
        chars = min(chars, entry[0] - entry[1]) if entry is not None else 0
        if chars <= 0:
            return
        entry[1] += chars
        m = self.metrics
        m.accepted_chars.inc(chars)
        m.accept_keys.inc()
        m.saved_chars.inc(max(0, chars - 1))
        self.usefulness.accept(self.loop.time(), chars)
        self._on_accept(chars)
        self._handle(Accept(chars))

    def tier_free(self) -> None:
        """The offline tier has room again (the hub fans this out): a held answer re-asks."""
        if not self.closing:
            self._handle(TierFree())

    def sent(self, kind: str, frame: dict) -> None:
        """A suggestion reply went out (the outbox tells): count what the writer got."""
        text = frame.get("text")
        if kind in ("delta", "done") and isinstance(text, str):
            fid = frame["id"]
            entry = self._shown.get(fid)
            if entry is None:
                entry = self._shown[fid] = [0, 0]
                if len(self._shown) > SHOWN_IDS_KEPT:
                    self._shown.popitem(last=False)
            entry[0] = entry[0] + len(text) if kind == "delta" else max(entry[0], len(text))
        self.usefulness.frame(self.loop.time(), frame)
        self.publish_usefulness()

    # ---------------------------------------------------------------------------- ending

    def teardown(self, why: str) -> None:
        """Stop the timer, every request and any waiting delta (idempotent)."""
        if self.closing:
            return
        self.closing = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._drop_delta()
        for req in list(self._requests.values()):
            self._cancel_request(req, why)
        self._requests.clear()

    def finish(self) -> None:
        self.usefulness.finish(self.loop.time())
        self.publish_usefulness()

    # ---------------------------------------------------------------------------- engine

    def _handle(self, event: Any) -> None:
        if self.closing:
            return
        for cmd in self.engine.handle(event):
            self._perform(cmd)
        self._arm_timer()

    def _arm_timer(self) -> None:
        deadline = self.engine.next_deadline
        if deadline == self._timer_at and self._timer is not None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            self._timer = self.loop.call_later(
                _timer_delay(deadline - self.loop.time()), self._on_timer
            )

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        try:
            self._handle(Tick())
        except Exception:
            logging.getLogger("assistant.server").exception("tick failed")

    def _perform(self, cmd: Any) -> None:
        match cmd:
            case StartRequest():
                req = _Request(
                    cmd.request_id,
                    cmd.version,
                    cmd.prefix,
                    cmd.suffix,
                    self.setup.billable_now(),
                    self.loop.time(),
                )
                self._requests[cmd.request_id] = req
                req.task = self.loop.create_task(self._stream(req))
                self.stats.requests += 1
                m = self.metrics
                m.child(m.requests, "prefetch" if cmd.prefetch else "suggest").inc()
            case CancelRequest():
                req = self._requests.pop(cmd.request_id, None)
                if req is not None:
                    self._cancel_request(req, cmd.reason)
            case ShowSuggestion(final=False):
                self._show_delta(cmd.version, cmd.text)
            case ShowSuggestion():
                self._emit_done(cmd)
            case Closed():
                if cmd.outcome == "cancelled":
                    m = self.metrics
                    m.child(m.cancellations, cmd.reason or "superseded").inc()
                    self.outbox.emit_cancelled(cmd.version, cmd.reason or "superseded")
                else:
                    err = cmd.error
                    code = ERROR_CODES.get(err.kind, p.UNAVAILABLE) if err else p.UNAVAILABLE
                    self.outbox.emit_error(cmd.version, code, self._message_of(err))
            case ClearSuggestion():
                pass

    # ---------------------------------------------------------------------------- deltas

    def _show_delta(self, version: int, text: str) -> None:
        """Stream ``text`` (the whole suggestion so far) as deltas: the first at once, later
        growth at most every ``DELTA_INTERVAL_S`` (``done`` carries the whole text anyway)."""
        if version != self._delta_version:
            self._drop_delta()
            self._delta_version, self._delta_sent = version, ""
        sent = self._delta_sent
        if not (text.startswith(sent) and len(text) > len(sent)):
            self._drop_delta()  # what was waiting is no longer what the engine shows
            return  # only appends stream; anything else waits for done
        now = self.loop.time()
        due = self._delta_last_at + DELTA_INTERVAL_S
        if not sent or now >= due:
            self._send_delta(text, now)
            return
        self._delta_pending = text
        if self._delta_timer is None:
            self._delta_timer = self.loop.call_later(_timer_delay(due - now), self._flush_delta)

    def _send_delta(self, text: str, now: float) -> None:
        version, sent = self._delta_version, self._delta_sent
        assert version is not None
        self._delta_sent, self._delta_pending, self._delta_last_at = text, "", now
        self.outbox.emit("delta", version, p.delta_frame(version, text[len(sent) :]))

    def _flush_delta(self) -> None:
        self._delta_timer = None
        pending = self._delta_pending
        if (
            pending
            and not self.closing
            and self._delta_version is not None
            and self._delta_version >= self.outbox.stale_below
        ):
            self._send_delta(pending, self.loop.time())
        self._delta_pending = ""

    def _drop_delta(self) -> None:
        """Forget text not yet streamed (its suggestion ended, or another replaced it)."""
        self._delta_pending = ""
        if self._delta_timer is not None:
            self._delta_timer.cancel()
            self._delta_timer = None

    def end_stream(self, fid: int | None) -> None:
        """``fid``'s terminal frame is going out: no delta for it may follow."""
        if fid is not None and fid == self._delta_version:
            self._drop_delta()
            self._delta_version, self._delta_sent = None, ""

    def _emit_done(self, cmd: ShowSuggestion) -> None:
        self.end_stream(cmd.version)
        usage = cmd.usage
        cost = price(cmd.model, usage) if (usage is not None and cmd.model) else 0.0
        source = cmd.source or "none"
        model = cmd.model
        if not model and source in ("model", "offline"):
            model = self.setup.model
        latency_ms = cmd.latency_ms  # from reading the suggest frame (same clock as ours)
        m = self.metrics
        m.child(m.suggestion_latency, source).observe(latency_ms / 1000)
        m.child(m.suggestions, source).inc()
        self.outbox.emit(
            "done",
            cmd.version,
            p.done_frame(
                cmd.version,
                cmd.text,
                source=source,
                model=model,
                latency_ms=latency_ms,
                usage=usage,
                cost_usd=cost,
            ),
        )

    def publish_usefulness(self) -> None:
        """Move what the writer got since the last call into the server's counters."""
        now = self.usefulness.counts
        counts = (now.shown, now.accepted, now.rejected, now.pauses, now.pauses_with_suggestion)
        if counts == self._published and not now.pause_to_visible_ms:
            return  # (most frames change nothing: no metric to touch)
        last, m = self._published, self.metrics
        for i, counter in enumerate(
            (m.suggestions_shown, m.suggestions_accepted, m.suggestions_rejected)
        ):
            if counts[i] > last[i]:
                counter.inc(counts[i] - last[i])
        served = counts[4] - last[4]
        missed = counts[3] - last[3] - served
        if served:
            m.child(m.pauses, "suggestion").inc(served)
        if missed:
            m.child(m.pauses, "nothing").inc(missed)
        for ms in now.pause_to_visible_ms:
            m.pause_to_visible.observe(ms / 1000)
        now.pause_to_visible_ms.clear()
        self._published = counts

    # -------------------------------------------------------------------------- provider

    async def _stream(self, req: _Request) -> None:
        rid = req.request_id
        request = CompletionRequest(
            req.prefix,
            req.suffix,
            max_tokens=self.settings.suggest_max_tokens,
            document_id=self.id,
            meter=req.meter,
        )
        provider = self.setup.provider
        if req.billable and self._reserve is not None:
            # Nothing goes out (nor is costed on a cancel) until the writer's budget holds it.
            req.billable = False
            _, amount = self.setup.suggestion_worst_case(req.prefix, req.suffix)
            req.reservation = await self._reserve(amount)
            if self._requests.get(rid) is not req:
                self._give_back(req.reservation)
                return
            if req.reservation.granted:
                req.billable = True
            elif self.setup.offline is not None:
                provider = self.setup.offline  # the budget is spent: the offline tier answers
        stream = provider.stream(request)
        try:
            got_final = False
            async for event in stream:
                if self._requests.get(rid) is not req:
                    return  # cancelled while the chunk was in transit
                if isinstance(event, TextChunk):
                    req.streamed.append(event.text)
                    self._handle(ProviderChunk(rid, event.text))
                elif isinstance(event, Final):
                    got_final = True
                    self._requests.pop(rid, None)
                    cost = self._account(event.model, event.usage, "suggestion", req.reservation)
                    self._log_request(req, "done", event.source, event.model, event.usage, cost)
                    self._handle(
                        ProviderDone(
                            rid,
                            event.usage,
                            event.model,
                            event.source,
                            truncated=event.stop_reason == "max_tokens",
                            retry_when_free=event.retry_when_free,
                        )
                    )
                    break
            if not got_final and self._requests.get(rid) is req:
                raise ProviderError(ProviderErrorKind.INTERNAL, "the provider stream ended early")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            err = exc if isinstance(exc, ProviderError) else None
            if err is None:
                logging.getLogger("assistant.server").exception("provider failed")
                err = ProviderError(ProviderErrorKind.INTERNAL, f"{type(exc).__name__}")
            if self._requests.pop(rid, None) is req:
                self._log_request(req, f"failed_{err.kind}", "", "", None, 0.0)
                if err.kind == ProviderErrorKind.RATE_LIMITED:
                    self.metrics.rate_limit_events.labels("provider").inc()
                self._handle(ProviderFailed(rid, err))
        finally:
            self._give_back(req.reservation)  # what no booking took (a failure, an offline answer)
            with contextlib.suppress(BaseException):
                await stream.aclose()

    def _cancel_request(self, req: _Request, reason: str) -> None:
        """Stop a request now; cost what it streamed when Anthropic was serving it."""
        if req.task is not None:
            req.task.cancel()
        m = self.metrics
        m.child(m.cancellations, f"request_{reason}").inc()
        model, usage, cost = "", None, 0.0
        if req.billable:
            model, usage = self.setup.estimate_cancelled(
                req.prefix, req.suffix, "".join(req.streamed), req.meter.get("usage")
            )
            cost = self._account(model, usage, "suggestion", req.reservation, cancelled=True)
        self._log_request(req, f"cancelled_{reason}", "", model, usage, cost)

    def _log_request(
        self, req: _Request, outcome: str, source: str, model: str, usage: Any, cost: float
    ) -> None:
        # One line per request at info was 42,735 lines (12 MB) in 15 s at 2,000 offline
        # writers; what each request cost is in the metrics. Served and cancelled requests are
        # debug lines (ASSISTANT_LOG_LEVEL=debug), failed ones info.
        level = logging.INFO if outcome.startswith("failed") else logging.DEBUG
        if not server_log.isEnabledFor(level):
            return
        log_event(
            "suggest_request",
            level,
            conn=self.id,
            id=req.version,
            request=req.request_id,
            outcome=outcome,
            source=source,
            model=model,
            input_tokens=getattr(usage, "input_tokens", 0),
            output_tokens=getattr(usage, "output_tokens", 0),
            estimated=bool(getattr(usage, "estimated", False)),
            cost_usd=round(cost, 8),
            ms=round((self.loop.time() - req.started) * 1000, 1),
        )
