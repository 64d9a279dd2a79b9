"""The gate in front of model requests: its limit follows the event loop's lag, waiters are
served in order, and a waiter that gives up (deadline or cancel) leaves no place taken."""

from __future__ import annotations

import asyncio

import pytest

from assistant.providers.admission import LagGate


def test_limit_drops_when_the_loop_is_late_and_grows_only_while_full_and_on_time():
    gate = LagGate(initial=20, minimum=4, maximum=40)
    gate.adjust(0.050)
    assert gate.limit == 14
    for _ in range(10):
        gate.adjust(0.100)
    assert gate.limit == 4  # never below the minimum
    gate.adjust(0.001)
    assert gate.limit == 4  # on time but nothing waits: no reason to grow
    gate.held = 40  # every place taken (and more wanted)
    for _ in range(40):
        gate.adjust(0.001)
    assert gate.limit == 40  # full and on time: grows up to the maximum
    gate.adjust(0.015)
    assert gate.limit == 40  # between the two thresholds: unchanged


async def test_waiters_are_served_first_come_first_served():
    gate = LagGate(initial=1, minimum=1)
    await gate.acquire()
    order = []

    async def wait(name):
        await gate.acquire()
        order.append(name)

    tasks = [asyncio.create_task(wait(n)) for n in "abc"]
    await asyncio.sleep(0)
    assert gate.waited == 3 and order == []
    for _ in "abc":
        gate.release()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    assert order == ["a", "b", "c"]
    gate.release()
    assert gate.held == 0
    await gate.aclose()


async def test_a_waiter_that_gives_up_takes_no_place():
    gate = LagGate(initial=1, minimum=1)
    await gate.acquire()
    assert await gate.acquire(wait_s=0.01) is False  # no place within the wait
    cancelled = asyncio.create_task(gate.acquire())
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    gate.release()
    assert gate.held == 0
    await gate.acquire(wait_s=0.5)  # the place is free again, not held by a ghost
    assert gate.held == 1
    gate.release()
    await gate.aclose()


async def test_a_growing_limit_lets_waiters_in():
    gate = LagGate(initial=1, minimum=1, maximum=8)
    await gate.acquire()
    waiter = asyncio.create_task(gate.acquire())
    await asyncio.sleep(0)
    assert not waiter.done()
    gate.adjust(0.0)  # on time and full: the limit grows and the waiter gets in
    await asyncio.wait_for(waiter, 1)
    assert gate.held == 2 and gate.limit == 2
    gate.release()
    gate.release()
    await gate.aclose()


def test_the_limit_stays_within_a_maximum_below_the_default_minimum():
    gate = LagGate(maximum=3)
    assert gate.limit == 3
    gate.adjust(1.0)
    assert gate.minimum <= gate.limit <= 3
