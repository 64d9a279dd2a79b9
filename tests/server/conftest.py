"""Fixtures for the server tests: a real uvicorn server on an ephemeral port, the Anthropic
emulator behind it (driven through the real SDK), and a WebSocket client that records frames."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import connect

from assistant.config import Settings
from assistant.emulator import Emulator, EmulatorConfig
from server.runner import ServerHandle

TOKEN = "test-token-Zx81-0123456789abcdef"
API_KEY = "sk-ant-api03-SECRET-server-test-key-9876543210"


def make_settings(emu: Emulator | None = None, **changes: Any) -> Settings:
    base = Settings(
        token=TOKEN,
        offline="statistical",
        suggest_timeout_s=5.0,
        api_key=API_KEY if emu is not None else None,
        base_url=emu.base_url if emu is not None else None,
    )
    return base.with_(**changes) if changes else base


@contextlib.asynccontextmanager
async def emulator(**cfg: Any):
    cfg.setdefault("profile", "instant")
    cfg.setdefault("api_key", API_KEY)
    async with Emulator(EmulatorConfig(**cfg)) as emu:
        yield emu


def messages_requests(emu: Emulator) -> list:
    """The /v1/messages requests (warming uses count_tokens, which costs nothing)."""
    return [r for r in emu.requests if r.path == "/v1/messages"]


class Client:
    """A WebSocket client that keeps every frame it received, in order."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.seen: list[dict] = []
        self.ready: dict | None = None
        self._id = 0

    def new_id(self) -> int:
        self._id += 1
        return self._id

    async def send(self, frame: dict | str | bytes) -> None:
        if isinstance(frame, dict):
            frame = orjson.dumps(frame).decode()
        await self.ws.send(frame)

    async def suggest(self, prefix: str, suffix: str = "") -> int:
        fid = self.new_id()
        await self.send({"type": "suggest", "id": fid, "prefix": prefix, "suffix": suffix})
        return fid

    async def recv(self, timeout: float = 10.0) -> dict:  # noqa: ASYNC109
        msg = orjson.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        self.seen.append(msg)
        return msg

    async def until(self, pred: Callable[[dict], bool], timeout: float = 10.0) -> dict:  # noqa: ASYNC109
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            msg = await self.recv(max(0.01, deadline - loop.time()))
            if pred(msg):
                return msg

    async def terminal(self, fid: int, timeout: float = 10.0) -> dict:  # noqa: ASYNC109
        return await self.until(
            lambda m: (
                m.get("id") == fid and m["type"] in ("done", "review_done", "cancelled", "error")
            ),
            timeout,
        )

    async def ping(self, timeout: float = 10.0) -> dict:  # noqa: ASYNC109
        fid = self.new_id()
        await self.send({"type": "ping", "id": fid})
        return await self.until(lambda m: m["type"] == "pong" and m["id"] == fid, timeout)


@contextlib.asynccontextmanager
async def client(srv: ServerHandle, **kwargs: Any):
    kwargs.setdefault("additional_headers", {"Authorization": f"Bearer {srv.token}"})
    async with connect(srv.ws_url, open_timeout=10, **kwargs) as ws:
        c = Client(ws)
        c.ready = await c.recv()
        assert c.ready["type"] == "ready"
        yield c


@pytest.fixture
async def emu():
    async with emulator() as e:
        yield e


@pytest.fixture
async def offline_server():
    """A server with no API key: the statistical offline tier answers."""
    async with ServerHandle(make_settings()) as srv:
        yield srv
