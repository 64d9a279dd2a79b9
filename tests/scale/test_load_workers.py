"""``tools/load.py`` against two workers with two generator processes: the figures' own plumbing.

A small run (60 typists, 3 s): the server is ``serve --workers 2`` as the load tool starts it and
the typists are spread over two forked generator processes. What must hold: every connection
admitted, every suggest id ends with exactly one terminal frame, none dropped, and the CPU of the
server (summed over its processes) and of the generators is read, and the connections are
spread evenly over the workers.
"""

from __future__ import annotations

import asyncio
import json
import time
from urllib.parse import urlparse

import pytest

from tools.load import connections_by_pid, process_tree, run_step, start_stack

pytestmark = pytest.mark.timeout(180)


async def until_closed(port: int, pids: list[int], timeout_s: float = 10.0) -> None:
    """Until none of ``pids`` holds an established connection on ``port`` (polled)."""
    deadline = time.monotonic() + timeout_s
    while any(connections_by_pid(port, pids).values()):
        assert time.monotonic() < deadline, connections_by_pid(port, pids)
        await asyncio.sleep(0.05)


async def test_two_workers_and_two_generators_lose_nothing():
    n = 60
    stack = start_stack(profile="fast", workers=2)
    try:
        pids = {"server": stack.server.pid, "emulator": stack.emulator.pid}
        assert len(process_tree(stack.server.pid)) == 3  # the supervisor and two workers
        await run_step(stack.ws_url, stack.token, 20, duration=1.0, cps=3)  # warm-up
        # The warm-up's typists have closed, but a worker may not have seen every close yet;
        # the supervisor hands the next connections to whichever holds fewer, so wait for none.
        await until_closed(urlparse(stack.ws_url).port, process_tree(stack.server.pid)[1:])
        stats = await run_step(
            stack.ws_url,
            stack.token,
            n,
            duration=3.0,
            cps=3.0,
            pids=pids,
            drain_timeout=20,
            generators=2,
        )
        summary = stats.summary()
        print(json.dumps(summary))
        assert stack.server.poll() is None, "the server died"
    finally:
        stack.stop()
    assert summary["opened"] == n, summary["refused"]
    assert summary["suggests"] > n
    assert summary["missing_terminals"] == 0, summary
    assert summary["duplicate_terminals"] == 0, summary
    assert summary["closed_early"] == {}, summary
    assert summary["cpu_s"]["server"] > 0 and summary["cpu_s"]["generator"] > 0
    assert summary["server_cpu_us_per_keystroke"] is not None
    # The supervisor hands each connection to the worker holding fewest: an even split.
    split = summary["connections_by_worker"]
    assert len(split) == 2 and sum(split) == n and split[0] - split[-1] <= 2, split
