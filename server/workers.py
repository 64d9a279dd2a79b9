"""``assistant serve --workers N``: N server processes behind one port, and their supervisor.

Why processes: one Python event loop holds one core, and the server's work per keystroke is
Python. Connections are shared-nothing (each connection's engine, documents and requests live in
the process that accepted it), so any worker can take any connection and nothing needs to be
shared but the access token (and a page where each worker writes how many connections it holds).

How: the supervisor (this process) binds the socket, forks N workers, and accepts every
connection itself: it hands each one to the worker holding the fewest (:mod:`server.handoff`),
and each worker runs the ordinary app (:func:`server.app.build_app`) under :class:`~server.runner
.GracefulServer` on the connections it is handed. Not one shared socket that every worker accepts
from: the kernel then gave 51-67 % of a burst to one of two workers, and the busier worker set
everyone's tail (docs/reliability.md). Not one ``SO_REUSEPORT`` socket per worker either: a
worker that dies would take the connections queued on its socket with it; here the queue is the
supervisor's, and a dead worker is simply handed nothing until its replacement is ready.

- A worker that exits while the server is running is reported on stderr and started again (after
  a short backoff, growing while it keeps dying young, during which the supervisor keeps
  accepting for the others; it gives up after ``MAX_QUICK_DEATHS``
  deaths in a row within ``QUICK_DEATH_S`` of starting, and then the whole server stops with
  exit 1, rather than spinning).
- SIGTERM/SIGINT to the supervisor is passed to every worker, which drains as a single server does
  (every request in flight ends ``cancelled``/``shutdown``, connections close 1001); a second
  signal is passed on too (each worker then stops waiting). Workers still alive
  ``KILL_AFTER_S`` later are killed.
- A worker whose supervisor disappears (``kill -9``) drains and exits by itself: it watches a
  pipe only the supervisor holds open.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from assistant.config import Settings

from .handoff import Dispatcher, Loads, Receiver, pair
from .runner import GRACEFUL_TIMEOUT_S, GracefulServer, serve_until_signalled, uvicorn_config

QUICK_DEATH_S = 5.0  # a worker dying sooner than this after its start counts as a crash loop
MAX_QUICK_DEATHS = 5
KILL_AFTER_S = GRACEFUL_TIMEOUT_S + 8.0  # after the first stop signal: then SIGKILL


def uses_local_model(settings: Settings) -> bool:
    """Whether this server's offline tier would load the local language model."""
    mode = (settings.offline or "auto").strip().lower()
    if mode == "statistical":
        return False
    from assistant.providers.local import available

    return mode == "local" or available()


def default_workers(settings: Settings) -> int:
    """One per core; one when the local model is in use (each process would load its own ~250 MB
    copy and run it on the same cores, so more processes only add memory and contention)."""
    if uses_local_model(settings):
        return 1
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


@dataclass
class Worker:
    index: int
    pid: int
    started: float
    end: socket.socket  # the supervisor's end of its hand-off channel
    ready: bool = False


