"""The provider park shared through the ledger's database: a 429 or 529 that one process sees
keeps every process on the same database off the model until the window ends, and then one of
them probes, not each.

Anthropic's rate limits are per organisation and pooled per model family, so a window opened by
one worker applies to all of them. Each process publishes the windows its own provider opens
(``provider_park``: the family, the end as Unix time, the state and reason) and reads the
table every ``POLL_S``, adopting a longer window than its own. When a window ends, a process
about to probe first claims the probe in the database (the claim holds ``PROBE_LEASE_S``); the
others keep answering offline until the winner's probe clears the park or opens a new window.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from assistant.pricing import default_catalog
from assistant.providers.tiered import TieredProvider, TierStatus

# How often each process reads the shared park: a window another process opened reaches this
# one within this long (four small SELECTs a second per process).
POLL_S = 0.25
# A probe's claim: the longest a probing request may take (the suggestion timeout is 2.5 s).
PROBE_LEASE_S = 5.0
PARKED_STATES = ("rate_limited", "overloaded")
LOG = logging.getLogger("assistant.server")


def park_path(model: str) -> str:
    """The key a model's window is shared under: its family (limits are pooled per family)."""
    try:
        return default_catalog().price(model).family
    except KeyError:
        return model


class SharedPark:
    """Publishes ``provider``'s windows to the ledger and adopts the other processes' ones."""

    def __init__(self, ledger: Any, provider: TieredProvider, spawn: Any) -> None:
        self.ledger = ledger
        self.provider = provider
        self.path = park_path(provider.model)
        self._spawn = spawn
        self._task: asyncio.Task | None = None
        self._published = 0.0
        provider.probe_gate = self.claim_probe

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._poll())

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def on_status(self, status: TierStatus) -> None:
        """This process's provider changed state: share a window it opened, or its recovery."""
        if status.state in PARKED_STATES and status.until is not None:
            until = time.time() + (status.until - time.monotonic())
            if until > self._published + 0.001:
                self._published = until
                reason = f"{status.state}|{status.reason}"
                self._spawn(self._quietly(self.ledger.call("park", self.path, until, reason)))
        elif status.state == "ok":
            self._published = 0.0
            now = time.time()
            self._spawn(self._quietly(self.ledger.call("unpark", self.path, now, PROBE_LEASE_S)))

    async def claim_probe(self) -> bool:
        return bool(await self.ledger.call("claim_probe", self.path, time.time(), PROBE_LEASE_S))

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(POLL_S)  # a period, not a synchronisation
            try:
                until, reason = await self.ledger.call("parked", self.path)
            except Exception:
                LOG.warning("reading the shared provider park failed", exc_info=True)
                continue
            now = time.time()
            if until > now:
                state, _, why = reason.partition("|")
                if state not in PARKED_STATES:
                    state, why = "rate_limited", why or reason
                self._published = max(self._published, until)
                self.provider.adopt_window(time.monotonic() + (until - now), state, why)
            else:
                self.provider.end_adopted_window()

    @staticmethod
    async def _quietly(coro: Any) -> None:
        with contextlib.suppress(Exception):
            await coro
