"""A bounded load run: N typists on loopback against the server process, the emulator behind.

The pytest size is small (100 typists, 4 s; RELIABILITY_SCALE multiplies N); the figures in
docs/reliability.md come from ``tools/load.py`` at 1,000. What is asserted here is what must hold
at any size: every connection admitted, every suggest id ends with exactly one terminal frame,
no connection dropped, the server process alive; latency is only recorded, with a bound so
generous that it catches a hang, not a slow machine.
"""

from __future__ import annotations

import json

from tools.load import run_step, start_stack

from .conftest import scaled


async def test_typists_under_load_lose_nothing():
    n = min(1000, scaled(100))
    stack = start_stack(profile="fast")
    try:
        pids = {"server": stack.server.pid, "emulator": stack.emulator.pid}
        await run_step(stack.ws_url, stack.token, 3, duration=1.0, cps=3)  # warm-up
        stats = await run_step(
            stack.ws_url, stack.token, n, duration=4.0, cps=3.0, pids=pids, drain_timeout=20
        )
        summary = stats.summary()
        print(json.dumps(summary))
        assert stack.server.poll() is None, "the server died"
    finally:
        stack.stop()
    assert summary["opened"] == n, summary["refused"]
    assert summary["suggests"] > n  # everyone typed
    assert summary["missing_terminals"] == 0, summary
    assert summary["duplicate_terminals"] == 0, summary
    assert summary["closed_early"] == {}, summary
    assert summary["ping"]["count"] > 0
    assert summary["ping"]["max_ms"] < 15_000, summary["ping"]
    assert summary["rss_per_connection_kb"] is not None
