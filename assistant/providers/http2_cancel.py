"""What a cancelled suggestion does to the SDK's HTTP/2 connection: reset one stream, no more.

The suggestion engine cancels a request whenever the writer types on, and on HTTP/2 a
cancelled request should cost one RST_STREAM while the connection, and its TLS session, stay.
httpcore2 (under the SDK's httpx2) gets three things wrong there, each reproduced by
tests/test_http2.py:

- **An abandoned stream is never reset** (encode/httpcore#943, closed as wontfix). The server
  goes on streaming (and the API billing) the abandoned reply; the DATA it sends is never
  acknowledged, so the connection's receive window shrinks by every abandoned byte until the
  whole connection stalls; and h2 still counts the stream open, so after 100 cancellations on
  one connection (the client's stream limit) every new request on it fails with "Max outbound
  streams is 100, 100 open".
- **A cancel during a connection's setup fails the requests queued behind it.** The setup's
  request, cancelled in it, closes the connection; a request that was waiting for the setup then
  starts it again on the closed h2 state and fails with a ``ProtocolError`` (1 of 579 requests in
  one CI run), which the provider reports as a network error: a backoff window for the process.
- **A cancel can break the connection for every stream on it.** ``_write_outgoing_data``
  takes h2's pending frames and writes them through anyio's TLS stream; a cancel landing in
  that write loses a TLS record whose sequence number is spent, so anyio marks the stream
  broken (``BrokenResourceError``) and every request on the connection fails with
  ``WriteError``. anyio's cancellation shield, which httpcore2 uses, does not hold off an
  asyncio ``Task.cancel()``. 150 requests at a time, 60 % cancelled at random, 30 rounds:
  110-209 requests failed with ``WriteError`` and 47-62 connections were opened.

:func:`install` wraps three methods once. ``_send_connection_init`` refuses a connection already
closed with ``ConnectionNotAvailable``, which the pool takes as "retry on another connection".
``_response_closed`` (which httpcore2 calls, under a cancellation shield, whenever a response
ends, read or not) acknowledges a still-open stream's unread data and resets it (CANCEL). Every
write with frames queued runs in a task of its own that a cancel of the caller does not reach
(``asyncio.shield``), so a write once begun completes (its write timeout still bounds it) and
the caller's cancel takes effect at once. A call with nothing queued returns at once: httpcore2
calls it after every DATA frame it reads, and a task for each held the event loop (at 1,000
typists the model answered 224-377 suggestions in 20 s with a task per call, 1,722 without).
Idempotent; a no-op when httpcore2 or h2 is missing or changed shape.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from typing import Any

_INSTALLED = "_assistant_http2_cancel"


async def _uncancellable(coro: Any) -> Any:
    """Run ``coro`` to its end in its own task; a cancel of the caller returns at once."""
    task = asyncio.ensure_future(coro)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.add_done_callback(_consume)
        raise


def _consume(task: asyncio.Future) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: the connection's next use reports a broken write


def install() -> bool:
    """Patch httpcore2's HTTP/2 connection once; True when both fixes are in place."""
    try:
        import h2.errors
        import h2.events
        from httpcore2._async.http2 import AsyncHTTP2Connection, HTTPConnectionState
        from httpcore2._exceptions import ConnectionNotAvailable
    except ImportError:
        return False
    closed = getattr(AsyncHTTP2Connection, "_response_closed", None)
    write = getattr(AsyncHTTP2Connection, "_write_outgoing_data", None)
    init = getattr(AsyncHTTP2Connection, "_send_connection_init", None)
    if closed is None or write is None or init is None:
        return False
    if getattr(closed, _INSTALLED, False):
        return True

    async def reset_if_open(conn: Any, stream_id: int) -> None:
        state = conn._h2_state
        stream = state.streams.get(stream_id)
        if stream is None or stream.closed:
            return
        for event in conn._events.get(stream_id, ()):
            if isinstance(event, h2.events.DataReceived) and event.flow_controlled_length:
                state.acknowledge_received_data(event.flow_controlled_length, stream_id)
        state.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
        # A failed write leaves the connection broken; its next use reports that.
        with contextlib.suppress(Exception):
            await _uncancellable(send_pending(conn))

    async def send_pending(conn: Any) -> None:
        async with conn._write_lock:
            data = conn._h2_state.data_to_send()
            if data and conn._write_exception is None:
                await conn._network_stream.write(data, None)

    @functools.wraps(closed)
    async def _response_closed(self: Any, stream_id: int) -> None:
        with contextlib.suppress(Exception):
            await reset_if_open(self, stream_id)
        await closed(self, stream_id)

    @functools.wraps(write)
    async def _write_outgoing_data(self: Any, request: Any) -> None:
        if not getattr(self._h2_state, "_data_to_send", True):
            # Nothing queued (most calls: one follows every DATA frame read, in case it queued a
            # WINDOW_UPDATE): no task to pay for. Frames queued later are written by the call
            # that follows the code queuing them.
            return
        await _uncancellable(write(self, request))

    @functools.wraps(init)
    async def _send_connection_init(self: Any, request: Any) -> None:
        if self._state == HTTPConnectionState.CLOSED:
            # The request that began this connection's setup was cancelled in it, and the setup
            # closed the connection; this one waited for the setup and would start it again on
            # a closed h2 state (ProtocolError, "Invalid input SEND_SETTINGS in state CLOSED").
            # The pool takes this as "try another connection".
            raise ConnectionNotAvailable()
        await init(self, request)

    setattr(_response_closed, _INSTALLED, True)
    AsyncHTTP2Connection._response_closed = _response_closed  # type: ignore[method-assign]
    AsyncHTTP2Connection._write_outgoing_data = _write_outgoing_data  # type: ignore[method-assign]
    AsyncHTTP2Connection._send_connection_init = _send_connection_init  # type: ignore[method-assign]
    return True
