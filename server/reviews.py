"""A connection's review jobs: each ``review`` frame runs the hub's reviewer as a task whose
events become ``review_delta``, ``finding``, ``finding_retracted`` and one ``review_done`` (or an
``error``, or ``cancelled`` when the client or the server stops it)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from assistant.pricing import Usage
from assistant.providers.base import ProviderError, ProviderErrorKind
from assistant.review.findings import Finding, FindingRetracted, ReviewDelta, ReviewDone

from . import protocol as p
from .logs import log_event
from .outbox import ConnectionStats, Outbox
from .suggestions import ERROR_CODES


@dataclass
class _ReviewJob:
    id: int
    task: asyncio.Task
    started: float
    reservation: Any = None


class ReviewJobs:
    """The reviews in flight on one connection. ``account(model, usage) -> cost`` books what a
    review spent; ``message_of(err)`` is the redacted text of a provider error."""

    def __init__(
        self,
        hub: Any,
        conn_id: str,
        outbox: Outbox,
        stats: ConnectionStats,
        *,
        account: Callable[..., float],
        message_of: Callable[[ProviderError | None], str],
        reserve: Callable[[float], Awaitable[Any]] | None = None,
        give_back: Callable[[Any], None] = lambda reservation: None,
    ) -> None:
        self._reserve = reserve
        self._give_back = give_back
        self.setup = hub.setup
        self.metrics = hub.metrics
        self.settings = hub.settings
        self.id = conn_id
        self.loop = asyncio.get_running_loop()
        self.outbox = outbox
        self.stats = stats
        self._account = account
        self._message_of = message_of
        self._jobs: dict[int, _ReviewJob] = {}

    def start(self, frame: p.Review) -> None:
        reviewer = self.setup.reviewer
        if reviewer is None:
            self.outbox.emit_error(
                frame.id, p.UNAVAILABLE, "review is not available on this server"
            )
            return
        if len(self._jobs) >= max(1, self.settings.max_reviews_in_flight):
            self.outbox.emit_error(frame.id, p.RATE_LIMITED, "a review is already running")
            return
        self.stats.reviews += 1
        self.metrics.requests.labels("review").inc()
        job = _ReviewJob(frame.id, None, self.loop.time())  # type: ignore[arg-type]
        job.task = self.loop.create_task(self._review(frame.id, frame.text, reviewer, frame.tier))
        self._jobs[frame.id] = job

    async def _hold_budget(self, rid: int, text: str) -> bool:
        """Reserve the review's worst case on the writer's day; False (the client told, with a
        clear error) when the budget cannot hold it. A review has no offline stand-in that
        would be what the writer asked for, so it is refused rather than degraded."""
        if self._reserve is None or self.setup.anthropic is None:
            return True
        reservation = await self._reserve(self.setup.review_worst_case(text))
        job = self._jobs.get(rid)
        if job is None:
            self._give_back(reservation)
            return False
        if not reservation.granted:
            self._jobs.pop(rid, None)
            self.outbox.emit_error(
                rid,
                p.BUDGET_SPENT,
                "this writer's daily budget cannot cover a review of this text"
                f" (at most ${reservation.amount:.4f}); it resets at 00:00 UTC",
            )
            return False
        job.reservation = reservation
        return True

    def cancel(self, rid: int) -> None:
        """The client's ``cancel_review``."""
        job = self._jobs.pop(rid, None)
        if job is not None:
            job.task.cancel()
            self.metrics.cancellations.labels("client").inc()
            self.outbox.emit_cancelled(rid, "client")

    def stop_all(self, why: str) -> None:
        """Cancel every task. On ``shutdown`` the jobs stay listed, so :meth:`cancel_all_frames`
        can still tell their clients."""
        for job in self._jobs.values():
            job.task.cancel()
            self.metrics.cancellations.labels(why).inc()
        if why != "shutdown":
            self._jobs.clear()

    def cancel_all_frames(self, reason: str) -> None:
        for job in list(self._jobs.values()):
            self.outbox.emit_cancelled(job.id, reason)
        self._jobs.clear()

    async def _review(self, rid: int, text: str, reviewer: Any, tier: str | None = None) -> None:
        started = self.loop.time()
        finished = False
        emit = self.outbox.emit
        if not await self._hold_budget(rid, text):
            return
        reservation = self._jobs[rid].reservation
        # The connection is the document key: a re-review sends the edits since the last one
        # (prompt cache), and never another connection's text.
        stream = reviewer.review(text, tier=tier, document=self.id)
        # Findings past the cap are counted, not sent: more than the outbox holds (4,096) closed
        # the writer's own connection with 1008 and delivered none (a 199k-character document).
        cap = max(1, self.settings.max_review_findings)
        sent: set[int] = set()
        left_out = 0
        try:
            async for ev in stream:
                if rid not in self._jobs:
                    return
                match ev:
                    case ReviewDelta():
                        emit("review_delta", rid, p.review_delta_frame(rid, ev.text))
                    case Finding() if len(sent) >= cap:
                        left_out += 1
                    case Finding():
                        sent.add(ev.index)
                        emit("finding", rid, _finding_frame(rid, ev))
                    case FindingRetracted() if ev.index in sent:
                        emit(
                            "finding_retracted",
                            rid,
                            p.finding_retracted_frame(rid, index=ev.index, reason=ev.reason),
                        )
                    case ReviewDone():
                        finished = True
                        self._finish(rid, _capped(ev, len(sent), left_out), started, reservation)
                        break
            if not finished and rid in self._jobs:
                raise ProviderError(ProviderErrorKind.INTERNAL, "the review ended without a result")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            err = exc if isinstance(exc, ProviderError) else None
            if err is None:
                logging.getLogger("assistant.server").exception("review failed")
                err = ProviderError(ProviderErrorKind.INTERNAL, type(exc).__name__)
            if self._jobs.pop(rid, None) is not None:
                self.outbox.emit_error(
                    rid, ERROR_CODES.get(err.kind, p.UNAVAILABLE), self._message_of(err)
                )
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(BaseException):
                    await aclose()
            # Requests cut short by a cancel were billed for what they read: booked (and the
            # writer's reservation settled by them) like any other, marked cancelled.
            take_unbooked = getattr(reviewer, "take_unbooked", None)
            for report in take_unbooked(self.id) if take_unbooked is not None else ():
                self._account(report.model, report.usage, report.tier, reservation, cancelled=True)
            self._give_back(reservation)  # what the booking did not take (failed, cancelled)

    def _finish(self, rid: int, ev: ReviewDone, started: float, reservation: Any = None) -> None:
        if self._jobs.pop(rid, None) is None:
            return
        findings = ev.findings
        if not isinstance(findings, int):
            findings = len(findings)
        usage = ev.usage
        model = ev.model or self.settings.review_model
        cost = ev.cost_usd
        tiers = ev.tiers or ()
        if tiers:  # each tier's tokens on its own model's ledger line
            for report in tiers:
                if report.status == "ok":  # the first booking settles the reservation
                    self._account(report.model, report.usage, report.tier, reservation)
        elif isinstance(usage, Usage):
            spent = self._account(model, usage, "review", reservation)
            cost = spent if cost is None else cost
        latency = ev.latency_ms or (self.loop.time() - started) * 1000
        log_event(
            "review",
            conn=self.id,
            id=rid,
            findings=findings,
            model=model,
            cost_usd=cost or 0.0,
            latency_ms=round(latency, 1),
        )
        self.outbox.emit(
            "review_done",
            rid,
            p.review_done_frame(
                rid,
                findings=findings,
                model=model,
                usage=usage,
                cost_usd=float(cost or 0.0),
                latency_ms=latency,
                tiers=[report.to_dict() for report in tiers],
                note=ev.note,
                withheld=ev.withheld,
            ),
        )


def _capped(ev: ReviewDone, sent: int, left_out: int) -> ReviewDone:
    """``ev`` telling how many findings were sent, and in its note how many were left out."""
    if not left_out:
        return ev
    note = f"{left_out} more findings not shown (at most {sent} a review)"
    return replace(ev, findings=sent, note=f"{ev.note}; {note}" if ev.note else note)


def _finding_frame(rid: int, ev: Finding) -> dict:
    return p.finding_frame(
        rid,
        index=ev.index,
        quote=ev.quote,
        problem=ev.problem,
        replacement=ev.replacement,
        severity=ev.severity,
        start=ev.start,
        end=ev.end,
        tier=ev.tier,
        confidence=ev.confidence,
        confirmed=ev.confirmed,
        category=ev.category,
    )
