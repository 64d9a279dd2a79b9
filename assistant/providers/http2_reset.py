"""Reset an HTTP/2 stream the SDK's client abandons, so the connection survives cancellations.

The suggestion engine cancels a request whenever the writer types on, and on HTTP/2 a
cancelled request should cost one RST_STREAM while the connection, and its TLS session, stay.
httpcore2 (under the SDK's httpx2) closes an abandoned stream without telling the h2 state
machine or the server (encode/httpcore#943, closed as wontfix). Three things follow, each
reproduced by tests/test_http2.py:

- the server goes on streaming (and the API billing) the abandoned reply to its end;
- the DATA it sends for that stream is never acknowledged, so the connection's receive window
  shrinks by every abandoned byte until the whole connection stalls;
- h2 still counts the stream as open, so after 100 cancellations on one connection (the
  client's concurrent-stream limit) every new request on it fails with "Max outbound streams
  is 100, 100 open".

:func:`install` wraps ``AsyncHTTP2Connection._response_closed``, which httpcore2 calls (under a
cancellation shield) whenever a response ends, read or not: a stream h2 still holds open gets
its received-but-unread data acknowledged and a RST_STREAM (CANCEL), written at once. A stream
read to its end is left as it was. Idempotent; a no-op when httpcore2 or h2 is missing or
changed shape.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

_INSTALLED = "_assistant_resets_abandoned_streams"


def install() -> bool:
    """Patch httpcore2's HTTP/2 connection once; True when the reset is in place."""
    try:
        import h2.errors
        import h2.events
        from httpcore2._async.http2 import AsyncHTTP2Connection
    except ImportError:
        return False
    original = getattr(AsyncHTTP2Connection, "_response_closed", None)
    if original is None:
        return False
    if getattr(original, _INSTALLED, False):
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
        async with conn._write_lock:
            data = state.data_to_send()
            if data and conn._write_exception is None:
                # A failed write leaves the connection broken; its next use reports that.
                with contextlib.suppress(Exception):
                    await conn._network_stream.write(data, None)

    @functools.wraps(original)
    async def _response_closed(self: Any, stream_id: int) -> None:
        with contextlib.suppress(Exception):
            await reset_if_open(self, stream_id)
        await original(self, stream_id)

    setattr(_response_closed, _INSTALLED, True)
    AsyncHTTP2Connection._response_closed = _response_closed  # type: ignore[method-assign]
    return True
