"""Fuzzing the live server over real WebSockets on loopback.

- tools/raw_fuzz.py's bursts of bad frames (every one answered with an error frame, an oversized
  one with close 1009, a ping ponged after every burst);
- hypothesis-made frame sequences, checked against the decoder as an oracle: the server answers
  exactly the frames the decoder rejects with errors (same id, same code), every request it
  accepted gets exactly one terminal frame, and the connection stays usable;
- rounds of fuzzing with the asyncio task count and traced memory compared between rounds, so
  nothing grows per connection once connections have closed.
"""

from __future__ import annotations

import asyncio
import gc
import json
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.sync.client import connect as sync_connect

from assistant.config import Settings
from assistant.providers.statistical import lexicon
from server.protocol import FrameDecoder, Limits, Ping, ProtocolError, Review, Suggest
from server.runner import ServerHandle, ServerThread
from tools.raw_fuzz import Limits as FuzzLimits
from tools.raw_fuzz import run_raw_fuzz

from .conftest import open_client, scaled, ws_kwargs

FUZZ_LIMITS = FuzzLimits(max_frame_bytes=16_384, max_prefix_chars=2000, max_suffix_chars=1000)


def fuzz_settings(**over) -> Settings:
    base = dict(
        token="fuzz-token",
        max_frame_bytes=FUZZ_LIMITS.max_frame_bytes,
        max_prefix_chars=FUZZ_LIMITS.max_prefix_chars,
        max_suffix_chars=FUZZ_LIMITS.max_suffix_chars,
        max_review_chars=4000,
        max_frames_per_second=1e9,  # the frame-rate cap has its own test
        offline="statistical",
        debounce_min_ms=1.0,
        debounce_max_ms=2.0,
    )
    base.update(over)
    return Settings(**base)


async def _connections_closed(srv: ServerHandle, within: float = 10.0) -> None:
    """Wait (bounded) until the server has forgotten every connection."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while srv.hub.connections or srv.hub.reserved or getattr(srv.hub, "_background", ()):
        assert loop.time() < deadline, f"connections left open: {len(srv.hub.connections)}"
        await asyncio.sleep(0.01)


async def test_raw_fuzz_every_bad_frame_answered_and_the_connection_stays_usable():
    frames = scaled(2500)
    async with ServerHandle(fuzz_settings()) as srv:
        report = await run_raw_fuzz(
            srv.ws_url, srv.token, frames=frames, seed=1, limits=FUZZ_LIMITS, connections=4
        )
        assert report.failures == [], report.as_dict()
        assert report.bad_frames >= frames
        # Every bad frame got its error frame, or (oversized) the close code 1009.
        assert report.errors_received + report.closes_1009 == report.bad_frames
        assert report.closes_1009 >= 1 and report.by_kind["oversized"] == report.closes_1009
        assert report.pongs == report.bursts
        # ... and the server still serves a fresh connection.
        client = await open_client(srv.ws_url, srv.token)
        await client.ping()
        sid = await client.suggest("Dear Sam, thanks for the ")
        term, _ = await client.terminal(sid)
        assert term["type"] == "done"
        await client.ws.close()
        await _connections_closed(srv)


async def test_fuzz_rounds_leave_no_tasks_or_memory_behind():
    """Five rounds of fuzzing on fresh connections: after each round closes its connections the
    event loop's task count returns to where it was and traced memory stops growing."""
    rounds = 5
    per_round = scaled(400)
    lexicon(block=True)  # the offline tier's word list loads once per process; not a leak
    tracemalloc.start()
    try:
        async with ServerHandle(fuzz_settings()) as srv:
            tasks, mem = [], []
            for r in range(rounds):
                report = await run_raw_fuzz(
                    srv.ws_url, srv.token, frames=per_round, seed=100 + r, limits=FUZZ_LIMITS
                )
                assert report.failures == [], report.as_dict()
                # Some valid traffic too, so engines, timers and provider tasks exist.
                client = await open_client(srv.ws_url, srv.token)
                for i in range(20):
                    sid = await client.suggest(f"Round {r} line {i}: thanks for the ")
                await client.terminal(sid)
                await client.ws.close()
                await _connections_closed(srv)
                for _ in range(3):  # let cancelled tasks finish unwinding
                    await asyncio.sleep(0)
                gc.collect()
                tasks.append(len(asyncio.all_tasks()))
                mem.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
    print(json.dumps({"tasks_after_each_round": tasks, "traced_bytes_after_each_round": mem}))
    # Rounds 1..4 after the warm-up round: no growth in tasks, bounded growth in memory.
    assert max(tasks[1:]) <= tasks[1], tasks
    growth = mem[-1] - mem[1]
    assert growth < 500_000, (mem, tasks)  # measured: ~25-40 KB over 3 rounds of ~10 connections


