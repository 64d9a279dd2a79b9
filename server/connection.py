"""One WebSocket, one document: a connection's life and the dispatch of its frames.

Everything for a connection runs on the event loop without locks. Frames are read by one loop
(:meth:`Connection.run`) and dispatched to its parts, each in a module of its own and wired
here through callbacks handed in at construction:

- :class:`~server.suggestions.SuggestionRuntime` drives the connection's suggestion engine
  (timers, deltas, provider streams);
- :class:`~server.reviews.ReviewJobs` runs its deep reviews;
- :class:`~server.checks.CheckRuntime` checks each finished sentence;
- :class:`~server.spending.WriterSpending` books what every request cost and reserves a
  budgeted writer's worst case before a request goes out;
- :class:`~server.outbox.Outbox` is the one ordered queue every frame goes out through, with its
  writer task, the staleness check and the slow-reader drop.

The 1.1 document itself lives in :mod:`server.document`; this module only routes its frames.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from starlette.websockets import WebSocket

from assistant.providers.base import ProviderError

from . import protocol as p
from .checks import CheckRuntime
from .document import DocumentError, DocumentLimits, DocumentSession
from .guard import FRAME_BUDGET
from .logs import redact
from .outbox import ConnectionStats, Outbox
from .ratelimit import TokenBucket
from .reviews import ReviewJobs
from .spending import WriterSpending
from .suggestions import SuggestionRuntime

if TYPE_CHECKING:
    from .hub import Hub

__all__ = ["Connection", "ConnectionStats"]


# A writer token that expires mid-session ends the connection (reason "token expired"): every
# request in flight ends `cancelled` (`token_expired`) and the socket closes with this code,
# which the editors take as "reconnect with a fresh token". Keeping it open would let a token
# whose writer was cut off by the backend (no refresh) type on for as long as the tab is open.
TOKEN_EXPIRED_CLOSE = 4001


class Connection:
    def __init__(self, ws: WebSocket, hub: Hub, conn_id: str, writer: Any = None) -> None:
        self.ws = ws
        self.hub = hub
        self.id = conn_id
        self.writer = writer
        self.setup = hub.setup
        self.metrics = hub.metrics
        settings = hub.settings
        self.settings = settings
        self.loop = asyncio.get_running_loop()
        self.limits = p.Limits(
            settings.max_prefix_chars, settings.max_suffix_chars, settings.max_review_chars
        )
        self.decoder = p.FrameDecoder(self.limits)
        self.documents = DocumentSession(
            DocumentLimits(self.limits.max_document_chars, settings.max_frame_bytes)
        )
        # One budget for every frame: server.guard charges PINGs and PONGs to the same bucket.
        self.bucket = ws.scope.get("extensions", {}).get(FRAME_BUDGET)
        if self.bucket is None:
            rate = settings.max_frames_per_second
            self.bucket = TokenBucket(rate, burst=max(1.0, rate), clock=self.loop.time)
        self.stats = ConnectionStats()
        self._closing = False  # shutdown or disconnect: nothing more is dispatched
        self._secrets = (settings.api_key, hub.token)
        self.outbox = Outbox(
            ws,
            max_frames=settings.max_outbox_frames,
            stats=self.stats,
            metrics=self.metrics,
            secrets=self._secrets,
            spawn=hub.spawn,
            on_terminal=self._on_terminal,
            on_sent=self._on_sent,
            on_slow_reader=lambda: self._teardown("slow_reader"),
            on_gone=self._on_gone,
        )
        self.writer_id = getattr(writer, "id", None) or "owner"
        claimed = getattr(writer, "budget_usd_day", None)
        self.budget_usd_day = claimed if claimed is not None else settings.budget_usd_day
        self.spending = WriterSpending(
            hub, conn_id, self.writer_id, self.budget_usd_day, self.outbox, self.stats
        )
        spending = self.spending
        parts = dict(
            account=spending.account,
            message_of=self._message_of,
            reserve=spending.reserve if self.budget_usd_day is not None else None,
            give_back=spending.give_back,
        )
        self.suggestions = SuggestionRuntime(
            hub, conn_id, self.outbox, self.stats, on_accept=spending.on_accept, **parts
        )
        if self.budget_usd_day is not None:  # a review is rare and dear: it holds only its own
            parts["reserve"] = spending.reserve_exactly
        self.reviews = ReviewJobs(hub, conn_id, self.outbox, self.stats, **parts)
        self.checks = CheckRuntime(
            self.outbox,
            account=spending.account,
            model=getattr(self.setup, "checker", None),
            model_available=self.setup.billable_now,
            document=conn_id,
            enabled=settings.checks != "off",
        )
        # Who the offline tier charges this connection's documents to: the writer a writer token
        # names, else (the static token, shared) the client's address.
        self.memory_owner = (
            f"writer:{self.writer_id}"
            if self.writer_id != "owner"
            else str((ws.scope.get("client") or ("?",))[0])
        )
        if settings.offline_memory_per_address:
            hub.claim_offline(self.offline_documents, self.memory_owner)

    @property
    def engine(self) -> Any:
        return self.suggestions.engine

    @property
    def offline_documents(self) -> tuple[str, ...]:
        """The document ids this connection's requests give the offline tier (its own id: a
        reconnect is a new connection, and the client opens its text there again)."""
        return (self.id,)

    # ------------------------------------------------------------------ the connection's life

    async def run(self) -> None:
        self.outbox.start(self.loop)
        expiry = self._watch_expiry()
        try:
            self.outbox.emit(
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
            if expiry is not None:
                expiry.cancel()
            self._teardown("client_gone")
            await self.outbox.stop()

    def _watch_expiry(self) -> asyncio.TimerHandle | None:
        expires_at = getattr(self.writer, "expires_at", None)
        if expires_at is None:
            return None
        delay = max(0.0, expires_at - time.time())
        return self.loop.call_later(
            delay, lambda: self.hub.spawn(self.shutdown(TOKEN_EXPIRED_CLOSE, "token_expired"))
        )

    async def shutdown(self, code: int = 1001, reason: str = "shutdown") -> None:
        """Server going away (or the token expired): every request in flight ends
        ``cancelled`` (``reason``), then the socket closes with ``code``."""
        if self._closing:
            return
        open_version = self.suggestions.engine.open_version
        self._teardown("shutdown")
        if open_version is not None:
            self.outbox.emit_cancelled(open_version, reason)
        self.reviews.cancel_all_frames(reason)
        self.outbox.queue_close(code)
        await self.outbox.flush()

    def _teardown(self, why: str) -> None:
        if self._closing:
            return
        self._closing = True
        self.spending.closed = True  # what its requests give back from now on: to the database
        self.suggestions.teardown(why)
        self.reviews.stop_all(why)
        self.checks.stop()
        self.suggestions.finish()

    def _on_gone(self) -> None:
        """A send failed: the socket is gone. Everything in flight stops now (the read loop's
        own teardown, when it sees the disconnect, then has nothing left to do: before, it
        returned early and provider requests ran on with no one to read them)."""
        self._teardown("client_gone")

    def tier_free(self) -> None:
        """The offline tier has room again (the hub fans this out): a held answer re-asks."""
        self.suggestions.tier_free()

    # ------------------------------------------------------------------------------- reading

    def on_frame(self, data: str | bytes) -> None:
        self.stats.frames_in += 1
        self.metrics.frames_in.inc()
        if self._closing:
            return
        try:
            frame = self.decoder.decode(data)
        except p.ProtocolError as err:
            self.outbox.emit_error(err.id, err.code, err.message)
            return
        if not self.bucket.take():
            self.metrics.rate_limit_events.labels("client").inc()
            fid = frame.id if isinstance(frame, p.ANSWERED_BY_ID) else None
            self.outbox.emit_error(fid, p.RATE_LIMITED, "too many frames; slow down")
            return
        try:
            self._dispatch(frame)
        except Exception as exc:  # a bug must cost one request, not the connection
            logging.getLogger("assistant.server").exception("frame handling failed")
            fid = frame.id if isinstance(frame, p.ANSWERED_BY_ID) else None
            self.outbox.emit_error(fid, p.INTERNAL, f"internal error ({type(exc).__name__})")

    def _dispatch(self, frame: p.ClientFrame) -> None:
        suggestions = self.suggestions
        match frame:
            case p.Suggest():
                suggestions.suggest(frame.id, frame.prefix, frame.suffix)
                self.checks.observe(frame.id, frame.prefix, frame.suffix)
            case p.SuggestAt():
                try:
                    if frame.edit is not None:
                        self.documents.apply(frame.edit)
                    prefix, suffix = self.documents.around_cursor(frame.version)
                except DocumentError as err:
                    self.outbox.emit_error(frame.id, err.code, err.message)
                    return
                suggestions.suggest(frame.id, prefix, suffix)
                self.checks.observe(self.documents.document.version, prefix, suffix)
            case p.OpenDocument() | p.EditDocument():
                try:
                    doc = self.documents.apply(frame)
                except DocumentError as err:
                    self.outbox.emit_error(frame.id, err.code, err.message)
                    return
                self.outbox.stale_below = frame.id  # suggestions for the text before are stale
                around = doc.around_cursor()
                if isinstance(frame, p.OpenDocument):
                    suggestions.warm_once(*around)
                self.checks.observe(frame.id, *around)
            case p.Warm():
                suggestions.warm_once(frame.prefix, frame.suffix)
            case p.Cancel():
                suggestions.cancel(frame.id)
            case p.AcceptChars():
                suggestions.accept(frame.id, frame.chars)
            case p.Ping():
                self.outbox.emit("pong", frame.id, p.pong_frame(frame.id))
            case p.Review():
                self.reviews.start(frame)
            case p.CancelReview():
                self.reviews.cancel(frame.id)

    # ---------------------------------------------------------------------- shared by parts

    def _on_terminal(self, fid: int | None) -> None:
        self.suggestions.end_stream(fid)

    def _on_sent(self, kind: str, frame: dict) -> None:
        self.suggestions.sent(kind, frame)

    def _message_of(self, err: ProviderError | None) -> str:
        if err is None:
            return "the provider failed"
        return redact(str(err), self._secrets)

    def send_status(self, status: Any) -> None:
        self.outbox.emit(
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
