"""Spreading connections over the workers: the supervisor accepts, each worker serves.

With one listening socket shared by N workers, the kernel gives a burst of new connections to
whichever worker happens to be waiting in ``accept``: at 1,000 writers connecting in a second,
the busier of two workers took 51-67 % of them (517-674 of 1,000), and it set everyone's tail
(docs/reliability.md). WebSocket connections live for hours, so the imbalance of a burst, or of
a worker started again after a crash (it begins with none), lasts as long as they do.

So the supervisor holds the listening socket and accepts; it passes each new connection's file
descriptor to the worker with the fewest connections (``SCM_RIGHTS`` over a ``SOCK_SEQPACKET``
socket pair, one per worker), as node's cluster module does by default. A worker serves what it
is handed exactly as it serves what it accepts (``loop.connect_accepted_socket`` with uvicorn's
own protocol, so TLS, the guard and the drain are unchanged).

Counting: each worker writes two numbers into a shared page (:class:`Loads`), when it is
handed connections and whenever one closes: how many connections it holds and how many it has
been handed so far. The supervisor knows how many it sent, so the ones still on their way are
the difference; a worker's load is what it holds plus those. A worker that is not ready, or
whose end is gone (it died: ``EPIPE``), gets nothing, and the connection goes to the next; when
every worker's queue is full, the supervisor stops accepting (the connections wait in the
kernel's backlog) until one has room.
"""

from __future__ import annotations

import asyncio
import contextlib
import mmap
import socket
import struct
import time
from collections import deque
from collections.abc import Callable

_SLOT = struct.Struct("<qq")  # connections held, connections received (written by the worker)
ACCEPT_BATCH = 64  # connections accepted per wake-up of the supervisor, before it looks around
ACCEPT_RETRY_S = 0.1  # after accept failed for want of descriptors or memory


class Loads:
    """One slot per worker index in a page shared across fork (``MAP_SHARED``)."""

    def __init__(self, n: int) -> None:
        self._page = mmap.mmap(-1, max(mmap.PAGESIZE, _SLOT.size * n))

    def write(self, index: int, held: int, received: int) -> None:
        _SLOT.pack_into(self._page, _SLOT.size * index, held, received)

    def read(self, index: int) -> tuple[int, int]:
        return _SLOT.unpack_from(self._page, _SLOT.size * index)

    def close(self) -> None:
        self._page.close()


