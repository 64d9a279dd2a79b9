"""One real run shared by the latency tests: the server on loopback with the real engine, the
emulator with the "haiku" latency profile and the passages as oracle texts, and three typists
(slow, average, fast) typing slices of their traces at once, at their recorded pace."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from assistant.config import Settings
from assistant.emulator import Emulator, EmulatorConfig, RequestRecord
from assistant.replay import ReplayResult, replay
from assistant.traces import Keystroke, Trace, load_passages, load_traces

# (typist, passage, first keystroke, seconds of typing): ~40 s each, replayed concurrently, so
# the whole run takes under a minute of wall time. Starting a little into each passage gives the
# model some context, as in real writing.
SLICES = (
    ("slow", "notes", 20, 40.0),
    ("average", "email", 30, 40.0),
    ("fast", "prose", 40, 40.0),
)


@dataclass
class LatencyRun:
    traces: dict[str, Trace]
    results: dict[str, ReplayResult]
    records: list[RequestRecord]  # the emulator's /v1/messages requests

    @property
    def keystrokes(self) -> int:
        return sum(r.keystrokes for r in self.results.values())

    def suggestions(self):
        return [s for r in self.results.values() for s in r.suggestions]


def slice_of(trace: Trace, start: int, seconds: float) -> tuple[str, tuple[Keystroke, ...]]:
    before, part = trace.window(start, len(trace.events))
    return before, tuple(e for e in part if e.t_ms <= seconds * 1000)


async def _run() -> LatencyRun:
    from server.runner import ServerHandle

    traces = {t.name: t for t in load_traces()}
    passages = tuple(load_passages().values())
    cfg = EmulatorConfig(profile="haiku", seed=0, oracle_texts=passages)
    async with Emulator(cfg) as emu:
        settings = Settings(api_key="x", base_url=emu.base_url, offline="statistical")
        async with ServerHandle(settings) as srv:
            jobs = {}
            for typist, passage, start, seconds in SLICES:
                name = f"{typist}-{passage}"
                before, events = slice_of(traces[name], start, seconds)
                jobs[name] = replay(srv.ws_url, srv.token, events, initial_text=before, name=name)
            done = await asyncio.gather(*jobs.values())
        records = [r for r in emu.requests if r.path == "/v1/messages"]
    return LatencyRun(traces, dict(zip(jobs, done, strict=True)), records)


@pytest.fixture(scope="session")
def latency_run() -> LatencyRun:
    return asyncio.run(_run())
