"""Shared pieces for the reliability suite: the size knob, a WebSocket client that keeps every
frame it saw, and a log capture that sees uvicorn's own loggers too."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable
from typing import Any

import pytest
from websockets.asyncio.client import connect

# RELIABILITY_SCALE=10 runs ten times the frames/examples/connections of the default run.
SCALE = max(0.1, float(os.environ.get("RELIABILITY_SCALE", "1")))


def scaled(n: int) -> int:
    return max(1, int(n * SCALE))


class Client:
    """One WebSocket client: JSON in and out, every received frame kept in ``seen``."""

    def __init__(self, ws: Any, seen: list[dict] | None = None) -> None:
        self.ws = ws
        self.seen: list[dict] = seen if seen is not None else []
        self.next_id = 1
        self.ready: dict | None = None

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    async def send(self, frame: dict | str) -> None:
        await self.ws.send(frame if isinstance(frame, str) else json.dumps(frame))

    async def recv(self, within: float = 10.0) -> dict:
        msg = json.loads(await asyncio.wait_for(self.ws.recv(), within))
        self.seen.append(msg)
        return msg

    async def recv_until(
        self, pred: Callable[[dict], bool], within: float = 10.0
    ) -> tuple[dict, list[dict]]:
        """Frames up to and including the first one ``pred`` accepts."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        before: list[dict] = []
        while True:
            msg = await self.recv(max(0.01, deadline - loop.time()))
            if pred(msg):
                return msg, before
            before.append(msg)

    async def ping(self, within: float = 10.0) -> dict:
        pid = self.new_id()
        await self.send({"type": "ping", "id": pid})
        pong, _ = await self.recv_until(
            lambda m: m.get("type") == "pong" and m.get("id") == pid, within
        )
        return pong

    async def suggest(self, prefix: str, suffix: str = "") -> int:
        sid = self.new_id()
        await self.send({"type": "suggest", "id": sid, "prefix": prefix, "suffix": suffix})
        return sid

    async def terminal(self, sid: int, within: float = 10.0) -> tuple[dict, list[dict]]:
        """The terminal frame for ``sid`` and the frames that came before it."""
        return await self.recv_until(
            lambda m: m.get("id") == sid and m.get("type") in ("done", "cancelled", "error"),
            within,
        )


def ws_kwargs(token: str | None, **extra: Any) -> dict:
    headers = dict(extra.pop("headers", {}))
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return {
        "additional_headers": headers,
        "max_size": None,
        "compression": None,
        "ping_interval": None,
        "open_timeout": 10,
        "close_timeout": 2,
        **extra,
    }


async def open_client(url: str, token: str | None, seen: list[dict] | None = None, **kw) -> Client:
    ws = await connect(url, **ws_kwargs(token, **kw))
    client = Client(ws, seen)
    client.ready = await client.recv()
    assert client.ready["type"] == "ready", client.ready
    return client


class LogCapture(logging.Handler):
    """Every record reaching the root logger and uvicorn's (which may not propagate), with our
    own loggers at DEBUG; the test client's own wire log is left out."""

    NAMES = ("", "uvicorn", "uvicorn.error", "uvicorn.access")
    DEBUG_NAMES = ("assistant", "server")  # our own code, at its most talkative
    CLIENT_SIDE = ("websockets.client",)  # the test's own client logs what it sends

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self._saved: list[tuple[logging.Logger, int]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(self.CLIENT_SIDE):
            return
        try:
            text = record.getMessage()
        except Exception:
            text = f"{record.msg!r} {record.args!r}"
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        self.lines.append(f"{record.name}:{record.levelname}:{text}")

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def install(self, level: int = logging.DEBUG) -> LogCapture:
        for name in self.NAMES:
            logging.getLogger(name).addHandler(self)
        for name in self.DEBUG_NAMES:
            logger = logging.getLogger(name)
            self._saved.append((logger, logger.level))
            logger.setLevel(level)
        return self

    def remove(self) -> None:
        for name in self.NAMES:
            logging.getLogger(name).removeHandler(self)
        for logger, level in self._saved:
            logger.setLevel(level)
        self._saved.clear()


@pytest.fixture
def server_logs():
    cap = LogCapture().install()
    try:
        yield cap
    finally:
        cap.remove()
