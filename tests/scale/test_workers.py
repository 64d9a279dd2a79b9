"""``assistant serve --workers N``: one port, N processes, a dead worker replaced, SIGTERM drains all."""

from __future__ import annotations

import asyncio
import os
import signal
from urllib.parse import urlparse

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from assistant.config import Settings
from server.workers import default_workers
from tools.load import connections_by_pid

from .conftest import TOKEN, children, start_serve


async def open_client(ws_url: str):
    ws = await connect(ws_url, additional_headers={"Authorization": f"Bearer {TOKEN}"})
    ready = orjson.loads(await ws.recv())
    assert ready["type"] == "ready"
    return ws


async def ping(ws, i: int) -> None:
    await ws.send(orjson.dumps({"type": "ping", "id": i}).decode())
    assert orjson.loads(await asyncio.wait_for(ws.recv(), 30)) == {"type": "pong", "id": i}


async def read_stderr_until(proc, needle: str) -> str:
    seen = []
    while True:
        line = (await asyncio.wait_for(proc.stderr.readline(), 60)).decode()
        assert line, f"serve's stderr ended before {needle!r}: {''.join(seen)}"
        seen.append(line)
        if needle in line:
            return line


def test_default_workers_is_one_per_core_and_one_with_the_local_model():
    cores = len(os.sched_getaffinity(0))
    assert default_workers(Settings(offline="statistical")) == cores
    assert default_workers(Settings(offline="local")) == 1


@pytest.mark.timeout(180)
async def test_two_workers_share_the_port_replace_a_dead_one_and_drain_on_sigterm(tmp_path):
    proc, ws_url, banner = await start_serve(tmp_path, "--workers", "2")
    try:
        assert "workers: 2 processes" in banner
        first = children(proc.pid)
        assert len(first) == 2

        # Kill one worker outright: the supervisor says so and starts another in its place.
        os.kill(first[0], signal.SIGKILL)
        line = await read_stderr_until(proc, "started it again")
        assert f"pid {first[0]})" in line and "signal 9" in line
        replacement = int(line.rsplit(" ", 1)[1])
        # Whoever accepts, every connection is served, including by the replacement.
        clients = [await open_client(ws_url) for _ in range(12)]
        for i, ws in enumerate(clients):
            await ping(ws, i + 1)
        now = children(proc.pid)
        assert sorted(now) == sorted([first[1], replacement])

        # SIGTERM to the supervisor: every connection on every worker closes 1001, exit 0.
        proc.send_signal(signal.SIGTERM)
        for ws in clients:
            with pytest.raises(ConnectionClosed) as info:
                await asyncio.wait_for(ws.recv(), 30)
            assert info.value.rcvd is not None and info.value.rcvd.code == 1001
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        err = (await proc.stderr.read()).decode()
        stops = [x for x in err.splitlines() if x.startswith("{") and '"server_stop"' in x]
        assert len(stops) == 2  # both live workers drained and stopped cleanly
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.timeout(120)
async def test_connections_are_spread_evenly_and_a_replacement_takes_the_new_ones_first(tmp_path):
    """The supervisor hands each connection to the worker holding fewest: a burst splits evenly
    (one shared socket gave one of two workers 51-67 % of it), and a worker started again after a
    crash, which holds none, takes the new ones until it has caught up."""
    proc, ws_url, _ = await start_serve(tmp_path, "--workers", "2")
    port = urlparse(ws_url).port
    try:
        clients = list(await asyncio.gather(*(open_client(ws_url) for _ in range(20))))
        workers = children(proc.pid)
        assert sorted(connections_by_pid(port, workers).values()) == [10, 10]

        os.kill(workers[0], signal.SIGKILL)
        line = await read_stderr_until(proc, "started it again")
        replacement = int(line.rsplit(" ", 1)[1])
        await read_stderr_until(proc, f"(pid {replacement}) is serving")
        more = [await open_client(ws_url) for _ in range(6)]
        for i, ws in enumerate(more):
            await ping(ws, i + 1)
        assert connections_by_pid(port, [workers[1], replacement]) == {
            workers[1]: 10,
            replacement: 6,
        }
        for ws in clients + more:
            await ws.close()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.timeout(120)
async def test_ctrl_c_to_the_process_group_drains_every_worker(tmp_path):
    """Ctrl+C signals the supervisor and every worker at once: each connection still ends with
    the drain's 1001, and the server exits 0."""
    proc, ws_url, _ = await start_serve(tmp_path, "--workers", "2", own_group=True)
    try:
        clients = [await open_client(ws_url) for _ in range(6)]
        for i, ws in enumerate(clients):
            await ping(ws, i + 1)
        os.killpg(proc.pid, signal.SIGINT)
        for ws in clients:
            with pytest.raises(ConnectionClosed) as info:
                await asyncio.wait_for(ws.recv(), 30)
            assert info.value.rcvd is not None and info.value.rcvd.code == 1001
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()


@pytest.mark.timeout(120)
async def test_workers_stop_when_the_supervisor_is_killed(tmp_path):
    proc, ws_url, _ = await start_serve(tmp_path, "--workers", "2")
    workers = children(proc.pid)
    ws = await open_client(ws_url)
    proc.kill()
    await proc.wait()
    # The orphaned worker holding this connection drains it: 1001, not a dropped socket.
    with pytest.raises(ConnectionClosed) as info:
        await asyncio.wait_for(ws.recv(), 30)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1001
    for pid in workers:
        await asyncio.wait_for(process_exit(pid), 30)


async def process_exit(pid: int) -> None:
    """Until ``pid`` (not our child) has exited: its pidfd turns readable then."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    exited = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_reader(fd, exited.set)
    try:
        await exited.wait()
    finally:
        loop.remove_reader(fd)
        os.close(fd)
