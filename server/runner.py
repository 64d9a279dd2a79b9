"""Running the app under uvicorn: in an async test, in a background thread, or for ``serve``.

:class:`GracefulServer` changes two things about ``uvicorn.Server``: it never installs signal
handlers of its own (the caller decides), and on shutdown it first lets the app end every request
in flight with ``cancelled``/``shutdown`` and close with 1001, before uvicorn closes whatever is
left with 1012.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import uvicorn

from assistant.config import Settings

from .app import WS_PATH, build_app
from .guard import Guard, GuardLimits, protocol_classes, raise_open_file_limit

T = TypeVar("T")
GRACEFUL_TIMEOUT_S = 2.0


def uvicorn_config(app: Any, settings: Settings, host: str, port: int) -> uvicorn.Config:
    """uvicorn's settings, with its HTTP and WebSocket protocols wrapped by :mod:`server.guard`
    (header and idle timeouts, per-IP caps, control frames charged to the frame budget)."""
    metrics = getattr(getattr(app, "state", None), "metrics", None)
    http, ws = protocol_classes(Guard(GuardLimits.from_settings(settings), metrics))
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=http,
        ws=ws,
        ws_max_size=settings.max_frame_bytes,
        ws_per_message_deflate=settings.ws_compression,
        lifespan="on",
        log_level="warning",
        timeout_graceful_shutdown=GRACEFUL_TIMEOUT_S,
        access_log=False,
    )


class GracefulServer(uvicorn.Server):
    """``handoff(protocol_factory, held, ssl)``, when given, makes the server accept nothing
    itself: it returns a started-later :class:`~server.handoff.Receiver` that serves the
    connections a supervisor hands over (``held()`` is how many this server holds)."""

    def __init__(self, config: uvicorn.Config, handoff: Callable[..., Any] | None = None) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()
        self._handoff = handoff
        self.receiver: Any = None

    @contextlib.contextmanager
    def capture_signals(self):
        yield  # signals are the caller's business (tests must keep pytest's)

    async def startup(self, sockets=None) -> None:
        if self._handoff is None:
            await super().startup(sockets=sockets)
        else:
            await super().startup(sockets=[])  # no listener of its own
            config = self.config

            def protocol() -> asyncio.Protocol:  # as uvicorn's startup builds it
                return config.http_protocol_class(  # type: ignore[call-arg]
                    config=config, server_state=self.server_state, app_state=self.lifespan.state
                )

            state = self.server_state
            self.receiver = self._handoff(protocol, lambda: len(state.connections), config.ssl)
            # Before any connection: each protocol keeps a reference to this set.
            state.connections = self.receiver.watching(state.connections)
            self.receiver.start()
        self.ready.set()

    async def shutdown(self, sockets=None) -> None:
        if self.receiver is not None:
            self.receiver.stop()  # the supervisor hands new connections to the other workers
        hub = getattr(getattr(self.config.app, "state", None), "hub", None)
        if hub is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(hub.shutdown(), GRACEFUL_TIMEOUT_S + 1)
        await super().shutdown(sockets=sockets)

    @property
    def bound_port(self) -> int:
        for server in getattr(self, "servers", []):
            for sock in server.sockets:
                return sock.getsockname()[1]
        raise RuntimeError("server is not listening")


def serve_until_signalled(
    server: GracefulServer,
    on_ready: Callable[[], None],
    *,
    sockets: list | None = None,
    watch: Callable[[Callable[[], None]], Coroutine[Any, Any, None]] | None = None,
    loop: str = "auto",
    signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM),
) -> None:
    """Run ``server`` on a fresh event loop until SIGINT/SIGTERM (a second one stops waiting for
    the drain); ``on_ready()`` once it listens. ``watch(stop)`` runs alongside and may call
    ``stop`` itself (a worker whose supervisor has gone). Used by ``serve`` and each worker."""

    raise_open_file_limit()

    async def main() -> None:
        loop = asyncio.get_running_loop()

        def stop() -> None:
            if server.should_exit:
                server.force_exit = True
            server.should_exit = True

        for sig in signals:
            try:
                loop.add_signal_handler(sig, stop)
            except (NotImplementedError, RuntimeError):  # pragma: no cover (Windows)
                signal.signal(sig, lambda *_: stop())

        async def announce() -> None:
            await server.ready.wait()
            on_ready()

        helpers = [loop.create_task(announce())]
        if watch is not None:
            helpers.append(loop.create_task(watch(stop)))
        try:
            await server.serve(sockets=sockets)
        finally:
            for task in helpers:
                task.cancel()

    run_loop(main(), loop)


def run_loop(main: Coroutine[Any, Any, T], loop: str = "auto") -> T:
    """``asyncio.run``, on uvloop when it is installed (``auto``) or asked for (``uvloop``):
    measured faster in docs/reliability.md. ``asyncio`` forces the standard loop."""
    if loop not in ("auto", "asyncio", "uvloop"):
        raise ValueError(f"loop must be auto, asyncio or uvloop, not {loop!r}")
    factory = None
    if loop != "asyncio":
        try:
            import uvloop

            factory = uvloop.new_event_loop
        except ImportError:
            if loop == "uvloop":
                raise
    if factory is None:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


class ServerHandle:
    """``async with ServerHandle(settings) as srv:`` a real server on 127.0.0.1, ephemeral port."""

    def __init__(
        self,
        settings: Settings,
        app: Any = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        **build_app_kwargs: Any,
    ) -> None:
        self.settings = settings
        self.app = app if app is not None else build_app(settings, **build_app_kwargs)
        self.host = host
        self._port = port
        self.port = 0
        self.server: GracefulServer | None = None
        self._task: asyncio.Task | None = None

    @property
    def token(self) -> str:
        return self.app.state.token

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}{WS_PATH}"

    @property
    def hub(self):
        return self.app.state.hub

    async def start(self) -> ServerHandle:
        self.server = GracefulServer(uvicorn_config(self.app, self.settings, self.host, self._port))
        self._task = asyncio.get_running_loop().create_task(self._serve())
        ready = asyncio.ensure_future(self.server.ready.wait())
        try:
            await asyncio.wait({ready, self._task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
        if not self.server.ready.is_set():
            await self._task  # raises the startup failure
            raise RuntimeError("server stopped during startup")
        self.port = self.server.bound_port
        return self

    async def _serve(self) -> None:
        assert self.server is not None
        try:
            await self.server.serve()
        except SystemExit as exc:  # uvicorn's way of saying the lifespan failed
            raise RuntimeError(f"server failed to start (exit {exc.code})") from None

    async def shutdown(self) -> None:
        if self.server is None or self._task is None:
            return
        self.server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def __aenter__(self) -> ServerHandle:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()


class ServerThread:
    """The same server for synchronous callers (the Textual app): its own loop in a thread.

    ``with ServerThread(settings) as srv: srv.ws_url``; ``srv.call(coro)`` runs a coroutine on
    the server's loop and returns its result.
    """

    def __init__(self, settings: Settings, app: Any = None, **kwargs: Any) -> None:
        self.handle = ServerHandle(settings, app, **kwargs)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None

    def __getattr__(self, name: str) -> Any:
        if name in {"port", "http_url", "ws_url", "token", "app", "hub", "settings"}:
            return getattr(self.handle, name)
        raise AttributeError(name)

    def start(self) -> ServerThread:
        started = threading.Event()
        errors: list[BaseException] = []

        async def main() -> None:
            self._stop = asyncio.Event()
            try:
                await self.handle.start()
            except BaseException as exc:
                errors.append(exc)
                started.set()
                return
            started.set()
            try:
                await self._stop.wait()
            finally:
                await self.handle.shutdown()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(main())
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="assistant-server", daemon=True)
        self._thread.start()
        started.wait()
        if errors:
            self._thread.join(timeout=5)
            raise errors[0]
        return self

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = 10.0) -> T:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def call_soon(self, fn: Callable[[], Any]) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(fn)

    def stop(self) -> None:
        if self._loop is None or self._thread is None or self._stop is None:
            return
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=15)
        self._thread = None

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
