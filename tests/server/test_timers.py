"""The debounce timer fires once, at or after the engine's deadline, never before it.

uvloop rounds a timer's delay to the nearest millisecond: armed with ``call_at(deadline)`` it
fired up to half a millisecond early, the engine's tick did nothing, and the timer re-armed
with no delay until the loop's clock reached the deadline (hundreds of wake-ups a debounce).
"""

from __future__ import annotations

import asyncio

import pytest

from server.suggestions import _timer_delay

uvloop = pytest.importorskip("uvloop")


def test_delay_is_whole_milliseconds_rounded_up():
    assert _timer_delay(0) == 0.0
    assert _timer_delay(-0.5) == 0.0
    assert _timer_delay(0.0254) == pytest.approx(0.0261)
    assert _timer_delay(0.025) == pytest.approx(0.0251)
    # A deadline a rounding error ahead waits a millisecond, not none.
    assert _timer_delay(1e-12) == pytest.approx(0.0011)


@pytest.mark.parametrize("loop_factory", [uvloop.new_event_loop, asyncio.new_event_loop])
def test_timer_fires_once_and_not_before_the_deadline(loop_factory):
    async def main() -> list[tuple[int, float]]:
        loop = asyncio.get_running_loop()
        out = []
        for ms in (25.4, 25.6, 30.1, 14.9, 25.0, 0.3):
            deadline = loop.time() + ms / 1000
            fired = 0
            done = asyncio.Event()

            def on_timer(deadline=deadline, done=done) -> None:
                nonlocal fired
                fired += 1
                if loop.time() < deadline:  # what the engine's Tick would ignore: re-arm
                    loop.call_later(_timer_delay(deadline - loop.time()), on_timer)
                else:
                    done.set()

            loop.call_later(_timer_delay(deadline - loop.time()), on_timer)
            await asyncio.wait_for(done.wait(), 5)
            out.append((fired, (loop.time() - deadline) * 1000))
        return out

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        results = runner.run(main())
    for fired, late_ms in results:
        # Twice at most: a deadline whose float is a hair past a whole millisecond fires at it
        # once, then a millisecond later.
        assert fired <= 2, results
        assert late_ms >= 0, results
