"""Limits below the app, in uvicorn's protocol layer, for what the app never sees.

The app sees a WebSocket only once its upgrade request is complete, and never sees a control
frame. So an attacker with no token could hold sockets open with half-sent request headers
(3,000 were still open after 75 s, and about 1,100 use up a 1,024 open-file limit), and a client
that floods PINGs without reading grew a worker by 763 MB in 20 s: uvicorn's sans-I/O WebSocket
protocol writes each pong with no backpressure, past the app's frame budget and outbox cap
(upstream: uvicorn's ``websockets_sansio_impl.WebSocketsSansIOProtocol.handle_ping`` writes
whatever the websockets ``ServerProtocol`` queued, with no check of ``writable``).

:func:`protocol_classes` returns the two protocol classes ``uvicorn.Config(http=, ws=)`` takes,
bound to one :class:`Guard`:

- :class:`GuardedH11Protocol` drops a socket whose request headers are not complete within
  ``header_timeout_s`` and refuses sockets past ``max_sockets_per_ip`` from one peer address;
- :class:`GuardedWebSocketProtocol` refuses upgrades past ``max_upgrades_per_ip``, charges every
  PING and PONG to the connection's frame budget (the same :class:`TokenBucket` the app charges
  text frames to), answers only the pings the budget allows, closes (1008) a connection that
  keeps flooding past it, coalesces pongs while the client is not reading and closes one whose
  pong cannot be written within ``pong_write_timeout_s``, closes a connection that sends nothing
  but pongs for ``idle_timeout_s``, and logs invalid UTF-8 in a text frame as one line.

Addresses are the socket's peer, not ``X-Forwarded-For`` (which any local client could set):
behind a proxy every socket has the proxy's address, so raise the per-IP caps there and let the
proxy limit per client (docs/deployment.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import time
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import CloseCode, Frame, Opcode
from websockets.server import ServerProtocol

from .ratelimit import TokenBucket

# The scope extension under which a WebSocket's frame budget reaches the app (server.connection).
FRAME_BUDGET = "assistant.frame_budget"

log = logging.getLogger("assistant.server")


def raise_open_file_limit() -> tuple[int, int]:
    """Raise the soft open-file limit to the hard one (each socket is a file: with the common
    soft limit of 1,024 about 1,100 idle sockets made the server refuse everyone, /healthz
    included). Returns (before, after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1_048_576)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft, soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        return soft, soft
    return soft, target


@dataclass(frozen=True)
class GuardLimits:
    header_timeout_s: float = 10.0
    idle_timeout_s: float = 600.0  # 0: off
    max_sockets_per_ip: int = 0  # 0: no cap
    max_upgrades_per_ip: int = 0
    frames_per_second: float = 200.0
    pong_write_timeout_s: float = 10.0

    @classmethod
    def from_settings(cls, settings: Any) -> GuardLimits:
        cap = settings.max_connections
        # By default one address may hold half the WebSocket slots (a server of under 100 is
        # one team's: no cap of its own), and sockets for them plus 64 more.
        half = cap // 2 if cap >= 100 else 0
        return cls(
            header_timeout_s=settings.header_timeout_s,
            idle_timeout_s=settings.idle_timeout_s,
            max_sockets_per_ip=settings.max_sockets_per_ip or cap + 64,
            max_upgrades_per_ip=settings.max_connections_per_ip or half,
            frames_per_second=settings.max_frames_per_second,
        )


class PeerCounts:
    """Open things (keyed by their transport) per peer address, capped."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._open: dict[str, set[int]] = {}

    def admit(self, ip: str, key: int) -> bool:
        held = self._open.setdefault(ip, set())
        if self.cap and key not in held and len(held) >= self.cap:
            if not held:
                del self._open[ip]
            return False
        held.add(key)
        return True

    def release(self, ip: str, key: int) -> None:
        held = self._open.get(ip)
        if held is not None:
            held.discard(key)
            if not held:
                del self._open[ip]

    def held(self, ip: str) -> int:
        return len(self._open.get(ip, ()))


class Guard:
    """The shared state of one server's protocols: limits, per-IP counts and what was refused."""

    def __init__(self, limits: GuardLimits, metrics: Any = None) -> None:
        self.limits = limits
        self.metrics = metrics
        self.sockets = PeerCounts(limits.max_sockets_per_ip)
        self.upgrades = PeerCounts(limits.max_upgrades_per_ip)
        self._last_log: dict[str, float] = {}

    def refused(self, reason: str, peer: str) -> None:
        """Count a refusal; log it at most once a second per reason (a flood must not become a
        log flood)."""
        if self.metrics is not None:
            with contextlib.suppress(Exception):
                self.metrics.connections_refused.labels(reason).inc()
        now = time.monotonic()
        if now - self._last_log.get(reason, -1e9) >= 1.0:
            self._last_log[reason] = now
            log.warning("refused or closed a connection from %s: %s", peer, reason)


