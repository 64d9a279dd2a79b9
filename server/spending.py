"""What a connection's requests cost, and the writer's budget: the one booking point.

Every model request is booked here when it ends (this connection's total, /metrics, the hub's
totals and a row in the usage ledger), and, for a writer with a daily budget, its worst case is
reserved in the database before it goes out (``assistant/budget.py`` has the arithmetic,
``server/ledger.py`` the storage). A writer whose day is spent hears so once a day in a
``status`` frame and gets offline suggestions until 00:00 UTC.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from assistant.budget import Reservation, day_of, resets_at
from assistant.pricing import Usage, default_catalog

from . import protocol as p
from .ledger import Row
from .logs import log_event
from .outbox import ConnectionStats, Outbox
from .wiring import price

# A reservation that goes to the database asks for this many times its worst case, and keeps the
# rest for the writer's next requests on this process (``Hub.budget_leases``), given back when
# the writer's last connection here closes. The database still holds all of it, so spent plus
# held never passes the budget on any number of boxes; what changes is that 3 requests of 4 (and
# every request given back) make no round trip to the database: a transaction and a wake of
# the ledger's thread per model request were most of what 1,000 distinct writers cost over one
# token (docs/reliability.md). The price: near the end of a writer's day, up to 3 worst cases
# may sit with one process while another's connection of the same writer is refused.
LEASE_REQUESTS = 4


class WriterSpending:
    """One connection's booking and budget. ``budget_usd_day`` None: no budget, no reservation
    (the writer never waits for the database)."""

    def __init__(
        self,
        hub: Any,
        conn_id: str,
        writer_id: str,
        budget_usd_day: float | None,
        outbox: Outbox,
        stats: ConnectionStats,
    ) -> None:
        self.hub = hub
        self.setup = hub.setup
        self.metrics = hub.metrics
        self.conn_id = conn_id
        self.writer_id = writer_id
        self.budget_usd_day = budget_usd_day
        self.outbox = outbox
        self.stats = stats
        self._budget_notice_day: str | None = None  # the day a budget_spent status went out
        self.closed = False  # the connection is going: nothing more to keep for the writer here

    def account(
        self,
        model: str,
        usage: Usage | None,
        role: str = "suggestion",
        reservation: Reservation | None = None,
        cancelled: bool = False,
    ) -> float:
        """Book what a request spent: this connection's total, /metrics, the hub's totals and a
        row in the usage ledger, which also settles the request's reservation (if any)."""
        if usage is None or not model:
            self.give_back(reservation)
            return 0.0
        cost = price(model, usage)
        self.stats.cost_usd += cost
        self.metrics.spent(model, usage, cost)
        self.hub.ledger_add(model, usage)
        ledger = self.hub.usage_ledger
        entry = default_catalog().prices.get(model)
        if ledger is None or entry is None or entry.family == "offline":
            self.give_back(reservation)  # the offline tier answered: no model request
        else:
            now = time.time()
            ledger.record(
                Row(
                    id=ledger.new_id(),
                    ts=now,
                    day=reservation.day if reservation is not None else day_of(now),
                    writer=self.writer_id,
                    conn=self.conn_id,
                    model=model,
                    role=role,
                    input_tokens=usage.input_tokens,
                    cache_write_tokens=usage.cache_creation_input_tokens,
                    cache_read_tokens=usage.cache_read_input_tokens,
                    output_tokens=usage.output_tokens,
                    cost_usd=cost,
                    cancelled=cancelled,
                    estimated=usage.estimated,
                    reserved=reservation.take() if reservation is not None else 0.0,
                )
            )
        return cost

    async def reserve_exactly(self, amount: float) -> Reservation:
        """:meth:`reserve` with no lease asked beyond ``amount`` (a review: 4 of its worst
        cases would hold much of a day's budget on this process)."""
        return await self.reserve(amount, lease=False)

    async def reserve(self, amount: float, *, lease: bool = True) -> Reservation:
        """Hold ``amount`` of the writer's day before a request goes out (the database decides,
        so every worker and box draws on one account). Refused: the budget is spent, and the
        client hears so once a day in a ``status`` frame."""
        ledger = self.hub.usage_ledger
        now = time.time()
        reservation = Reservation(self.writer_id, day_of(now), amount)
        if ledger is None or self.budget_usd_day is None:
            return reservation
        key = (self.writer_id, reservation.day)
        leases = self.hub.budget_leases
        held = leases.get(key, 0.0)
        if held >= amount:  # drawn from what this process holds for the writer: no round trip
            leases[key] = held - amount
            return self._granted(reservation)
        pending = asyncio.ensure_future(
            ledger.reserve_up_to(
                self.writer_id,
                reservation.day,
                self.budget_usd_day,
                amount,
                amount * LEASE_REQUESTS if lease else amount,
            )
        )
        try:
            got = float(await asyncio.shield(pending))
        except asyncio.CancelledError:
            # The request was cancelled while the database answered: a grant is this process's.
            pending.add_done_callback(lambda f: self._lease_late(f, key))
            raise
        except Exception as exc:  # the database is down: spend control fails closed
            log_event("budget_unavailable", level=logging.WARNING, error=type(exc).__name__)
            reservation.granted = False
            self._budget_spent(now, "the usage ledger cannot be reached")
            return reservation
        reservation.granted = got >= amount
        if not reservation.granted:
            self._budget_spent(now)
            return reservation
        if got > amount:
            leases[key] = leases.get(key, 0.0) + got - amount
        return self._granted(reservation)

    def _granted(self, reservation: Reservation) -> Reservation:
        """A granted reservation; after a budget_spent notice, the status is ok again."""
        if self._budget_notice_day is not None:
            self._budget_notice_day = None
            status = self.setup.status
            if status is None or status.state == "ok":
                self.outbox.emit(
                    "status",
                    None,
                    p.status_frame(
                        self.setup.label,
                        "ok",
                        until=None,
                        retry_after_s=None,
                        active=status.active if status is not None else self.setup.label,
                        reason="",
                    ),
                )
        return reservation

    def give_back(self, reservation: Reservation | None) -> None:
        """A reserved request will not be booked (it failed, never went out, or the offline
        tier answered): what it held stays with this process's lease for the writer's next."""
        amount = reservation.take() if reservation is not None else 0.0
        if amount > 0 and self.budget_usd_day is not None:
            self._keep((reservation.writer, reservation.day), amount)

    def _lease_late(self, fut: asyncio.Future, key: tuple[str, str]) -> None:
        if not fut.cancelled() and fut.exception() is None and fut.result():
            self._keep(key, float(fut.result()))

    def _keep(self, key: tuple[str, str], amount: float) -> None:
        """``amount`` held in the database goes to the process's lease for the writer, or back
        to the database once the connection is closing (its writer may have no other here, and
        the lease is given back when the last one closes: Hub.writer_gone)."""
        ledger = self.hub.usage_ledger
        if self.closed and ledger is not None:
            ledger.release_later(key[0], key[1], amount)
        else:
            self.hub.budget_leases[key] = self.hub.budget_leases.get(key, 0.0) + amount

    def _budget_spent(self, now: float, why: str = "") -> None:
        day = day_of(now)
        if self._budget_notice_day == day:
            return
        self._budget_notice_day = day
        self.metrics.rate_limit_events.labels("writer_budget").inc()
        reset = resets_at(now)
        log_event("budget_spent", conn=self.conn_id, writer=self.writer_id, day=day)
        self.outbox.emit(
            "status",
            None,
            p.status_frame(
                self.setup.label,
                "budget_spent",
                until=reset,
                retry_after_s=round(reset - now, 3),
                active=getattr(self.setup.offline, "name", "offline"),
                reason=f"{why}; suggestions come from the offline tier until it answers"
                if why
                else f"this writer's daily budget (${self.budget_usd_day:g}) is spent;"
                " suggestions come from the offline tier until 00:00 UTC",
            ),
        )

    def on_accept(self, chars: int) -> None:
        ledger = self.hub.usage_ledger
        if ledger is not None and chars > 0:
            ledger.accepted(self.writer_id, chars)
