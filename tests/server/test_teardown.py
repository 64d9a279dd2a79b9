"""A connection whose send failed still cancels what it has in flight when it ends."""

from __future__ import annotations

import asyncio

from assistant.pricing import Usage
from assistant.providers.base import Final, TextChunk
from assistant.providers.tiered import TieredProvider
from server.runner import ServerHandle

from .conftest import client, make_settings


class HangingOffline:
    """An offline tier whose answer streams one chunk and then never ends, telling when its
    stream is cancelled."""

    name = "statistical"
    model = "offline-statistical"

    def __init__(self) -> None:
        self.streaming = asyncio.Event()
        self.cancelled = asyncio.Event()

    async def stream(self, request):
        yield TextChunk(" and")
        self.streaming.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        yield Final(Usage(), self.model, source="offline", provider=self.name)

    async def warm(self, prefix: str = "", document_id: str = "default") -> None:
        return None

    async def aclose(self) -> None:
        return None


async def test_a_failed_send_then_the_disconnect_cancels_the_request_in_flight():
    offline = HangingOffline()
    settings = make_settings(debounce_min_ms=1.0, debounce_max_ms=2.0)
    async with ServerHandle(settings, provider=TieredProvider(None, offline)) as srv:
        async with client(srv) as c:
            await c.suggest("Dear Sam, thanks for the notes")
            await asyncio.wait_for(offline.streaming.wait(), 10)
            (conn,) = srv.hub.connections
            conn._on_gone()  # what the outbox's writer does when a send fails
        # The read loop then sees the disconnect: the request must not outlive the connection.
        await asyncio.wait_for(offline.cancelled.wait(), 10)
