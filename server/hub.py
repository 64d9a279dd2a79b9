"""Every open connection of one app: the connection cap, status broadcasts, warming and shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Iterable
from typing import Any

from assistant.config import Settings
from assistant.pricing import Ledger, Usage

from .logs import log_event
from .metrics import ServerMetrics
from .wiring import ProviderSetup

WARM_EVERY_S = 15.0  # the Anthropic keep-alive connection lives 30 s; re-warm well inside it


class Hub:
    def __init__(self, settings: Settings, token: str, metrics: ServerMetrics) -> None:
        self.settings = settings
        self.token = token
        self.metrics = metrics
        self.setup: ProviderSetup | None = None  # set by the lifespan
        self.engine_factory: Any = None  # clock -> engine; None: SuggestionEngine from settings
        self.connections: set[Any] = set()
        self.reserved = 0
        self.ledger = Ledger()  # this process's totals (the server_stop log line)
        # (writer, day) -> dollars of that writer's budget this process holds in the database
        # beyond its requests in flight (server/spending.py: the lease)
        self.budget_leases: dict[tuple[str, str], float] = {}
        self.usage_ledger: Any = None  # server.ledger.Ledger: rows and budgets (the lifespan's)
        self.shared_park: Any = None  # server.park.SharedPark, with a database
        self.shutting_down = False
        self._ids = itertools.count(1)
        self._background: set[asyncio.Task] = set()
        self._last_warm = -1e9
        self._keep_warm_task: asyncio.Task | None = None
        self._warming: asyncio.Task | None = None  # the latest connection-time warm-up
        self._watching_offline = False
        self._forgetting: set[asyncio.Task] = set()  # forgets waiting for warm-ups to finish
        metrics.offline_documents.set_function(self._offline_documents)

    # -- admission -----------------------------------------------------------------------------

    def reserve(self) -> bool:
        """Claim a connection slot (False when at the cap)."""
        if self.reserved >= self.settings.max_connections:
            return False
        self.reserved += 1
        return True

    def release(self) -> None:
        self.reserved = max(0, self.reserved - 1)

    async def admit_writer(self, writer: Any, conn_id: str) -> bool:
        """Count a connection against its writer token's ``max_connections`` on every process
        that shares the ledger's database (no limit: nothing to ask). A database that cannot
        answer admits: the limit guards against abuse, and spending still needs the budget."""
        limit = getattr(writer, "max_connections", None)
        if limit is None or self.usage_ledger is None:
            return True
        try:
            return bool(await self.usage_ledger.call("open_connection", writer.id, conn_id, limit))
        except Exception as exc:
            log_event("writer_limit_unavailable", level=logging.WARNING, error=type(exc).__name__)
            return True

    async def writer_gone(self, writer: Any, conn_id: str) -> None:
        """A writer's connection closed: the budget this process held for the writer goes back
        once none of theirs is left here, and a limited writer's slot is free again, on every
        process (a process that stops or dies frees all of its own; see ``server/ledger.py``)."""
        self._return_leases(writer, conn_id)
        if getattr(writer, "max_connections", None) is None or self.usage_ledger is None:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.usage_ledger.call("close_connection", conn_id), 5.0)

    def _return_leases(self, writer: Any, conn_id: str) -> None:
        wid = getattr(writer, "id", None)
        if not self.budget_leases or wid is None:
            return
        for conn in self.connections:
            if conn.id != conn_id and getattr(conn.writer, "id", None) == wid:
                return  # another of the writer's connections still draws on it
        for key in [k for k in self.budget_leases if k[0] == wid]:
            amount = self.budget_leases.pop(key)
            if amount > 0 and self.usage_ledger is not None:
                self.usage_ledger.release_later(wid, key[1], amount)

    def next_id(self) -> str:
        return f"c{next(self._ids)}"

    def add(self, conn: Any) -> None:
        self.connections.add(conn)
        self.metrics.open_connections.set(len(self.connections))
        self._watch_offline()

    def _watch_offline(self) -> None:
        """Once: when the offline tier says it has room again (from a worker thread), tell every
        connection on the loop, so answers held for it are asked again."""
        on_free = getattr(self.setup.offline if self.setup else None, "on_free", None)
        if self._watching_offline or on_free is None:
            return
        self._watching_offline = True
        loop = asyncio.get_running_loop()

        def tier_free() -> None:
            for conn in list(self.connections):
                with contextlib.suppress(Exception):
                    conn.tier_free()

        def from_any_thread() -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the server is gone
                loop.call_soon_threadsafe(tier_free)

        on_free(from_any_thread)

    def remove(self, conn: Any) -> None:
        self.connections.discard(conn)
        self.metrics.open_connections.set(len(self.connections))

    # -- provider status -----------------------------------------------------------------------

    def broadcast_status(self, status: Any) -> None:
        if self.shared_park is not None:
            self.shared_park.on_status(status)
        if status.state == "rate_limited":
            self.metrics.rate_limit_events.labels("provider_window").inc()
        log_event(
            "provider_status",
            level=logging.WARNING if status.state != "ok" else logging.INFO,
            state=status.state,
            active=status.active,
            retry_after_s=status.retry_after_s,
            reason=status.reason,
        )
        for conn in list(self.connections):
            with contextlib.suppress(Exception):
                conn.send_status(status)

    # -- warming -------------------------------------------------------------------------------

    def spawn(self, coro: Any) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def warm_provider(self) -> None:
        """Open the provider's connection ahead of the first keystroke (at most every 15 s)."""
        now = time.monotonic()
        if self.setup is None or now - self._last_warm < WARM_EVERY_S:
            return
        self._last_warm = now
        self._warming = self.spawn(_quietly(self.setup.provider.warm()))

    def start_keep_warm(self) -> None:
        """Run :meth:`keep_warm` for the server's life (apart from the per-request background
        work in ``_background``, which drains; this never does until shutdown)."""
        self._keep_warm_task = asyncio.get_running_loop().create_task(self.keep_warm())

    async def keep_warm(self) -> None:
        """While anyone is connected, keep the connection to Anthropic open between keystrokes.

        The SDK's idle keep-alive connection expires after 30 s; a writer who pauses longer would
        pay a new TCP and TLS handshake on the next keystroke. A free ``count_tokens`` call every
        ``keep_warm_s`` keeps it open. Not while Anthropic is backing off or refused the key.
        """
        every = self.settings.keep_warm_s
        if every <= 0:
            return
        while True:
            await asyncio.sleep(every)
            setup = self.setup
            anthropic = setup.anthropic if setup is not None else None
            status = setup.status if setup is not None else None
            if not self.connections or anthropic is None or self.shutting_down:
                continue
            if status is not None and status.state != "ok":
                continue
            if self._warming is not None and not self._warming.done():
                continue  # a connection's own warm-up is opening the connection right now
            if time.monotonic() - self._last_warm < every:
                continue  # ...or did so a moment ago
            self._last_warm = time.monotonic()
            self.metrics.keep_warm.inc()
            await _quietly(anthropic.warm())

    def warm_offline(self, prefix: str, suffix: str, document_id: str) -> None:
        """The first suggest of a document: let the offline tier learn it / fill its cache.

        Not while the model answers: then the offline tier serves only when the model fails,
        and learns a document as it serves it (2,000 characters a call, nearest the cursor
        first). Learning every new connection's document on the loop competed with the model
        path's keystrokes: about a third of ping p99 at 500 typists (docs/reliability.md)."""
        setup = self.setup
        offline = setup.offline if setup else None
        if offline is None:
            return
        billable_now = getattr(setup, "billable_now", None)
        if billable_now is not None and billable_now():
            return
        self.spawn(_quietly(offline.warm(prefix, document_id=document_id)))

    def claim_offline(self, document_ids: Iterable[str], writer: str) -> None:
        """Charge what the offline tier learns of ``document_ids`` to ``writer``: its memory is
        bounded per writer, and evictions fall on the writer who caused them."""
        claim = getattr(self.setup.offline if self.setup else None, "claim", None)
        if claim is not None:
            for document_id in document_ids:
                claim(document_id, writer)

    def forget_offline(self, document_ids: Iterable[str]) -> None:
        """A connection closed: the offline tier drops what it learned of ``document_ids``,
        except any a live connection of this process still uses. Nothing is lost: the client
        owns the text and a reconnect opens (and the offline tier learns) it again.

        A warm-up in flight (``warm_offline``) would learn a document back after a forget, so
        while background work is running the forget waits for it to finish."""
        ids = tuple(document_ids)
        pending = [t for t in self._background if not t.done() and t not in self._forgetting]
        if pending:
            task = self.spawn(self._forget_after(pending, ids))
            self._forgetting.add(task)
            task.add_done_callback(self._forgetting.discard)
        else:
            self._forget_now(ids)

    def forget_review(self, document: str) -> None:
        """A connection closed: the reviewer drops the text it last reviewed for it (the base
        a re-review would send edits against)."""
        forget = getattr(self.setup.reviewer if self.setup else None, "forget", None)
        if forget is not None:
            with contextlib.suppress(Exception):
                forget(document)

    async def _forget_after(self, pending: list[asyncio.Task], document_ids: tuple) -> None:
        await asyncio.wait(pending)
        self._forget_now(document_ids)

    def _forget_now(self, document_ids: tuple) -> None:
        forget = getattr(self.setup.offline if self.setup else None, "forget", None)
        if forget is None:
            return
        live = {d for conn in self.connections for d in conn.offline_documents}
        for document_id in document_ids:
            if document_id not in live:
                with contextlib.suppress(Exception):
                    forget(document_id)

    def _offline_documents(self) -> float:
        offline = self.setup.offline if self.setup else None
        try:
            return float(getattr(offline, "documents", 0))
        except Exception:
            return 0.0

    # -- accounting ----------------------------------------------------------------------------

    def ledger_add(self, model: str, usage: Usage) -> None:
        try:
            self.ledger.add(model, usage)
        except KeyError:
            pass

    # -- shutdown ------------------------------------------------------------------------------

    async def shutdown(self) -> None:
        """Cancel everything in flight (``cancelled``/``shutdown``) and close every socket (1001)."""
        self.shutting_down = True
        if self._keep_warm_task is not None:
            self._keep_warm_task.cancel()
            await asyncio.gather(self._keep_warm_task, return_exceptions=True)
        conns = list(self.connections)
        if conns:
            await asyncio.gather(*(c.shutdown(1001) for c in conns), return_exceptions=True)
        for task in list(self._background):
            task.cancel()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)


async def _quietly(coro: Any) -> None:
    try:
        await coro
    except asyncio.CancelledError:
        raise
    except Exception:
        pass
