"""The emulator for synchronous code: its own event loop in a daemon thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from .server import Emulator, EmulatorConfig, Fault, RequestRecord

T = TypeVar("T")


class EmulatorThread:
    """Same API as :class:`Emulator`, callable from any thread; waits block."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.emulator = Emulator(config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> EmulatorThread:
        ready = threading.Event()
        error: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.emulator.start())
            except BaseException as exc:  # report the bind failure to the caller
                error.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self.emulator.stop())
                loop.close()

        self._thread = threading.Thread(target=run, name="anthropic-emulator", daemon=True)
        self._thread.start()
        ready.wait()
        if error:
            raise error[0]
        return self

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop = None
        self._thread = None

    def __enter__(self) -> EmulatorThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        assert self._loop is not None, "EmulatorThread not started"
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    @property
    def base_url(self) -> str:
        return self.emulator.base_url

    @property
    def requests(self) -> list[RequestRecord]:
        return self.emulator.requests

    @property
    def connections_opened(self) -> int:
        return self.emulator.connections_opened

    def inject(self, fault: Fault, count: int = 1, match_model: str | None = None) -> None:
        self.emulator.inject(fault, count=count, match_model=match_model)

    def reset(self) -> None:
        assert self._loop is not None, "EmulatorThread not started"

        async def reset() -> None:
            self.emulator.reset()

        self._call(reset())

    def wait_for_request(self, n: int = 1, timeout: float = 5.0) -> RequestRecord:
        return self._call(self.emulator.wait_for_request(n, timeout))

    def wait_for_request_end(self, rec: RequestRecord, timeout: float = 5.0) -> RequestRecord:
        return self._call(self.emulator.wait_for_request_end(rec, timeout))