def _peer(transport: Any) -> str:
    info = transport.get_extra_info("peername") if transport is not None else None
    if isinstance(info, tuple | list) and info:
        return str(info[0])
    return "unix"


_REFUSED_503 = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\ncontent-length: 30\r\n\r\ntoo many connections from you\n"
)


class GuardedH11Protocol(H11Protocol):
    guard: Guard  # set by protocol_classes

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._peer_ip = _peer(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        if not self.guard.sockets.admit(self._peer_ip, id(transport)):
            self.guard.refused("sockets_per_ip", self._peer_ip)
            transport.write(_REFUSED_503)
            transport.close()
            return
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        self.guard.sockets.release(self._peer_ip, id(self.transport))
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_header_timer()  # a keep-alive connection's next request has the same time

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        timeout = self.guard.limits.header_timeout_s
        if timeout > 0:
            self._header_timer = self.loop.call_later(timeout, self._header_timeout)

    def _cancel_header_timer(self) -> None:
        timer = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        transport = self.transport
        if transport.is_closing() or transport.get_protocol() is not self:
            return  # closed, or upgraded to a WebSocket (which has its own idle timeout)
        if self.conn.their_state is not h11.IDLE:
            return  # the request's headers are in: the app has it
        self.guard.refused("header_timeout", self._peer_ip)
        transport.close()


class BudgetedServerProtocol(ServerProtocol):
    """websockets' sans-I/O server protocol, with every frame shown to ``on_frame`` first and
    pings no longer answered by itself: ``on_frame(frame)`` returns ``True`` to process the
    frame (a PING then reaches the events for the caller to answer), ``False`` to skip it."""

    on_frame: Any = None

    def recv_frame(self, frame: Frame) -> None:
        if self.on_frame is not None and not self.on_frame(frame):
            return
        if frame.opcode is Opcode.PING:
            self.events.append(frame)  # answered by the caller, when it can write
            return
        super().recv_frame(frame)


class GuardedWebSocketProtocol(WebSocketsSansIOProtocol):
    guard: Guard  # set by protocol_classes

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        plain = self.conn
        self.conn = BudgetedServerProtocol(
            extensions=plain.available_extensions,
            max_size=self.config.ws_max_size,
            logger=plain.logger,
        )
        self.conn.on_frame = self._on_frame
        rate = self.guard.limits.frames_per_second
        self.budget = TokenBucket(rate, burst=max(1.0, rate), clock=self.loop.time)
        self._refused_in_a_row = 0
        self._last_heard = self.loop.time()
        self._idle_timer: asyncio.TimerHandle | None = None
        self._pending_pong: bytes | None = None
        self._pong_timer: asyncio.TimerHandle | None = None
        self._upgrade_admitted = False
        self._peer_ip = "?"

    # ---------------------------------------------------------------------------- admission

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._peer_ip = _peer(transport)
        self._upgrade_admitted = self.guard.upgrades.admit(self._peer_ip, id(transport))

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._idle_timer, self._pong_timer):
            if timer is not None:
                timer.cancel()
        self.guard.sockets.release(self._peer_ip, id(self.transport))
        if self._upgrade_admitted:
            self.guard.upgrades.release(self._peer_ip, id(self.transport))
        super().connection_lost(exc)

    def handle_connect(self, event: Any) -> None:
        if not self._upgrade_admitted:
            self.guard.refused("upgrades_per_ip", self._peer_ip)
            self.handshake_initiated = self.handshake_complete = self.close_sent = True
            response = self.conn.reject(503, "too many connections from you\n")
            self.conn.send_response(response)
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.transport.close()
            return
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][FRAME_BUDGET] = self.budget

    # ------------------------------------------------------------------- frames and budget

    def _on_frame(self, frame: Frame) -> bool:
        if frame.opcode is not Opcode.PONG:
            self._last_heard = self.loop.time()  # replies to our keepalive pings are not use
        if frame.opcode not in (Opcode.PING, Opcode.PONG):
            return True
        if self.budget.take():
            self._refused_in_a_row = 0
            return True
        self._refused_in_a_row += 1
        if self._refused_in_a_row > self.budget.burst and self.conn.close_sent is None:
            # A flood, not a burst: stop parsing this socket's data at all.
            self.guard.refused("control_frame_flood", self._peer_ip)
            self.conn.fail(CloseCode.POLICY_VIOLATION, "too many control frames")
            self.conn.parser_exc = ConnectionError("control frame flood")
        return False

    def handle_events(self) -> None:
        for event in self.conn.events_received():
            if isinstance(event, Frame) and event.opcode is Opcode.PING:
                self._answer_ping(bytes(event.data))
            else:
                self._dispatch_one(event)

    def _dispatch_one(self, event: Any) -> None:
        # The parent's handle_events, for one event (PINGs are answered above).
        if not isinstance(event, Frame):
            self.handle_connect(event)
        elif event.opcode == Opcode.CONT:
            self.handle_cont(event)
        elif event.opcode == Opcode.TEXT:
            self.handle_text(event)
        elif event.opcode == Opcode.BINARY:
            self.handle_bytes(event)
        elif event.opcode == Opcode.PONG:
            self.handle_pong(event)
        elif event.opcode == Opcode.CLOSE:
            self.handle_close(event)

    def _answer_ping(self, payload: bytes) -> None:
        if self.close_sent or self.transport.is_closing() or self.conn.close_sent is not None:
            return
        if not self.writable.is_set():
            # The client is not reading: RFC 6455 5.5.3 lets us answer only the latest ping.
            self._pending_pong = payload
            if self._pong_timer is None:
                self._pong_timer = self.loop.call_later(
                    self.guard.limits.pong_write_timeout_s, self._pong_overdue
                )
            return
        self.conn.send_pong(payload)
        self.transport.write(b"".join(self.conn.data_to_send()))

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._pong_timer is not None:
            self._pong_timer.cancel()
            self._pong_timer = None
        payload, self._pending_pong = self._pending_pong, None
        if payload is not None:
            self._answer_ping(payload)

    def _pong_overdue(self) -> None:
        self._pong_timer = None
        if self.transport.is_closing():
            return
        self.guard.refused("pong_unwritable", self._peer_ip)
        self._end("a pong could not be written")

    def _end(self, reason: str) -> None:
        """Drop the connection now: the app reads a disconnect; nothing more is written."""
        self.queue.put_nowait({"type": "websocket.disconnect", "code": 1008, "reason": reason})
        self.close_sent = True
        self.transport.abort()

    def send_receive_event_to_app(self) -> None:
        if self.curr_msg_data_type == "text" and not self.close_sent:
            data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
            try:
                data.decode()
            except UnicodeDecodeError as err:
                self.frames = []
                log.warning(
                    "closing a WebSocket from %s: invalid UTF-8 in a text frame (%s at byte %d)",
                    self._peer_ip,
                    err.reason,
                    err.start,
                )
                self.conn.send_close(CloseCode.INVALID_DATA, "invalid UTF-8")
                self.handle_parser_exception()
                return
        super().send_receive_event_to_app()

    # -------------------------------------------------------------------------- idle timeout

    def start_keepalive(self) -> None:
        super().start_keepalive()
        self._last_heard = self.loop.time()
        self._arm_idle(self.guard.limits.idle_timeout_s)

    def _arm_idle(self, delay: float) -> None:
        if self.guard.limits.idle_timeout_s > 0:
            self._idle_timer = self.loop.call_later(max(0.05, delay), self._idle_check)

    def _idle_check(self) -> None:
        self._idle_timer = None
        if self.close_sent or self.transport.is_closing():
            return
        idle = self.guard.limits.idle_timeout_s
        quiet = self.loop.time() - self._last_heard
        if quiet < idle:
            self._arm_idle(idle - quiet)
            return
        self.guard.refused("idle_timeout", self._peer_ip)
        self.queue.put_nowait({"type": "websocket.disconnect", "code": 1001, "reason": "idle"})
        self.conn.send_close(CloseCode.GOING_AWAY, "idle")
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        self.close_timer = self.loop.call_later(2.0, self.transport.abort)


def protocol_classes(guard: Guard) -> tuple[type[H11Protocol], type[WebSocketsSansIOProtocol]]:
    """The HTTP and WebSocket protocol classes for one server, sharing ``guard``."""
    http = type("GuardedH11", (GuardedH11Protocol,), {"guard": guard})
    ws = type("GuardedWebSocket", (GuardedWebSocketProtocol,), {"guard": guard})
    return http, ws
