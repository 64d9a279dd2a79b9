"""The editor's end of the WebSocket protocol (docs/protocol.md): connect, read, reconnect.

One :class:`AssistantClient` per editor. :meth:`run` is a loop meant for a background worker: it
connects, reports every server frame through ``on_frame`` and the connection state through
``on_state``, and when the server goes away it reconnects by itself with exponential backoff.
:meth:`send` never waits: it queues the frame for the connection's writer task, or drops it
(returning False) while there is no connection, so typing never blocks on the network. The text
lives in the editor, not here, so a dropped connection loses nothing the user typed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus, WebSocketException

from assistant.endpoint import ws_endpoint


class ConnectionState(StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    RATE_LIMITED = "rate limited"
    OFFLINE_ONLY = "connected (offline)"  # a server with no API key: offline is the default
    OFFLINE = "offline fallback"  # Anthropic is down or rate limited; the offline tier covers
    REFUSED = "refused (check the token)"
    CLOSED = "closed"


def state_from_frame(frame: dict[str, Any]) -> ConnectionState | None:
    """The connection state a ``ready`` or ``status`` frame implies (None: no change)."""
    kind = frame.get("type")
    if kind == "ready":
        return (
            ConnectionState.OFFLINE_ONLY
            if frame.get("provider") == "offline"
            else ConnectionState.CONNECTED
        )
    if kind == "status":
        state = frame.get("state")
        if state == "rate_limited":
            return ConnectionState.RATE_LIMITED
        if frame.get("active") == "offline" or state not in (None, "ok"):
            return ConnectionState.OFFLINE
        return ConnectionState.CONNECTED
    return None


class AssistantClient:
    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        on_frame: Callable[[dict], None],
        on_state: Callable[[ConnectionState], None],
        backoff_initial_s: float = 0.2,
        backoff_max_s: float = 5.0,
        open_timeout_s: float = 5.0,
    ) -> None:
        self.url = ws_endpoint(url)
        self.token = token
        self.on_frame = on_frame
        self.on_state = on_state
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.open_timeout_s = open_timeout_s
        self.state = ConnectionState.CONNECTING
        self.ready: dict | None = None
        self.connections = 0  # successful connections so far (reconnects = connections - 1)
        self._ws: ClientConnection | None = None
        self._outbox: asyncio.Queue[str] | None = None
        self._next_id = 0
        self._closing = False
        self._wake: asyncio.Event | None = None

    @property
    def connected(self) -> bool:
        return self._ws is not None

    def next_id(self) -> int:
        """A fresh request id; ids only ever increase, across reconnections too."""
        self._next_id += 1
        return self._next_id

    def send(self, frame: dict) -> bool:
        """Queue ``frame``; False (and dropped) when not connected."""
        if self._ws is None or self._outbox is None:
            return False
        self._outbox.put_nowait(json.dumps(frame, ensure_ascii=False))
        return True

    def _set_state(self, state: ConnectionState) -> None:
        if state != self.state:
            self.state = state
            self.on_state(state)

    async def run(self) -> None:
        """Connect and reconnect until :meth:`close`."""
        self._wake = asyncio.Event()
        delay = self.backoff_initial_s
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        while not self._closing:
            try:
                async with connect(
                    self.url,
                    additional_headers=headers,
                    open_timeout=self.open_timeout_s,
                    max_size=None,
                    ping_interval=20,
                    ping_timeout=20,
                ) as ws:
                    delay = self.backoff_initial_s
                    await self._serve(ws)
            except InvalidStatus as exc:
                status = exc.response.status_code
                if status in (401, 403):
                    self._set_state(ConnectionState.REFUSED)
                    delay = self.backoff_max_s
            except (OSError, TimeoutError, WebSocketException, ValueError):
                pass
            if self._closing:
                break
            if self.state != ConnectionState.REFUSED:
                self._set_state(ConnectionState.RECONNECTING)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            delay = min(delay * 2, self.backoff_max_s)
        self._set_state(ConnectionState.CLOSED)

    async def _serve(self, ws: ClientConnection) -> None:
        ready = json.loads(await ws.recv())
        if not isinstance(ready, dict) or ready.get("type") != "ready":
            raise ValueError("the server did not start with a ready frame")
        self.ready = ready
        self.connections += 1
        outbox: asyncio.Queue[str] = asyncio.Queue()
        self._outbox = outbox
        self._ws = ws
        writer = asyncio.create_task(self._write(ws, outbox))
        try:
            self._set_state(state_from_frame(ready) or ConnectionState.CONNECTED)
            self.on_frame(ready)
            async for raw in ws:
                try:
                    frame = json.loads(raw)
                except ValueError:
                    continue
                if not isinstance(frame, dict):
                    continue
                state = state_from_frame(frame)
                if state is not None:
                    self._set_state(state)
                self.on_frame(frame)
        finally:
            self._ws = None
            self._outbox = None
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer

    async def _write(self, ws: ClientConnection, outbox: asyncio.Queue[str]) -> None:
        while True:
            message = await outbox.get()
            await ws.send(message)

    def reconnect_now(self) -> None:
        """Skip the rest of the current backoff wait."""
        if self._wake is not None:
            self._wake.set()

    async def close(self) -> None:
        self._closing = True
        self.reconnect_now()
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