def pair() -> tuple[socket.socket, socket.socket]:
    """(supervisor's end, worker's end) of one worker's hand-off channel."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ours.setblocking(False)
    return ours, theirs


class Dispatcher:
    """The supervisor's half. ``ends[index]`` is the supervisor's end of worker ``index``'s
    channel, present while that worker is ready to be handed connections."""

    def __init__(
        self, listener: socket.socket, loads: Loads, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.listener = listener
        listener.setblocking(False)
        self.loads = loads
        self.clock = clock
        self.ends: dict[int, socket.socket] = {}
        self.sent: dict[int, int] = {}
        self.pending: deque[socket.socket] = deque()
        self.handed = 0
        self.resume_at: float | None = None  # after an accept that failed for want of resources

    def open(self, index: int, end: socket.socket) -> None:
        """Worker ``index`` is ready: start handing it connections."""
        self.ends[index] = end
        self.sent[index] = 0

    def close(self, index: int) -> None:
        """Worker ``index`` is gone (or going): hand it nothing more."""
        end = self.ends.pop(index, None)
        self.sent.pop(index, None)
        if end is not None:
            end.close()

    def wants_accept(self) -> bool:
        if self.resume_at is not None:
            if self.clock() < self.resume_at:
                return False
            self.resume_at = None
        return bool(self.ends) and not self.pending

    def wants_write(self) -> list[socket.socket]:
        return list(self.ends.values()) if self.pending else []

    def on_readable(self) -> None:
        """Accept what is waiting (up to a batch) and hand each connection on."""
        for _ in range(ACCEPT_BATCH):
            try:
                conn, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:  # reset while queued: the next one may be fine
                continue
            except OSError:
                # Out of descriptors or memory (EMFILE, ENFILE, ENOBUFS): the listener stays
                # readable, so looking again at once would spin. The backlog waits meanwhile.
                self.resume_at = self.clock() + ACCEPT_RETRY_S
                return
            self.pending.append(conn)
            self.flush()
            if self.pending:
                return

    def flush(self) -> None:
        """Hand the pending connections on, each to the least loaded worker with room."""
        while self.pending:
            conn = self.pending[0]
            if not self._hand(conn):
                return
            self.pending.popleft()
            conn.close()  # the worker holds its own descriptor now

    def load(self, index: int) -> int:
        held, received = self.loads.read(index)
        return held + max(0, self.sent[index] - received)

    def _hand(self, conn: socket.socket) -> bool:
        for index in sorted(self.ends, key=self.load):
            try:
                socket.send_fds(self.ends[index], [b"c"], [conn.fileno()])
            except BlockingIOError:
                continue  # its queue is full: the next one
            except OSError:
                self.close(index)  # it is gone; the supervisor reaps and replaces it
                continue
            self.sent[index] += 1
            self.handed += 1
            return True
        return False

    def shutdown(self) -> None:
        for index in list(self.ends):
            self.close(index)
        while self.pending:
            self.pending.popleft().close()


class Receiver:
    """A worker's half: takes the descriptors from ``end`` and serves each with
    ``protocol_factory`` (and ``ssl``), publishing its load in ``loads[index]``."""

    def __init__(
        self,
        end: socket.socket,
        loads: Loads,
        index: int,
        protocol_factory: Callable[[], asyncio.Protocol],
        held: Callable[[], int],
        ssl: object = None,
    ) -> None:
        self.end = end
        end.setblocking(False)
        self.loads = loads
        self.index = index
        self.protocol_factory = protocol_factory
        self.held = held
        self.ssl = ssl
        self.received = 0
        # Of those, the ones in the server's registry (or given up on); the rest are on their way.
        self.arrived = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task] = set()
        self._publishing = False  # a publish is scheduled for the next loop step

    def watching(self, connections: set) -> set:
        """``connections`` (the server's registry of open connections, which ``held`` counts)
        as a set that publishes this worker's count whenever one leaves it: the supervisor
        sees a close at once, not at the next connection handed over. Published a loop step
        later, not inside the removal: uvicorn's WebSocket upgrade takes the HTTP protocol out
        of the registry and puts the WebSocket one in within one call, and a count taken in
        between missed the connection (a 9 / 11 split of 20 in the two-worker test)."""
        return _Watched(connections, self._publish_soon)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.loads.write(self.index, 0, 0)
        self._loop.add_reader(self.end.fileno(), self._on_readable)

    def stop(self) -> None:
        """Take no more connections (the drain): the supervisor's next hand-off fails and goes
        to another worker."""
        if self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self.end.fileno())
        self.end.close()

    def _publish_soon(self) -> None:
        if not self._publishing and self._loop is not None:
            self._publishing = True
            self._loop.call_soon(self._publish)

    def _publish(self) -> None:
        self._publishing = False
        # Received but not yet in the registry: counted as held already. Arrival is the
        # protocol's connection_made, which adds it to the registry, not the protocol's making:
        # a loop step (a TLS handshake, with TLS) separates the two, and a count published in
        # between missed the connection (a 9 / 11 split of 20 in the two-worker test). Nor the
        # tasks that set them up: a task outlives the arrival by a loop step, and a count taken
        # then held it twice (37 held against 22 received).
        self.loads.write(self.index, self.held() + self.received - self.arrived, self.received)

    def _on_readable(self) -> None:
        while True:
            try:
                message, fds, _, _ = socket.recv_fds(self.end, 16, 1)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                message, fds = b"", []
            if not message and not fds:  # the supervisor closed its end (or is gone)
                assert self._loop is not None
                self._loop.remove_reader(self.end.fileno())
                break
            for fd in fds:
                self.received += 1
                self._serve(socket.socket(fileno=fd))
        self._publish()

    def _serve(self, sock: socket.socket) -> None:
        assert self._loop is not None
        task = self._loop.create_task(self._connect(sock))
        self._tasks.add(task)  # held until done: the loop keeps only a weak reference
        task.add_done_callback(self._tasks.discard)

    async def _connect(self, sock: socket.socket) -> None:
        assert self._loop is not None
        arrived = False

        def protocol() -> asyncio.Protocol:
            made = self.protocol_factory()
            connection_made = made.connection_made

            def arrive(transport: asyncio.BaseTransport) -> None:
                nonlocal arrived
                try:
                    connection_made(transport)  # uvicorn's protocol joins the registry here
                finally:
                    arrived = True
                    self.arrived += 1

            made.connection_made = arrive  # type: ignore[method-assign]
            return made

        try:
            await self._loop.connect_accepted_socket(protocol, sock, ssl=self.ssl)
        except Exception:  # the client went away during a TLS handshake: nothing to serve
            sock.close()
            if not arrived:
                self.arrived += 1  # not on its way in any more
            self._publish()


class _Watched(set):
    """A set that calls ``on_leave()`` after anything leaves it (uvicorn's protocols use both
    ``discard`` and ``remove``)."""

    def __init__(self, items: set, on_leave: Callable[[], None]) -> None:
        super().__init__(items)
        self._on_leave = on_leave

    def discard(self, item: object) -> None:
        super().discard(item)
        self._on_leave()

    def remove(self, item: object) -> None:
        super().remove(item)
        self._on_leave()
