"""How many model requests one server process lets run at once: a limit that follows the event
loop's lag.

Every model request costs the process about a millisecond and a half of CPU to start and to
read (the SDK, HTTP, the event stream), and writers' keystrokes share that one event loop. When
a thousand writers start typing in the same second, starting a request for each of them at once
held the loop for hundreds of milliseconds, so every writer's keystrokes and pings waited; and
most of those requests were superseded by the next keystroke before they answered.

So requests pass a gate. Its limit drops by 30 % whenever the loop runs late (a timer fires more
than ``high_lag_s`` after it was due) and grows by an eighth while the loop is on time and the
gate is full, between ``minimum`` and ``maximum``. (A floor of 16 instead of 4 sent fewer
suggestions to the offline tier when a thousand writers started at once, but let ping p99
reach 100-131 ms, against 49-72 ms: docs/reliability.md.) A request waiting at the gate costs nothing,
and one superseded while it waits never starts. Waiters are served first come, first served.
(Netflix's concurrency-limits and TCP Vegas adapt a limit to latency the same way; here the
latency is the loop's own.)
"""

from __future__ import annotations

import asyncio
import collections
import contextlib


class LagGate:
    def __init__(
        self,
        *,
        initial: int = 16,
        minimum: int = 4,
        maximum: int = 256,
        high_lag_s: float = 0.025,
        low_lag_s: float = 0.010,
        period_s: float = 0.05,
    ) -> None:
        self.minimum, self.maximum = min(minimum, maximum), maximum
        self.limit = max(self.minimum, min(initial, maximum))
        self.high_lag_s, self.low_lag_s, self.period_s = high_lag_s, low_lag_s, period_s
        self.held = 0
        self.waited = 0  # requests that had to wait (for figures)
        self._waiters: collections.deque[asyncio.Future] = collections.deque()
        self._monitor: asyncio.Task | None = None

    def adjust(self, lag_s: float) -> None:
        """One look at the loop: ``lag_s`` is how late a timer fired."""
        if lag_s > self.high_lag_s:
            self.limit = max(self.minimum, int(self.limit * 0.7))
        elif lag_s < self.low_lag_s and (self._waiters or self.held >= self.limit):
            self.limit = min(self.maximum, self.limit + max(1, self.limit // 8))
        self._wake()

    async def acquire(self, wait_s: float | None = None) -> bool:
        """A place at the gate (True), or False after ``wait_s`` seconds without one.

        The wait is a timer that resolves the waiter's future, not ``asyncio.timeout``: at a
        thousand writers most waits end this way, hundreds a second, and each timeout raised
        and chained a CancelledError, a TimeoutError and the caller's own error, whose
        tracebacks held their frames in reference cycles only the garbage collector frees
        (two thirds of the objects it freed, docs/reliability.md)."""
        self._watch()
        if self.held < self.limit and not self._waiters:
            self.held += 1
            return True
        self.waited += 1
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._waiters.append(fut)
        timer = None if wait_s is None else loop.call_later(wait_s, self._expire, fut)
        try:
            return await fut
        except BaseException:
            self._give_up(fut)
            raise
        finally:
            if timer is not None:
                timer.cancel()

    def _expire(self, fut: asyncio.Future) -> None:
        if not fut.done():
            with contextlib.suppress(ValueError):
                self._waiters.remove(fut)
            fut.set_result(False)

    def _give_up(self, fut: asyncio.Future) -> None:
        if fut.done() and not fut.cancelled():
            if fut.result():
                self.release()  # granted just as the waiter gave up: hand it on
            return
        fut.cancel()
        with contextlib.suppress(ValueError):
            self._waiters.remove(fut)

    def release(self) -> None:
        self.held -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.held < self.limit:
            fut = self._waiters.popleft()
            if not fut.done():
                self.held += 1
                fut.set_result(True)

    def _watch(self) -> None:
        """Look at the loop every ``period_s`` while anything holds or waits."""
        if self._monitor is None or self._monitor.done():
            self._monitor = asyncio.get_running_loop().create_task(self._look())

    async def _look(self) -> None:
        loop = asyncio.get_running_loop()
        while self.held or self._waiters:
            due = loop.time() + self.period_s
            await asyncio.sleep(self.period_s)
            self.adjust(loop.time() - due)

    async def aclose(self) -> None:
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(BaseException):
                await self._monitor