# --------------------------------------------------------------------------- hypothesis, live

TYPES = ("suggest", "cancel", "accept", "review", "cancel_review", "ping")
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-3, max_value=2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10)
)
field = scalars | st.lists(scalars, max_size=2) | st.just({})
frame_objects = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(TYPES) | st.text(max_size=8) | scalars,
        "id": st.integers(min_value=-2, max_value=30) | field,
        "prefix": st.text(max_size=40) | field,
        "suffix": st.text(max_size=20) | field,
        "text": st.text(max_size=40) | field,
        "chars": st.integers(min_value=-2, max_value=30) | field,
    },
)
raw_frames = (
    frame_objects.map(json.dumps)
    | frame_objects.map(lambda o: json.dumps(o)[: max(1, len(json.dumps(o)) // 2)])
    | st.text(max_size=40)
)


@pytest.fixture(scope="module")
def live_server():
    with ServerThread(fuzz_settings()) as srv:
        yield srv


def _terminal_types(kind: type) -> set[str]:
    if kind is Review:
        return {"review_done", "cancelled", "error"}
    return {"done", "cancelled", "error"}


@settings(
    max_examples=scaled(100),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(raw_frames, min_size=1, max_size=12))
def test_live_server_agrees_with_the_decoder_on_arbitrary_frames(live_server, payloads):
    oracle = FrameDecoder(Limits(2000, 1000, 4000))
    want_errors: list[tuple[int | None, str]] = []
    opened: dict[int, type] = {}
    pings: set[int] = set()
    for data in payloads:
        try:
            frame = oracle.decode(data)
        except ProtocolError as err:
            want_errors.append((err.id, err.code))
            continue
        if isinstance(frame, Suggest | Review):
            opened[frame.id] = type(frame)
        elif isinstance(frame, Ping):
            pings.add(frame.id)
    ping_id = oracle.last_id + 1
    with sync_connect(live_server.ws_url, **ws_kwargs(live_server.token)) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "ready"
        for data in payloads:
            ws.send(data)
        ws.send(json.dumps({"type": "ping", "id": ping_id}))
        got_errors: list[tuple[int | None, str]] = []
        terminals: dict[int, list[str]] = {}
        ponged = False
        pongs: set[int] = set()
        while not ponged or any(i not in terminals for i in opened):
            msg = json.loads(ws.recv(timeout=10))
            t, mid = msg.get("type"), msg.get("id")
            if t == "pong":
                assert mid in pings | {ping_id}, msg
                pongs.add(mid)
                ponged = mid == ping_id
            elif mid in opened and t in _terminal_types(opened[mid]):
                terminals.setdefault(mid, []).append(t)
            elif t == "error":
                got_errors.append((mid, msg["code"]))
            elif t in ("done", "cancelled", "review_done"):
                raise AssertionError(f"terminal for an id never opened: {msg}")
        # A review the server cannot run (one already in flight) is refused with an error
        # naming its id: that is the review's terminal frame, counted above.
        assert sorted(got_errors, key=repr) == sorted(want_errors, key=repr), payloads
        assert pongs == pings | {ping_id}
        for rid in opened:
            assert len(terminals[rid]) == 1, (rid, terminals[rid])
