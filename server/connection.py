"""One WebSocket, one document: the runtime that drives a :class:`SuggestionEngine`.

Everything for a connection runs on the event loop without locks. Frames are read by one loop
(:meth:`Connection.run`), the engine is fed synchronously from there, from provider tasks and from
the debounce timer, and every frame to send goes into one ordered outbox drained by one writer
task. The writer checks staleness when it sends: once ``suggest`` N+1 (or, in 1.1, an ``open`` or
``edit`` with a greater id) has been read, a ``delta`` for an older id still in the outbox is
dropped and a ``done`` becomes ``cancelled`` (``superseded``), so each id still gets exactly one
terminal frame. The 1.1 document itself lives in :mod:`server.document`; this module only routes
its frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.websockets import WebSocket

from assistant.engine import (
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
from assistant.pricing import Usage
from assistant.providers.base import (
    CompletionRequest,
    Final,
    ProviderError,
    ProviderErrorKind,
    TextChunk,
)
from assistant.usefulness_frames import FrameUsefulness

from . import protocol as p
from .document import DocumentError, DocumentLimits, DocumentSession
from .logs import log_event, redact
from .ratelimit import TokenBucket
from .wiring import price

if TYPE_CHECKING:
    from .hub import Hub

_ERROR_CODES = {
    ProviderErrorKind.RATE_LIMITED: p.RATE_LIMITED,
    ProviderErrorKind.OVERLOADED: p.UNAVAILABLE,
    ProviderErrorKind.AUTH: p.UNAVAILABLE,
    ProviderErrorKind.NETWORK: p.UNAVAILABLE,
    ProviderErrorKind.TIMEOUT: p.UNAVAILABLE,
    ProviderErrorKind.INTERNAL: p.UNAVAILABLE,
    ProviderErrorKind.BAD_REQUEST: p.INTERNAL,  # our prompt was wrong, not the client's frame
}
_CLOSE = object()


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


# After a suggestion's first delta (sent at once: the ghost appears as soon as there is text),
# more text goes out at most this often, what streamed in between in one frame. A model answer
# streams a token every few ms, and a frame each was 20 WebSocket frames an answer, for growth
# no reader sees faster than this (9-13 % of the server's CPU per keystroke at 250 typists,
# docs/reliability.md).
DELTA_INTERVAL_S = 0.025

_STREAMING = ("delta", "done")
_SUGGESTION_REPLIES = ("delta", "done", "cancelled", "error")


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


@dataclass
class _ReviewJob:
    id: int
    task: asyncio.Task
    started: float


@dataclass
class ConnectionStats:
    frames_in: int = 0
    frames_out: int = 0
    suggests: int = 0
    done: int = 0
    cancelled: int = 0
    errors: int = 0
    requests: int = 0
    reviews: int = 0
    cost_usd: float = 0.0


class Connection:
    def __init__(self, ws: WebSocket, hub: Hub, conn_id: str) -> None:
        self.ws = ws
        self.hub = hub
        self.id = conn_id
        self.setup = hub.setup
        self.metrics = hub.metrics
        settings = hub.settings
        self.settings = settings
        self.loop = asyncio.get_running_loop()
        if hub.engine_factory is not None:
            self.engine = hub.engine_factory(self.loop.time)
        else:
            self.engine = SuggestionEngine(
                EngineConfig(
                    debounce_min_ms=settings.debounce_min_ms,
                    debounce_max_ms=settings.debounce_max_ms,
                    cache_entries=settings.cache_entries,
                    prefetch=settings.prefetch,
                    cold_pause_ms=settings.cold_pause_ms,
                ),
                clock=self.loop.time,
            )
        self.limits = p.Limits(
            settings.max_prefix_chars, settings.max_suffix_chars, settings.max_review_chars
        )
        self.decoder = p.FrameDecoder(self.limits)
        self.documents = DocumentSession(
            DocumentLimits(self.limits.max_document_chars, settings.max_frame_bytes)
        )
        rate = settings.max_frames_per_second
        self.bucket = TokenBucket(rate, burst=max(1.0, rate), clock=self.loop.time)
        self.stats = ConnectionStats()
        self._requests: dict[int, _Request] = {}
        self._reviews: dict[int, _ReviewJob] = {}
        self._outbox: deque = deque()
        self._wake = asyncio.Event()
        self._writer: asyncio.Task | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._latest_suggest = -1
        self._stale_below = -1  # no delta/done goes out for a suggest id below this
        self._delta_version: int | None = None
        self._delta_sent = ""
        self._delta_pending = ""  # the latest text for _delta_version, not yet sent
        self._delta_last_at = 0.0  # when the last delta for _delta_version went out
        self._delta_timer: asyncio.TimerHandle | None = None
        self._warmed_offline = False
        self._closing = False  # shutdown or disconnect: the engine gets nothing more
        self._close_queued = False
        self._secrets = (settings.api_key, hub.token)
        self.usefulness = FrameUsefulness()  # what the writer got, for /metrics
        self._published = (0, 0, 0, 0, 0)  # shown, accepted, rejected, pauses, served

    @property
    def offline_documents(self) -> tuple[str, ...]:
        """The document ids this connection's requests give the offline tier (its own id: a
        reconnect is a new connection, and the client opens its text there again)."""
        return (self.id,)

    # ------------------------------------------------------------------ the connection's life

    async def run(self) -> None:
        self._writer = self.loop.create_task(self._write_loop())
        try:
            self._emit(
                "ready",
                None,
                p.ready_frame(
                    self.setup.label, self.setup.model, self.limits, self.settings.max_frame_bytes
                ),
            )
            status = self.setup.status
            if status is not None and status.state != "ok":
                self.send_status(status)
            while True:
                message = await self.ws.receive()
                kind = message["type"]
                if kind == "websocket.disconnect":
                    break
                if kind != "websocket.receive":
                    continue
                data = message.get("text")
                if data is None:
                    data = message.get("bytes") or b""
                self.on_frame(data)
        finally:
            self._teardown("client_gone")
            if self._writer is not None and not self._writer.done():
                if self._close_queued:  # shutdown() is flushing the last frames
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(asyncio.shield(self._writer), 2.0)
                self._writer.cancel()

    async def shutdown(self, code: int = 1001) -> None:
        """Server going away: every request in flight ends ``cancelled`` (``shutdown``), then
        the socket closes with ``code``."""
        if self._closing:
            return
        open_version = self.engine.open_version
        self._teardown("shutdown")
        if open_version is not None:
            self._emit_cancelled(open_version, "shutdown")
        for job in list(self._reviews.values()):
            self._emit_cancelled(job.id, "shutdown")
        self._reviews.clear()
        self._outbox.append((_CLOSE, code))
        self._close_queued = True
        self._wake.set()
        if self._writer is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(self._writer), 2.0)

    def _teardown(self, why: str) -> None:
        if self._closing:
            return
        self._closing = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._drop_delta()
        for req in list(self._requests.values()):
            self._cancel_request(req, why)
        self._requests.clear()
        for job in self._reviews.values():
            job.task.cancel()
            self.metrics.cancellations.labels(why).inc()
        if why != "shutdown":
            self._reviews.clear()
        self.usefulness.finish(self.loop.time())
        self._publish_usefulness()

    # ------------------------------------------------------------------------------- reading

    def on_frame(self, data: str | bytes) -> None:
        self.stats.frames_in += 1
        self.metrics.frames_in.inc()
        if self._closing:
            return
        try:
            frame = self.decoder.decode(data)
        except p.ProtocolError as err:
            self._emit_error(err.id, err.code, err.message)
            return
        if not self.bucket.take():
            self.metrics.rate_limit_events.labels("client").inc()
            fid = frame.id if isinstance(frame, p.ANSWERED_BY_ID) else None
            self._emit_error(fid, p.RATE_LIMITED, "too many frames; slow down")
            return
        try:
            self._dispatch(frame)
        except Exception as exc:  # a bug must cost one request, not the connection
            logging.getLogger("assistant.server").exception("frame handling failed")
            fid = frame.id if isinstance(frame, p.ANSWERED_BY_ID) else None
            self._emit_error(fid, p.INTERNAL, f"internal error ({type(exc).__name__})")

    def _dispatch(self, frame: p.ClientFrame) -> None:
        match frame:
            case p.Suggest():
                self._suggest(frame.id, frame.prefix, frame.suffix)
            case p.SuggestAt():
                try:
                    if frame.edit is not None:
                        self.documents.apply(frame.edit)
                    prefix, suffix = self.documents.around_cursor(frame.version)
                except DocumentError as err:
                    self._emit_error(frame.id, err.code, err.message)
                    return
                self._suggest(frame.id, prefix, suffix)
            case p.OpenDocument() | p.EditDocument():
                try:
                    doc = self.documents.apply(frame)
                except DocumentError as err:
                    self._emit_error(frame.id, err.code, err.message)
                    return
                self._stale_below = frame.id  # suggestions for the text before are stale
                if isinstance(frame, p.OpenDocument):
                    self._warm_once(*doc.around_cursor())
            case p.Warm():
                self._warm_once(frame.prefix, frame.suffix)
            case p.Cancel():
                if frame.id == self._latest_suggest:
                    self._handle(Dismiss())
            case p.AcceptChars():
                self.metrics.accepted_chars.inc(frame.chars)
                self.metrics.accept_keys.inc()
                self.metrics.saved_chars.inc(max(0, frame.chars - 1))
                self.usefulness.accept(self.loop.time(), frame.chars)
                self._handle(Accept(frame.chars))
            case p.Ping():
                self._emit("pong", frame.id, p.pong_frame(frame.id))
            case p.Review():
                self._start_review(frame)
            case p.CancelReview():
                job = self._reviews.pop(frame.id, None)
                if job is not None:
                    job.task.cancel()
                    self.metrics.cancellations.labels("client").inc()
                    self._emit_cancelled(frame.id, "client")

    def _suggest(self, fid: int, prefix: str, suffix: str) -> None:
        self.stats.suggests += 1
        self._latest_suggest = self._stale_below = fid
        self.usefulness.suggest(self.loop.time(), fid, prefix)
        self._publish_usefulness()
        self._warm_once(prefix, suffix)
        self._handle(Edit(prefix, suffix, fid))

    def _warm_once(self, prefix: str, suffix: str) -> None:
        """The first ``warm`` (or, without one, the first ``suggest``) hands the document to the
        offline tier; later ones would only redo that work."""
        if not self._warmed_offline:
            self._warmed_offline = True
            self.hub.warm_offline(prefix, suffix, self.id)

    # -------------------------------------------------------------------------------- engine

    def _handle(self, event: Any) -> None:
        if self._closing:
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

    def tier_free(self) -> None:
        """The offline tier has room again (the hub fans this out): a held answer re-asks."""
        if not self._closing:
            self._handle(TierFree())

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
                    self._emit_cancelled(cmd.version, cmd.reason or "superseded")
                else:
                    err = cmd.error
                    code = _ERROR_CODES.get(err.kind, p.UNAVAILABLE) if err else p.UNAVAILABLE
                    self._emit_error(cmd.version, code, self._message_of(err))
            case ClearSuggestion():
                pass

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
        self._emit("delta", version, p.delta_frame(version, text[len(sent) :]))

    def _flush_delta(self) -> None:
        self._delta_timer = None
        pending = self._delta_pending
        if (
            pending
            and not self._closing
            and self._delta_version is not None
            and self._delta_version >= self._stale_below
        ):
            self._send_delta(pending, self.loop.time())
        self._delta_pending = ""

    def _drop_delta(self) -> None:
        """Forget text not yet streamed (its suggestion ended, or another replaced it)."""
        self._delta_pending = ""
        if self._delta_timer is not None:
            self._delta_timer.cancel()
            self._delta_timer = None

    def _end_stream(self, fid: int | None) -> None:
        """``fid``'s terminal frame is going out: no delta for it may follow."""
        if fid is not None and fid == self._delta_version:
            self._drop_delta()
            self._delta_version, self._delta_sent = None, ""

    def _emit_done(self, cmd: ShowSuggestion) -> None:
        self._end_stream(cmd.version)
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
        self._emit(
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

    def _publish_usefulness(self) -> None:
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

    # ------------------------------------------------------------------------------ provider

    async def _stream(self, req: _Request) -> None:
        rid = req.request_id
        request = CompletionRequest(
            req.prefix,
            req.suffix,
            max_tokens=self.settings.suggest_max_tokens,
            document_id=self.id,
        )
        stream = self.setup.provider.stream(request)
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
                    cost = self._account(event.model, event.usage)
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
                req.prefix, req.suffix, "".join(req.streamed)
            )
            cost = self._account(model, usage)
        self._log_request(req, f"cancelled_{reason}", "", model, usage, cost)

    def _log_request(
        self, req: _Request, outcome: str, source: str, model: str, usage: Any, cost: float
    ) -> None:
        log_event(
            "suggest_request",
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

    def _account(self, model: str, usage: Usage | None) -> float:
        if usage is None or not model:
            return 0.0
        cost = price(model, usage)
        self.stats.cost_usd += cost
        self.metrics.spent(model, usage, cost)
        self.hub.ledger_add(model, usage)
        return cost

    # -------------------------------------------------------------------------------- review

    def _start_review(self, frame: p.Review) -> None:
        reviewer = self.setup.reviewer
        if reviewer is None:
            self._emit_error(frame.id, p.UNAVAILABLE, "review is not available on this server")
            return
        if len(self._reviews) >= max(1, self.settings.max_reviews_in_flight):
            self._emit_error(frame.id, p.RATE_LIMITED, "a review is already running")
            return
        self.stats.reviews += 1
        self.metrics.requests.labels("review").inc()
        task = self.loop.create_task(self._review(frame.id, frame.text, reviewer, frame.tier))
        self._reviews[frame.id] = _ReviewJob(frame.id, task, self.loop.time())

    async def _review(self, rid: int, text: str, reviewer: Any, tier: str | None = None) -> None:
        started = self.loop.time()
        finished = False
        # The connection is the document key: a re-review sends the edits since the last one
        # (prompt cache), and never another connection's text.
        stream = reviewer.review(text, tier=tier, document=self.id)
        try:
            async for ev in stream:
                if rid not in self._reviews:
                    return
                kind = type(ev).__name__
                if kind == "ReviewDelta":
                    self._emit("review_delta", rid, p.review_delta_frame(rid, ev.text))
                elif kind == "Finding":
                    self._emit(
                        "finding",
                        rid,
                        p.finding_frame(
                            rid,
                            index=ev.index,
                            quote=ev.quote,
                            problem=ev.problem,
                            replacement=ev.replacement,
                            severity=ev.severity,
                            start=ev.start,
                            end=ev.end,
                            tier=ev.tier,
                            confidence=ev.confidence,
                            confirmed=ev.confirmed,
                            category=ev.category,
                        ),
                    )
                elif kind == "FindingRetracted":
                    self._emit(
                        "finding_retracted",
                        rid,
                        p.finding_retracted_frame(rid, index=ev.index, reason=ev.reason),
                    )
                elif kind == "ReviewDone":
                    finished = True
                    self._finish_review(rid, ev, started)
                    break
            if not finished and rid in self._reviews:
                raise ProviderError(ProviderErrorKind.INTERNAL, "the review ended without a result")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            err = exc if isinstance(exc, ProviderError) else None
            if err is None:
                logging.getLogger("assistant.server").exception("review failed")
                err = ProviderError(ProviderErrorKind.INTERNAL, type(exc).__name__)
            if self._reviews.pop(rid, None) is not None:
                self._emit_error(
                    rid, _ERROR_CODES.get(err.kind, p.UNAVAILABLE), self._message_of(err)
                )
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(BaseException):
                    await aclose()

    def _finish_review(self, rid: int, ev: Any, started: float) -> None:
        if self._reviews.pop(rid, None) is None:
            return
        findings = getattr(ev, "findings", 0)
        if not isinstance(findings, int):
            findings = len(findings)
        usage = getattr(ev, "usage", None)
        model = getattr(ev, "model", "") or self.settings.review_model
        cost = getattr(ev, "cost_usd", None)
        tiers = getattr(ev, "tiers", ()) or ()
        if tiers:  # each tier's tokens on its own model's ledger line
            for report in tiers:
                if report.status == "ok":
                    self._account(report.model, report.usage)
        elif isinstance(usage, Usage):
            spent = self._account(model, usage)
            cost = spent if cost is None else cost
        latency = getattr(ev, "latency_ms", None) or (self.loop.time() - started) * 1000
        log_event(
            "review",
            conn=self.id,
            id=rid,
            findings=findings,
            model=model,
            cost_usd=cost or 0.0,
            latency_ms=round(latency, 1),
        )
        self._emit(
            "review_done",
            rid,
            p.review_done_frame(
                rid,
                findings=findings,
                model=model,
                usage=usage,
                cost_usd=float(cost or 0.0),
                latency_ms=latency,
                tiers=[report.to_dict() for report in tiers],
                note=getattr(ev, "note", ""),
                withheld=getattr(ev, "withheld", 0),
            ),
        )

    # ------------------------------------------------------------------------------- writing

    def send_status(self, status: Any) -> None:
        self._emit(
            "status",
            None,
            p.status_frame(
                self.setup.label,
                status.state,
                until=self.setup.until_unix(status.until),
                retry_after_s=status.retry_after_s,
                active=status.active,
                reason=redact(status.reason or "", self._secrets),
            ),
        )

    def _message_of(self, err: ProviderError | None) -> str:
        if err is None:
            return "the provider failed"
        return redact(str(err), self._secrets)

    def _emit_cancelled(self, fid: int, reason: str) -> None:
        self._end_stream(fid)
        self.stats.cancelled += 1
        self._emit("cancelled", fid, p.cancelled_frame(fid, reason))

    def _emit_error(self, fid: int | None, code: str, message: str) -> None:
        self._end_stream(fid)
        self.stats.errors += 1
        self.metrics.errors.labels(code).inc()
        self._emit("error", fid, p.error_frame(fid, code, redact(message, self._secrets)))

    def _emit(self, kind: str, fid: int | None, frame: dict) -> None:
        if self._close_queued:
            return
        if len(self._outbox) >= self.settings.max_outbox_frames:
            self._drop_slow_reader()
            return
        self._outbox.append((kind, fid, frame))
        self._wake.set()

    def _drop_slow_reader(self) -> None:
        """The client sends but does not read: its replies would pile up without bound, so the
        connection ends (1008) instead. Nothing of the user's is lost: the text is the client's."""
        logging.getLogger("assistant.server").warning(
            "closing a connection that does not read its replies (%d queued)", len(self._outbox)
        )
        self.metrics.cancellations.labels("slow_reader").inc()
        self._outbox.clear()
        self._close_queued = True
        self._teardown("slow_reader")
        if self._writer is not None:
            self._writer.cancel()
        self.hub.spawn(self._abort(1008))

    async def _abort(self, code: int) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(code=code), 2.0)

    async def _write_loop(self) -> None:
        outbox, ws = self._outbox, self.ws
        try:
            while True:
                if not outbox:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                item = outbox.popleft()
                if item[0] is _CLOSE:
                    with contextlib.suppress(Exception):
                        await ws.close(code=item[1])
                    return
                kind, fid, frame = item
                if kind in _STREAMING and fid < self._stale_below:
                    if kind == "delta":
                        continue  # stale: the client has moved on
                    frame = p.cancelled_frame(fid, "superseded")
                    kind = "cancelled"
                if kind == "done":
                    self.stats.done += 1
                await ws.send_text(p.encode(frame))
                self.stats.frames_out += 1
                self.metrics.frames_out.inc()
                if kind in _SUGGESTION_REPLIES:
                    self.usefulness.frame(self.loop.time(), frame)
                    self._publish_usefulness()
        except asyncio.CancelledError:
            raise
        except Exception:
            # The socket is gone; the read loop will see the disconnect.
            self._closing = True
