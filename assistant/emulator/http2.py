"""HTTP/2 for the emulator: h2's sans-I/O state machine inside an asyncio protocol.

The API speaks HTTP/2 (negotiated by ALPN over TLS), and on HTTP/2 a client that abandons a
suggestion resets one stream while the connection, and its TLS session, stay. Over HTTP/1.1 the
same cancellation closes the connection and the next request pays a new TCP + TLS handshake; so
the emulator must speak HTTP/2 for the bench and the tests to see what production sees. h2 does
the framing, HPACK and flow control; the bytes move here, so a reset stream is noticed on the
next event-loop turn and streaming stops there, as a closed socket is for HTTP/1.1.

Each stream is an exchange (``exchange.py``) handed to the emulator's request handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any, cast

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions

from . import wire
from .exchange import ClientGone, ServerClosed, resolve

log = logging.getLogger(__name__)


class H2Connection(asyncio.Protocol):
    """One HTTP/2 connection: many request streams at once, each served by its own task."""

    def __init__(self, emulator: Any, conn_id: int) -> None:
        self.emulator = emulator
        self.id = conn_id
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding=None)
        )
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, H2Stream] = {}
        self.gone = False
        self.paused = False
        self.served = 0  # requests this connection has carried
        self.ready_at: float | None = None  # when the modelled connection setup is over
        self._loop = asyncio.get_running_loop()

    @property
    def tasks(self) -> list[asyncio.Task]:
        return [s.task for s in self.streams.values() if s.task is not None]

    # --- asyncio.Protocol ---
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.emulator._connections.add(self)
        self.h2.initiate_connection()
        self.flush()

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError:
            # A client breaking the protocol: GOAWAY (queued by h2) and close.
            self.flush()
            self.close()
            return
        for event in events:
            self._dispatch(event)
        self.flush()

    def eof_received(self) -> bool:
        self._mark_gone()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._mark_gone()
        self.emulator._connections.discard(self)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        for stream in list(self.streams.values()):
            stream.push()

    # --- plumbing ---
    def _dispatch(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived):
            headers = cast(list[tuple[bytes, bytes]], event.headers or [])
            self.streams[event.stream_id] = H2Stream(self, event.stream_id, headers)
        elif isinstance(event, h2.events.DataReceived):
            self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.body += event.data or b""
                if len(stream.body) > wire.MAX_BODY_BYTES:
                    stream.abort()
        elif isinstance(event, h2.events.StreamEnded):
            stream = self.streams.get(event.stream_id)
            if stream is not None and stream.task is None and not stream.gone:
                stream.begin()
        elif isinstance(event, h2.events.StreamReset):
            stream = self.streams.pop(event.stream_id, None)
            if stream is not None:
                stream.mark_gone()
        elif isinstance(event, h2.events.WindowUpdated):
            if event.stream_id:
                stream = self.streams.get(event.stream_id)
                targets = [stream] if stream is not None else []
            else:
                targets = list(self.streams.values())
            for stream in targets:
                stream.push()
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.close()

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _mark_gone(self) -> None:
        if self.gone:
            return
        self.gone = True
        for stream in list(self.streams.values()):
            stream.mark_gone()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
        self._mark_gone()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
        self._mark_gone()


class H2Stream:
    """One request and its response on an HTTP/2 connection: the exchange a handler answers."""

    def __init__(
        self, conn: H2Connection, stream_id: int, headers: list[tuple[bytes, bytes]]
    ) -> None:
        self.conn = conn
        self.stream_id = stream_id
        self.id = conn.id  # requests are recorded by connection
        self.headers = headers
        self.body = bytearray()
        self.gone = False
        self.task: asyncio.Task | None = None
        self.new_connection = False  # it waited for its connection's setup
        self._pending = bytearray()  # written but held back by flow control
        self._ending = False
        self._ended = False
        self._waiters: set[asyncio.Future] = set()  # sleeps, woken early when the client leaves
        self._drains: set[asyncio.Future] = set()  # drains, woken when the data went out
        self._loop = conn._loop

    # --- life ---
    def begin(self) -> None:
        pseudo = {
            k.decode("latin-1"): v.decode("latin-1") for k, v in self.headers if k.startswith(b":")
        }
        headers: dict[str, str] = {}
        for key, value in self.headers:
            if key.startswith(b":"):
                continue
            name, text = key.decode("latin-1").lower(), value.decode("latin-1")
            headers[name] = f"{headers[name]}, {text}" if name in headers else text
        request = wire.HttpRequest(
            pseudo.get(":method", "GET"),
            pseudo.get(":path", "/"),
            "HTTP/2",
            headers,
            bytes(self.body),
        )
        self.task = self._loop.create_task(self._serve(request))

    async def _serve(self, request: wire.HttpRequest) -> None:
        conn = self.conn
        conn.served += 1
        now = self._loop.time()
        if conn.ready_at is None:
            config = conn.emulator.config
            conn.ready_at = now + config.connect_ms * config.time_scale / 1000
            self.new_connection = True
        try:
            if conn.ready_at > now:
                self.new_connection = True  # it arrived during the handshake: it waits too
                await self.sleep(conn.ready_at - now)
            await conn.emulator._handle(self, request)
        except (ClientGone, ServerClosed):
            pass
        except asyncio.CancelledError:
            self.abort()
            raise
        except Exception:
            log.exception("emulator: request handler failed")
            self.abort()
        finally:
            self.task = None
            if not self._ending and not self.gone:
                self.abort()  # a handler that never answered: the client must not wait
            if self.gone or self._ended:
                conn.streams.pop(self.stream_id, None)

    def mark_gone(self) -> None:
        if self.gone:
            return
        self.gone = True
        for fut in [*self._waiters, *self._drains]:
            resolve(fut)

    # --- the exchange ---
    def respond(
        self, status: int, payload: object, headers: Sequence[tuple[str, str]], keep_alive: bool
    ) -> None:
        body = wire.dumps(payload)
        self.start(
            status,
            [("content-type", "application/json"), ("content-length", str(len(body))), *headers],
        )
        self.finish(body)

    def start(self, status: int, headers: Sequence[tuple[str, str]]) -> None:
        if self.gone:
            raise ClientGone
        fields = [(b":status", str(status).encode())]
        fields += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        try:
            self.conn.h2.send_headers(self.stream_id, fields)
        except h2.exceptions.StreamClosedError:
            self.mark_gone()
            raise ClientGone from None
        self.conn.flush()

    def send(self, data: bytes) -> None:
        if self.gone:
            raise ClientGone
        self._pending += data
        self.push()

    def finish(self, data: bytes = b"") -> None:
        if self.gone:
            raise ClientGone
        self._pending += data
        self._ending = True
        self.push()

    def push(self) -> None:
        """Send what flow control allows now; the rest waits for a WINDOW_UPDATE."""
        if self.gone:
            return
        h2conn = self.conn.h2
        try:
            while self._pending:
                room = min(
                    h2conn.local_flow_control_window(self.stream_id), h2conn.max_outbound_frame_size
                )
                if room <= 0:
                    break
                h2conn.send_data(self.stream_id, bytes(self._pending[:room]))
                del self._pending[:room]
            if self._ending and not self._pending and not self._ended:
                h2conn.end_stream(self.stream_id)
                self._ended = True
        except h2.exceptions.StreamClosedError:
            self.mark_gone()
        self.conn.flush()
        if not self._pending and not self.conn.paused:
            for fut in list(self._drains):
                resolve(fut)
        if self._ended and self.task is None:
            self.conn.streams.pop(self.stream_id, None)

    async def drain(self) -> None:
        while (self._pending or self.conn.paused) and not self.gone:
            await self._wait(None, self._drains)
        if self.gone:
            raise ClientGone

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` unless the client resets the stream first (then :class:`ClientGone`)."""
        if self.gone:
            raise ClientGone
        if seconds > 0:
            await self._wait(seconds, self._waiters)
        if self.gone:
            raise ClientGone

    async def wait_gone(self) -> None:
        while True:
            await self.sleep(3600.0)

    async def _wait(self, seconds: float | None, waiters: set[asyncio.Future]) -> None:
        fut = self._loop.create_future()
        handle = self._loop.call_later(seconds, resolve, fut) if seconds is not None else None
        waiters.add(fut)
        try:
            await fut
        finally:
            if handle is not None:
                handle.cancel()
            waiters.discard(fut)

    def abort(self) -> None:
        """Reset this stream (the connection and its other streams stay)."""
        if not self.gone and not self.conn.gone:
            with contextlib.suppress(h2.exceptions.ProtocolError):
                self.conn.h2.reset_stream(self.stream_id, h2.errors.ErrorCodes.INTERNAL_ERROR)
            self.conn.flush()
        self.mark_gone()
        self.conn.streams.pop(self.stream_id, None)

    def hang_up(self) -> None:
        """The disconnect fault: what was written goes out, then the stream is reset."""
        self.push()
        self.abort()
