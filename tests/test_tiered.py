"""TieredProvider: Anthropic (real SDK against the emulator) first, the offline tier during a
backoff window, a probe after it. Time is an injected clock that the tests advance; nothing sleeps."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random

import pytest

from assistant.config import Settings
from assistant.emulator import Emulator, EmulatorConfig, Fault
from assistant.pricing import Usage
from assistant.providers.anthropic import AnthropicProvider
from assistant.providers.base import (
    CompletionRequest,
    Final,
    Provider,
    ProviderError,
    ProviderErrorKind,
    TextChunk,
)
from assistant.providers.tiered import BACKOFF_JITTER, TieredProvider, TierStatus

KEY = "sk-ant-test-tiered"
REQ = CompletionRequest("The meeting is moved to", " See you there.")


class OfflineStub:
    """Stands in for the statistical tier: answers at once, counts its calls."""

    name = "statistical"
    model = "offline-statistical"

    def __init__(self) -> None:
        self.calls = 0
        self.warmed = 0
        self.closed = False

    async def stream(self, request: CompletionRequest):
        self.calls += 1
        yield TextChunk(" next week")
        yield Final(Usage(), self.model, source="offline", provider=self.name)

    async def warm(self, prefix: str = "", document_id: str = "default") -> None:
        self.warmed += 1

    async def aclose(self) -> None:
        self.closed = True


class ScriptedPrimary:
    """A primary tier whose outcomes are a script (for logic the emulator can't produce)."""

    name = "anthropic"
    model = "claude-haiku-4-5"

    def __init__(self, *outcomes) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0
        self.gate: asyncio.Event | None = None
        self.waiting = asyncio.Event()  # set while a call is held at the gate
        self.held = 0  # calls held at the gate so far
        self.all_held = asyncio.Event()  # set once `hold` calls are held
        self.hold = 1

    async def stream(self, request: CompletionRequest):
        self.calls += 1
        outcome = self.outcomes.pop(0) if self.outcomes else "ok"
        if self.gate is not None:
            self.waiting.set()
            self.held += 1
            if self.held >= self.hold:
                self.all_held.set()
            await self.gate.wait()
        if isinstance(outcome, tuple):  # (text, error): fail after some text
            yield TextChunk(outcome[0])
            raise outcome[1]
        if isinstance(outcome, ProviderError):
            raise outcome
        yield TextChunk(" from the model")
        yield Final(Usage(1, 1), self.model, source="model", provider=self.name)

    async def warm(self, prefix: str = "", document_id: str = "default") -> None:
        pass

    async def aclose(self) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def run(provider) -> tuple[str, Final]:
    parts, final = [], None
    async for ev in provider.stream(REQ):
        if isinstance(ev, TextChunk):
            parts.append(ev.text)
        else:
            final = ev
    assert final is not None
    return "".join(parts), final


@contextlib.asynccontextmanager
async def tiered_on_emulator(canned_text=" on Friday", timeout_s=10.0):
    async with Emulator(
        EmulatorConfig(profile="instant", api_key=KEY, canned_text=canned_text)
    ) as emu:
        clock = Clock()
        statuses: list[TierStatus] = []
        offline = OfflineStub()
        primary = AnthropicProvider(
            Settings(api_key=KEY, base_url=emu.base_url, suggest_timeout_s=timeout_s)
        )
        tiered = TieredProvider(
            primary, offline, clock=clock, on_status=statuses.append, rng=random.Random(0)
        )
        try:
            yield emu, tiered, clock, statuses, offline
        finally:
            await tiered.aclose()


def test_tiered_satisfies_the_provider_protocol():
    assert isinstance(TieredProvider(None, OfflineStub()), Provider)


async def test_rate_limit_backs_off_to_offline_then_probes_and_recovers():
    """The end-to-end path: 429 with retry-after -> this request served offline -> no requests
    reach Anthropic during the window -> the first request after it probes and succeeds."""
    async with tiered_on_emulator() as (emu, tiered, clock, statuses, offline):
        text, final = await run(tiered)
        assert (text, final.source, final.provider) == (" on Friday", "model", "anthropic")
        assert tiered.status.state == "ok" and tiered.status.active == "anthropic"
        assert statuses == []  # on_status fires only on a change

        emu.inject(Fault("rate_limit", retry_after=2.0), count=1)
        text, final = await run(tiered)
        assert (text, final.source, final.provider) == (" next week", "offline", "statistical")
        assert emu.requests[-1].status == 429
        assert tiered.status == TierStatus(
            state="rate_limited",
            until=clock.now + 2.0,
            retry_after_s=2.0,
            reason=tiered.status.reason,
            active="statistical",
        )
        assert KEY not in tiered.status.reason
        seen = len(emu.requests)

        for step in (0.5, 1.0, 0.4):  # still inside the 2 s window
            clock.now += step
            _, final = await run(tiered)
            assert final.source == "offline"
        assert len(emu.requests) == seen  # nothing reached the API during the window
        assert offline.calls == 4

        clock.now += 0.2  # 2.1 s after the 429: the window is over
        text, final = await run(tiered)
        assert (text, final.source, final.provider) == (" on Friday", "model", "anthropic")
        assert len(emu.requests) == seen + 1 and emu.requests[-1].status == 200
        assert tiered.status.state == "ok" and tiered.status.active == "anthropic"
        assert [s.state for s in statuses] == ["rate_limited", "ok"]
        assert tiered.model == "claude-haiku-5-5"


async def test_overload_without_retry_after_grows_exponentially_and_resets():
    async with tiered_on_emulator() as (emu, tiered, clock, statuses, offline):
        emu.inject(Fault("overloaded"), count=3)
        windows = []
        for _ in range(3):
            _, final = await run(tiered)  # a probe that fails: served offline
            assert final.source == "offline"
            assert tiered.status.state == "overloaded" and tiered.status.retry_after_s is None
            window = tiered.status.until - clock.now
            windows.append(window)
            clock.now += window + 0.01
        for expected, got in zip((1.0, 2.0, 4.0), windows, strict=True):
            assert expected <= got <= expected * (1 + BACKOFF_JITTER)
        assert len(emu.requests) == 3

        _, final = await run(tiered)
        assert final.source == "model" and tiered.status.state == "ok"

        emu.inject(Fault("overloaded"), count=1)  # a fresh failure starts from 1 s again
        await run(tiered)
        assert 1.0 <= tiered.status.until - clock.now <= 1.0 + BACKOFF_JITTER


async def test_backoff_is_capped_at_a_minute():
    primary = ScriptedPrimary(*[ProviderError(ProviderErrorKind.NETWORK, "down")] * 10)
    clock = Clock()
    tiered = TieredProvider(primary, OfflineStub(), clock=clock)
    windows = []
    for _ in range(10):
        await run(tiered)
        windows.append(tiered.status.until - clock.now)
        clock.now = tiered.status.until
    assert max(windows) == 60.0 and windows[-1] == 60.0
    assert tiered.status.state == "unavailable"
    assert primary.calls == 10


async def test_auth_failure_stays_on_fallback_until_restart():
    async with tiered_on_emulator() as (emu, tiered, clock, statuses, offline):
        emu.inject(Fault("auth"), count=1)
        _, final = await run(tiered)
        assert final.source == "offline"
        assert tiered.status.state == "auth_failed" and tiered.status.active == "statistical"
        clock.now += 10_000
        for _ in range(3):
            _, final = await run(tiered)
            assert final.source == "offline"
        assert len(emu.requests) == 1
        assert [s.state for s in statuses] == ["auth_failed"]


async def test_failure_after_text_reraises_and_next_request_goes_offline():
    text = " and then the committee agreed to postpone the vote until every member had read it"
    async with tiered_on_emulator(canned_text=text) as (emu, tiered, clock, statuses, offline):
        emu.inject(Fault("error_mid_stream", after_tokens=3), count=1)
        parts = []
        with pytest.raises(ProviderError) as info:
            async for ev in tiered.stream(REQ):
                parts.append(ev)
        assert info.value.kind == ProviderErrorKind.OVERLOADED
        assert parts and all(isinstance(p, TextChunk) for p in parts)
        assert offline.calls == 0
        assert tiered.status.state == "overloaded"
        _, final = await run(tiered)
        assert final.source == "offline"
        assert len(emu.requests) == 1


async def test_bad_request_is_raised_not_hidden():
    err = ProviderError(ProviderErrorKind.BAD_REQUEST, "max_tokens: too large", status=400)
    offline = OfflineStub()
    tiered = TieredProvider(ScriptedPrimary(err), offline, clock=Clock())
    with pytest.raises(ProviderError) as info:
        await run(tiered)
    assert info.value.kind == ProviderErrorKind.BAD_REQUEST
    assert offline.calls == 0
    assert tiered.status.state == "ok"
    _, final = await run(tiered)  # no window was opened
    assert final.source == "model"


async def test_only_one_probe_at_a_time_after_the_window():
    primary = ScriptedPrimary(ProviderError(ProviderErrorKind.TIMEOUT, "slow"), "ok")
    offline = OfflineStub()
    clock = Clock()
    tiered = TieredProvider(primary, offline, clock=clock)
    await run(tiered)
    assert tiered.status.state == "unavailable"
    clock.now = tiered.status.until + 0.01

    primary.gate = asyncio.Event()
    probe = asyncio.create_task(run(tiered))
    await asyncio.wait_for(primary.waiting.wait(), 5)
    _, final = await run(tiered)  # while the probe is in flight: offline, primary untouched
    assert final.source == "offline" and primary.calls == 2
    primary.gate.set()
    _, probed = await probe
    assert probed.source == "model" and tiered.status.state == "ok"


async def test_cancelled_probe_lets_the_next_request_probe():
    primary = ScriptedPrimary(ProviderError(ProviderErrorKind.INTERNAL, "500"), "ok", "ok")
    clock = Clock()
    tiered = TieredProvider(primary, OfflineStub(), clock=clock)
    await run(tiered)
    clock.now = tiered.status.until + 0.01
    primary.gate = asyncio.Event()
    probe = asyncio.create_task(run(tiered))
    await asyncio.wait_for(primary.waiting.wait(), 5)
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    primary.gate.set()
    _, final = await run(tiered)
    assert final.source == "model" and primary.calls == 3


async def test_no_primary_delegates_to_fallback():
    offline = OfflineStub()
    tiered = TieredProvider(None, offline)
    _, final = await run(tiered)
    assert final.source == "offline"
    assert tiered.model == "offline-statistical"
    assert tiered.status.active == "statistical" and tiered.status.state == "ok"
    await tiered.warm("abc")
    assert offline.warmed == 1
    await tiered.aclose()
    assert offline.closed


async def test_broken_status_listener_does_not_break_suggestions():
    def boom(status):
        raise RuntimeError("listener bug")

    primary = ScriptedPrimary(ProviderError(ProviderErrorKind.RATE_LIMITED, "429", retry_after=5))
    tiered = TieredProvider(primary, OfflineStub(), clock=Clock(), on_status=boom)
    _, final = await run(tiered)
    assert final.source == "offline" and tiered.status.state == "rate_limited"


async def test_requests_that_raced_the_failure_neither_close_nor_stretch_the_window():
    # Three requests in flight when Anthropic starts timing out: two fail, one still succeeds.
    timeout = ProviderError(ProviderErrorKind.TIMEOUT, "slow")
    primary = ScriptedPrimary(timeout, timeout, "ok")
    clock = Clock()
    statuses: list[TierStatus] = []
    tiered = TieredProvider(
        primary, OfflineStub(), clock=clock, on_status=statuses.append, rng=random.Random(0)
    )
    primary.gate, primary.hold = asyncio.Event(), 3
    tasks = [asyncio.create_task(run(tiered)) for _ in range(3)]
    await asyncio.wait_for(primary.all_held.wait(), 5)
    primary.gate.set()
    results = await asyncio.gather(*tasks)
    assert sorted(final.source for _, final in results) == ["model", "offline", "offline"]
    # One outage, one window of the first backoff step; the late success did not close it.
    assert tiered.status.state == "unavailable"
    assert 1.0 <= tiered.status.until - clock.now <= 1.0 * (1 + BACKOFF_JITTER)
    assert [s.state for s in statuses] == ["unavailable"]


async def test_a_full_admission_gate_falls_back_without_blaming_the_provider():
    """When this process is too busy to start a model request (its gate stays full past the
    wait), the suggestion comes from the offline tier, and no backoff window opens: the next
    request goes to the model again."""
    async with tiered_on_emulator() as (emu, tiered, clock, statuses, offline):
        primary = tiered.primary
        primary.gate_wait_s = 0.05
        gate = primary.shards.gate
        gate.limit = gate.maximum = 1
        await gate.acquire()  # another writer's request holds the only place
        _, final = await run(tiered)
        assert final.source == "offline"
        assert tiered.status.state == "ok" and tiered.status.until is None
        assert statuses == [] and len(emu.requests) == 0
        gate.release()
        _, final = await run(tiered)
        assert final.source == "model" and len(emu.requests) == 1


async def test_an_adopted_window_keeps_off_the_primary_and_the_probe_gate_picks_one_prober():
    """Another process's window (read from the shared database by server/park.py) is adopted;
    when it ends, the probe is the gate's to grant, and a refused one answers offline."""
    async with tiered_on_emulator() as (emu, tiered, clock, statuses, offline):
        assert tiered.adopt_window(clock.now + 30, "rate_limited", "429 seen by worker 2")
        assert not tiered.adopt_window(clock.now + 10, "rate_limited", "shorter")  # keeps 30 s
        assert statuses[-1].state == "rate_limited" and statuses[-1].active == "statistical"
        await run(tiered)
        assert offline.calls == 1 and not emu.requests  # nothing reached the API
        asks: list[bool] = []
        answers = [False, True]

        async def gate() -> bool:
            asks.append(True)
            return answers.pop(0)

        tiered.probe_gate = gate
        clock.now += 30.01
        _, final = await run(tiered)  # another process holds the probe: offline
        assert final.source == "offline" and len(asks) == 1 and not emu.requests
        clock.now += 1.01
        _, final = await run(tiered)  # this one may probe: it does, and the window closes
        assert final.source != "offline" and len(asks) == 2
        assert tiered.status.state == "ok"
        # The process that held a window says the primary is back: an adopted one ends early.
        tiered.adopt_window(clock.now + 60, "overloaded", "529 elsewhere")
        tiered.end_adopted_window()
        answers.append(True)
        _, final = await run(tiered)
        assert final.source != "offline"


async def test_a_deadline_miss_while_the_api_streams_opens_no_window():
    """At a thousand writers a loaded server reads some streams past the suggestion deadline.
    The API was answering: that request ends, but the backoff window (which would send every
    writer to the offline tier) stays shut, and the next request goes to the model."""
    text = " one two three four five"
    async with tiered_on_emulator(text, timeout_s=0.3) as (emu, tiered, clock, statuses, _):
        emu.inject(Fault("slow", delay_ms=200))  # the reply outlasts the deadline
        with pytest.raises(ProviderError) as info:
            await run(tiered)
        assert info.value.kind is ProviderErrorKind.TIMEOUT
        assert tiered.status.state == "ok" and tiered.status.until is None and statuses == []
        shown, final = await run(tiered)
        assert (shown, final.source) == (text, "model")


async def test_no_answer_at_all_still_opens_the_window():
    """A request the API does not answer within the timeout (a hang) is an outage signal."""
    async with tiered_on_emulator(timeout_s=0.3) as (emu, tiered, clock, statuses, _):
        emu.inject(Fault("hang"))
        _, final = await run(tiered)
        assert final.source == "offline"
        assert tiered.status.state == "unavailable" and tiered.status.until is not None


async def test_requests_turned_away_at_a_full_gate_leave_no_cycles_for_the_collector():
    """At a thousand writers most model requests wait at the admission gate and fall back to the
    offline tier. Each used to leave its chain of errors (CancelledError, TimeoutError, the
    gate's, the provider's, the last kept in a local) in reference cycles with their frames:
    ~28,000 objects in 2 s of one worker that only a garbage collection could free, and that
    collection ran on the event loop every few keystrokes (docs/reliability.md)."""
    primary = AnthropicProvider(Settings(api_key="sk-ant-test", base_url="http://127.0.0.1:9"))
    primary.gate_wait_s = 0.001  # nothing is ever sent: the gate stays full
    gate = primary.shards.gate
    # Full and on time, the gate grows its limit every look at the loop (50 ms): a place would
    # open and a request go out to the closed port, whose connection error is a chain of its own
    # (238 objects in cycles, once in a fresh-clone CI run). So it may not grow here.
    gate.maximum = gate.limit
    while gate.held < gate.limit:
        await gate.acquire()
    offline = OfflineStub()
    tiered = TieredProvider(primary, offline)

    async def one() -> list:
        return [event async for event in tiered.stream(REQ)]

    await one()
    gc.collect()
    gc.disable()
    try:
        for _ in range(20):
            events = await one()
            assert isinstance(events[-1], Final) and events[-1].source == "offline"
        cyclic = gc.collect()
    finally:
        gc.enable()
    assert offline.calls == 21
    assert cyclic < 20, f"{cyclic} objects in cycles after 20 requests turned away"
    await tiered.aclose()
