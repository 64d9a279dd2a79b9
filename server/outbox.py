"""A connection's outgoing frames: one ordered queue drained by one writer task.

Every frame the server sends goes through :meth:`Outbox.emit`. The writer checks staleness when
it sends: once ``suggest`` N+1 (or, in 1.1, an ``open`` or ``edit`` with a greater id) has been
read, ``stale_below`` rises, a ``delta`` for an older id still in the queue is dropped and a
``done`` becomes ``cancelled`` (``superseded``), so each id still gets exactly one terminal frame.
A client that sends but does not read would make the queue grow without bound; past
``max_frames`` the connection is closed with 1008 instead (:meth:`drop_slow_reader`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.websockets import WebSocket

from . import protocol as p
from .logs import redact

_CLOSE = object()
_STREAMING = ("delta", "done")
SUGGESTION_REPLIES = ("delta", "done", "cancelled", "error")


@dataclass
class ConnectionStats:
    frames_in: int = 0
    frames_out: int = 0
    suggests: int = 0
    done: int = 0
    cancelled: int = 0
    errors: int = 0
    requests: int = 0
    reviews: int = 0
    cost_usd: float = 0.0


class Outbox:
    """The queue and its writer. ``on_terminal(fid)`` is told before a ``cancelled`` or ``error``
    for ``fid`` is queued (no delta for it may follow); ``on_sent(kind, frame)`` after a
    suggestion reply went out; ``on_slow_reader()`` when the client stopped reading and the
    connection is being closed; ``on_gone()`` when a send failed (the socket is gone)."""

    def __init__(
        self,
        ws: WebSocket,
        *,
        max_frames: int,
        stats: ConnectionStats,
        metrics: Any,
        secrets: tuple,
        spawn: Callable[[Any], Any],
        on_terminal: Callable[[int | None], None],
        on_sent: Callable[[str, dict], None],
        on_slow_reader: Callable[[], None],
        on_gone: Callable[[], None],
    ) -> None:
        self.ws = ws
        self.max_frames = max_frames
        self.stats = stats
        self.metrics = metrics
        self.secrets = secrets
        self._spawn = spawn
        self._on_terminal = on_terminal
        self._on_sent = on_sent
        self._on_slow_reader = on_slow_reader
        self._on_gone = on_gone
        self._queue: deque = deque()
        self._wake = asyncio.Event()
        self.writer: asyncio.Task | None = None
        self.close_queued = False
        self.stale_below = -1  # no delta/done goes out for a suggest id below this

    def __len__(self) -> int:
        return len(self._queue)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.writer = loop.create_task(self._write_loop())

    # ------------------------------------------------------------------------------ queueing

    def emit(self, kind: str, fid: int | None, frame: dict) -> None:
        if self.close_queued:
            return
        if len(self._queue) >= self.max_frames:
            self.drop_slow_reader()
            return
        self._queue.append((kind, fid, frame))
        self._wake.set()

    def emit_cancelled(self, fid: int, reason: str) -> None:
        self._on_terminal(fid)
        self.stats.cancelled += 1
        self.emit("cancelled", fid, p.cancelled_frame(fid, reason))

    def emit_error(self, fid: int | None, code: str, message: str) -> None:
        self._on_terminal(fid)
        self.stats.errors += 1
        self.metrics.errors.labels(code).inc()
        self.emit("error", fid, p.error_frame(fid, code, redact(message, self.secrets)))

    def queue_close(self, code: int) -> None:
        """Close the socket with ``code`` once the frames queued before it are sent."""
        self._queue.append((_CLOSE, code))
        self.close_queued = True
        self._wake.set()

    # ------------------------------------------------------------------------ ending and drop

    async def flush(self) -> None:
        """Wait (at most 2 s) for the writer to send what is queued and close."""
        if self.writer is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(self.writer), 2.0)

    async def stop(self) -> None:
        """The read loop has ended: let a queued close go out (briefly), then stop the writer."""
        if self.writer is not None and not self.writer.done():
            if self.close_queued:  # shutdown is flushing the last frames
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.shield(self.writer), 2.0)
            self.writer.cancel()

    def drop_slow_reader(self) -> None:
        """The client sends but does not read: its replies would pile up without bound, so the
        connection ends (1008) instead. Nothing of the user's is lost: the text is the client's."""
        logging.getLogger("assistant.server").warning(
            "closing a connection that does not read its replies (%d queued)", len(self._queue)
        )
        self.metrics.cancellations.labels("slow_reader").inc()
        self._queue.clear()
        self.close_queued = True
        self._on_slow_reader()
        if self.writer is not None:
            self.writer.cancel()
        self._spawn(self._abort(1008))

    async def _abort(self, code: int) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(code=code), 2.0)

    # ------------------------------------------------------------------------------- writing

    async def _write_loop(self) -> None:
        queue, ws = self._queue, self.ws
        try:
            while True:
                if not queue:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                item = queue.popleft()
                if item[0] is _CLOSE:
                    with contextlib.suppress(Exception):
                        await ws.close(code=item[1])
                    return
                kind, fid, frame = item
                if kind in _STREAMING and fid < self.stale_below:
                    if kind == "delta":
                        continue  # stale: the client has moved on
                    frame = p.cancelled_frame(fid, "superseded")
                    kind = "cancelled"
                if kind == "done":
                    self.stats.done += 1
                await ws.send_text(p.encode(frame))
                self.stats.frames_out += 1
                self.metrics.frames_out.inc()
                if kind in SUGGESTION_REPLIES:
                    self._on_sent(kind, frame)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The socket is gone; the read loop will see the disconnect.
            self._on_gone()