class Supervisor:
    """Runs ``n`` workers on ``sock`` until a stop signal; :meth:`run` returns the exit code."""

    def __init__(
        self,
        settings: Settings,
        n: int,
        sock: socket.socket,
        build_app: Callable[[], object],
        on_ready: Callable[[list[str]], None],
        *,
        loop: str = "auto",
        configure: Callable[[object], None] | None = None,
    ) -> None:
        self.loop = loop
        self.configure = configure  # a last word on each worker's uvicorn.Config (tools/load.py)
        self.settings = settings
        self.n = n
        self.sock = sock
        self.build_app = build_app
        self.on_ready = on_ready
        self.workers: dict[int, Worker] = {}  # pid -> worker
        self.loads = Loads(n)
        self.dispatcher = Dispatcher(sock, self.loads)
        self.stopping = False
        self.kill_at: float | None = None  # after the first stop signal: SIGKILL then
        self.restarts: dict[int, tuple[float, str]] = {}  # index -> (when, what to say)
        self.quick_deaths = 0
        self.announced = False
        self._labels: list[str] = []

    # -- the supervisor's loop ------------------------------------------------------------------

    def run(self) -> int:
        ready_r, self._ready_w = os.pipe()
        self._lifeline_r, self._lifeline_w = os.pipe()
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        os.set_blocking(wake_r, False)
        signals: list[int] = []
        previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD)}
        old_wakeup = signal.set_wakeup_fd(wake_w)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda s, _f: signals.append(s))
        signal.signal(signal.SIGCHLD, lambda *_: None)  # only to wake select()
        exit_code = 0
        buffered = b""
        try:
            for index in range(self.n):
                self._spawn(index)
            while self.workers or self.restarts:
                listen = [self.sock] if self.dispatcher.wants_accept() and not self.stopping else []
                readable, writable, _ = select.select(
                    [ready_r, wake_r, *listen], self.dispatcher.wants_write(), [], self._timeout()
                )
                if writable:
                    self.dispatcher.flush()
                if self.sock in readable:
                    self.dispatcher.on_readable()
                if wake_r in readable:
                    with contextlib.suppress(BlockingIOError):
                        os.read(wake_r, 512)
                if ready_r in readable:
                    buffered += os.read(ready_r, 4096)
                    *lines, buffered = buffered.split(b"\n")
                    for line in lines:
                        self._on_ready_line(line.decode())
                while signals:
                    signals.pop()
                    self._stop()
                    self._signal_all(signal.SIGTERM)
                if self.kill_at is not None and time.monotonic() >= self.kill_at:
                    self._signal_all(signal.SIGKILL)
                    self.kill_at = time.monotonic() + 5.0
                code = self._reap()
                if code and not self.stopping:
                    exit_code = code
                    self._stop()
                    self._signal_all(signal.SIGTERM)
                self._restart_due()
        finally:
            self.dispatcher.shutdown()
            for pid in list(self.workers):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)
            signal.set_wakeup_fd(old_wakeup)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for fd in (ready_r, self._ready_w, wake_r, wake_w, self._lifeline_r, self._lifeline_w):
                os.close(fd)
            for worker in self.workers.values():
                worker.end.close()
            self.loads.close()
        return exit_code

    def _timeout(self) -> float | None:
        due = [when for when, _ in self.restarts.values()]
        due += [t for t in (self.kill_at, self.dispatcher.resume_at) if t is not None]
        return max(0.0, min(due) - time.monotonic()) if due else None

    def _stop(self) -> None:
        if not self.stopping:
            self.stopping = True
            self.restarts.clear()
            self.dispatcher.shutdown()  # accept nothing more; the backlog waits for no one
            self.kill_at = time.monotonic() + KILL_AFTER_S

    def _restart_due(self) -> None:
        now = time.monotonic()
        for index, (when, said) in list(self.restarts.items()):
            if when <= now:
                del self.restarts[index]
                new = self._spawn(index)
                print(f"{said}; started it again as pid {new}", file=sys.stderr, flush=True)

    def _signal_all(self, sig: int) -> None:
        for pid in self.workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def _on_ready_line(self, line: str) -> None:
        pid_text, _, label = line.partition(" ")
        worker = self.workers.get(int(pid_text)) if pid_text.isdigit() else None
        if worker is None:
            return
        worker.ready = True
        if not self.stopping:
            self.dispatcher.open(worker.index, worker.end)
        if self.announced:  # a replacement: new connections go to it first (it holds none)
            print(
                f"assistant serve: worker {worker.index} (pid {worker.pid}) is serving",
                file=sys.stderr,
                flush=True,
            )
        else:
            self._labels.append(label)
            if all(w.ready for w in self.workers.values()) and len(self.workers) == self.n:
                self.announced = True
                self.on_ready(self._labels)

    def _reap(self) -> int:
        """Collect exited workers; restart them unless stopping. Non-zero: give up with this code."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return 0
            if pid == 0:
                return 0
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue
            self.dispatcher.close(worker.index)
            worker.end.close()
            if self.stopping:
                continue
            code = os.waitstatus_to_exitcode(status)
            lived = time.monotonic() - worker.started
            how = f"signal {-code}" if code < 0 else f"exit {code}"
            said = (
                f"assistant serve: worker {worker.index} (pid {pid}) stopped ({how}) "
                f"after {lived:.1f} s"
            )
            if not self.announced and not worker.ready:
                print(f"{said}; it could not start", file=sys.stderr, flush=True)
                return 1
            self.quick_deaths = self.quick_deaths + 1 if lived < QUICK_DEATH_S else 0
            if self.quick_deaths >= MAX_QUICK_DEATHS:
                print(
                    f"{said}; workers died {self.quick_deaths} times in a row within "
                    f"{QUICK_DEATH_S:.0f} s of starting: stopping",
                    file=sys.stderr,
                    flush=True,
                )
                return 1
            # Not a sleep: the supervisor keeps accepting for the other workers meanwhile.
            backoff = min(2.0, 0.05 * 2**self.quick_deaths)
            self.restarts[worker.index] = (time.monotonic() + backoff, said)

    # -- a worker ------------------------------------------------------------------------------

    def _spawn(self, index: int) -> int:
        sys.stdout.flush()
        sys.stderr.flush()
        ours, theirs = pair()
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                ours.close()
                for worker in self.workers.values():
                    worker.end.close()  # the other workers' channels are the supervisor's
                code = self._worker_main(index, theirs)
            except BaseException:  # noqa: BLE001 (report anything, never return into the loop)
                import traceback

                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        theirs.close()
        self.workers[pid] = Worker(index, pid, time.monotonic(), ours)
        return pid

    def _worker_main(self, index: int, handoff: socket.socket) -> int:
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGTERM, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        # Ctrl+C reaches the whole process group; the supervisor passes it on as SIGTERM, once
        # per press, so a worker that also took SIGINT itself would see two and not drain.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        os.close(self._lifeline_w)
        app = self.build_app()
        host, port = self.sock.getsockname()[:2]
        self.sock.close()  # the supervisor accepts; this worker serves what it is handed
        config = uvicorn_config(app, self.settings, host, port)
        if self.configure is not None:
            self.configure(config)
        server = GracefulServer(
            config,
            handoff=lambda protocol, held, ssl: Receiver(
                handoff, self.loads, index, protocol, held, ssl
            ),
        )

        def ready() -> None:
            label = app.state.hub.setup.label
            os.write(self._ready_w, f"{os.getpid()} {label}\n".encode())

        async def orphan_watch(stop: Callable[[], None]) -> None:
            # Only the supervisor holds the lifeline's write end: EOF here means it is gone.
            gone = asyncio.Event()
            loop = asyncio.get_running_loop()
            loop.add_reader(self._lifeline_r, gone.set)
            try:
                await gone.wait()
            finally:
                loop.remove_reader(self._lifeline_r)
            stop()

        try:
            serve_until_signalled(
                server,
                ready,
                sockets=[],
                watch=orphan_watch,
                loop=self.loop,
                signals=(signal.SIGTERM,),
            )
        except SystemExit as exc:
            return int(exc.code or 1)
        return 0


def bind_socket(settings: Settings) -> socket.socket:
    """The listening socket every worker shares (uvicorn's own binding rules)."""
    config = uvicorn_config(None, settings, settings.host, settings.port)
    sock = config.bind_socket()
    sock.listen(config.backlog)  # connections queue even while no worker is accepting
    sock.set_inheritable(True)
    return sock
