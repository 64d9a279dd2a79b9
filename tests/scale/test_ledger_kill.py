"""``kill -9`` of a worker under load loses no more ledger rows than docs/deployment.md says: the
rows of requests that ended in the last ``FLUSH_EVERY_S`` before the kill (their batch was not
committed yet) and of those in flight on the killed worker; and no request is ever booked twice."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from assistant.emulator import Emulator, EmulatorConfig
from server.ledger import FLUSH_EVERY_S, SqlStore
from tests.serve_process import start_serve, stop_process, suggest_terminal

from .conftest import children

API_KEY = "sk-ant-api03-ledger-kill-test-key"
TOKEN = "kill-test-static-token-0123456789"
CLIENTS = 8


async def typist(
    ws_url: str, n: int, stop: asyncio.Event, ends: list[float], loaded: asyncio.Event
) -> None:
    """Sequential suggests (none superseded) until ``stop`` or the connection dies; the arrival
    time of every ``done`` goes to ``ends``; ``loaded`` once 100 came over 3 s or more."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    try:
        async with connect(ws_url, additional_headers=headers) as ws:
            await ws.recv()
            i = 0
            while not stop.is_set():
                i += 1
                prefix = f"Typist {n} writes line {i}: the figures for week {i} show "
                msg = await suggest_terminal(ws, i, prefix)
                if msg["type"] == "done" and msg["source"] == "model":
                    ends.append(time.time())
                    if len(ends) >= 100 and ends[-1] - ends[0] >= 3.0:
                        loaded.set()
    except ConnectionClosed:
        pass  # its worker was killed


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_kill_9_of_a_worker_loses_at_most_the_documented_rows(tmp_path):
    db = tmp_path / "ledger.db"
    async with Emulator(EmulatorConfig(profile="fast", api_key=API_KEY)) as emu:
        proc, ws_url, _ = await start_serve(
            tmp_path,
            "--workers",
            "2",
            token=TOKEN,
            env={
                "ANTHROPIC_API_KEY": API_KEY,
                "ANTHROPIC_BASE_URL": emu.base_url,
                "ASSISTANT_DATABASE_URL": f"sqlite:///{db}",
            },
        )
        # Its log (a line per request) must be read, or a full pipe stalls the workers.
        log = asyncio.create_task(proc.stderr.read())
        stop, loaded = asyncio.Event(), asyncio.Event()
        ends: list[float] = []
        try:
            tasks = [
                asyncio.create_task(typist(ws_url, n, stop, ends, loaded)) for n in range(CLIENTS)
            ]
            # Under load for a while: most rows are long committed, some are in their batch.
            await asyncio.wait_for(loaded.wait(), 90)
            victim = children(proc.pid)[0]
            killed_at = time.time()
            os.kill(victim, signal.SIGKILL)
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), 60)
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 60)
        finally:
            stop.set()
            await stop_process(proc)
            log.cancel()
        billed = [
            r for r in emu.requests if r.path == "/v1/messages" and r.completed and r.status == 200
        ]
    store = SqlStore(f"sqlite:///{db}")
    rows = store.rows()
    store.close()
    ids = [r[0] for r in rows]
    assert len(ids) == len(set(ids))  # never a row twice
    lost = len(billed) - len(rows)
    assert lost >= 0, "more rows than requests the API billed"
    # The documented bound: requests that ended within FLUSH_EVERY_S of the kill (0.4 s slack
    # for the commit itself and the done frame's trip to the client), plus one in flight per
    # connection.
    recent = sum(1 for t in ends if t >= killed_at - FLUSH_EVERY_S - 0.4)
    assert lost <= recent + CLIENTS, (lost, recent, len(rows))
