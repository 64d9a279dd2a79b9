"""A client that sends but never reads cannot make the server queue replies without bound."""

from __future__ import annotations

import asyncio

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from server.runner import ServerHandle

from .conftest import TOKEN, make_settings


async def test_a_client_that_never_reads_is_closed_with_1008_and_the_outbox_stays_bounded():
    cap = 64
    settings = make_settings(max_outbox_frames=cap, max_frames_per_second=1e9)
    async with ServerHandle(settings) as srv:
        ws = await connect(
            srv.ws_url,
            additional_headers={"Authorization": f"Bearer {TOKEN}"},
            ping_interval=None,
            compression=None,
            max_queue=1,  # stop reading the socket once one frame is buffered
        )
        (conn,) = srv.hub.connections
        largest = 0
        try:
            for i in range(200_000):  # junk: each earns an error reply that nobody reads
                await ws.send("x")
                largest = max(largest, len(conn.outbox))
                if conn.outbox.close_queued:
                    break
                if i % 500 == 0:
                    await asyncio.sleep(0)  # let the server run
        except ConnectionClosed:
            pass
        assert conn.outbox.close_queued, "the server kept queueing for a client that does not read"
        assert largest <= cap
        # Reading now drains what was sent before the close, then the close code.
        try:
            while True:
                await ws.recv()
        except ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code == 1008
    # A fresh client is still served.
    async with ServerHandle(settings) as srv2:
        async with connect(
            srv2.ws_url, additional_headers={"Authorization": f"Bearer {TOKEN}"}
        ) as ok:
            assert '"ready"' in await ok.recv()
