"""Fixtures for the editor tests: the Anthropic emulator (real SDK), a real server in front of
it on an ephemeral port, and a helper to wait for a condition while the app runs."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from assistant.config import Settings
from assistant.emulator import Emulator, EmulatorConfig
from server.runner import ServerHandle

TOKEN = "tui-test-token-0123456789"
API_KEY = "sk-ant-tui-test-key"
PASSAGE = "The quick brown fox jumps over the lazy dog near the river bank."
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def make_settings(emu: Emulator, **changes: Any) -> Settings:
    return Settings(
        token=TOKEN,
        offline="statistical",
        api_key=API_KEY,
        base_url=emu.base_url,
        suggest_timeout_s=5.0,
        debounce_min_ms=5.0,
        debounce_max_ms=20.0,
    ).with_(**changes)


@contextlib.asynccontextmanager
async def emulator(**cfg: Any):
    cfg.setdefault("profile", "instant")
    cfg.setdefault("api_key", API_KEY)
    cfg.setdefault("oracle_texts", (PASSAGE,))
    async with Emulator(EmulatorConfig(**cfg)) as emu:
        yield emu


@contextlib.asynccontextmanager
async def stack(port: int = 0, **cfg: Any):
    async with emulator(**cfg) as emu:
        async with ServerHandle(make_settings(emu), port=port) as srv:
            yield emu, srv


def messages_requests(emu: Emulator) -> list:
    return [r for r in emu.requests if r.path == "/v1/messages"]


async def wait_until(pilot, predicate: Callable[[], Any], limit_s: float = 10.0, what: str = ""):
    """Let the app run until ``predicate()`` holds (an event loop turn at a time)."""
    deadline = time.monotonic() + limit_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await pilot.pause(0.02)


@pytest.fixture
def doc(tmp_path: Path) -> Path:
    return tmp_path / "draft.md"
