"""Anthropic first, the offline tier when Anthropic cannot answer, and no hammering in between.

A transient failure of the primary (rate limit, overload, network, timeout, 5xx) opens a backoff
window: ``retry-after`` when the API gave one, else 1, 2, 4 … 60 s with a little jitter. The
request that failed is served by the fallback, so the user still gets a suggestion; during the
window every request goes straight to the fallback. The first request after the window probes the
primary (one probe at a time; the others keep using the fallback meanwhile); success closes the
window. A bad key parks the primary until restart. A bad request is our bug, so it is raised, not
hidden behind the fallback. Time comes from an injected clock, so tests advance it instead of
sleeping.

Several processes share one organisation's rate limits. :meth:`TieredProvider.adopt_window`
takes a window another process opened (the server reads them from its database), and
``probe_gate``, when given, is asked before a probe, so across a fleet one process probes.
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from .base import (
    CompletionRequest,
    Final,
    Provider,
    ProviderError,
    ProviderErrorKind,
    StreamEvent,
    TextChunk,
)

BACKOFF_BASE_S = 1.0
BACKOFF_MAX_S = 60.0
BACKOFF_JITTER = 0.1  # up to +10 %
RETRY_AFTER_MAX_S = 3600.0
PROBE_RECHECK_S = 1.0  # another process holds the fleet's probe: ask again after this long


@dataclass(frozen=True)
class TierStatus:
    """What the status bar shows: which tier answers and why."""

    state: str  # "ok" | "rate_limited" | "overloaded" | "unavailable" | "auth_failed"
    until: float | None  # clock time the backoff window ends (None: no window)
    retry_after_s: float | None  # what the API asked for, when it did
    reason: str
    active: str  # "anthropic" or the fallback's name


_STATE_OF = {
    ProviderErrorKind.RATE_LIMITED: "rate_limited",
    ProviderErrorKind.OVERLOADED: "overloaded",
    ProviderErrorKind.NETWORK: "unavailable",
    ProviderErrorKind.TIMEOUT: "unavailable",
    ProviderErrorKind.INTERNAL: "unavailable",
}


async def _close(stream: AsyncIterator[StreamEvent]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()


class TieredProvider:
    """The Provider the engine uses: routes each request to the primary or the fallback."""

    name = "tiered"

    def __init__(
        self,
        primary: Provider | None,
        fallback: Provider,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_status: Callable[[TierStatus], None] | None = None,
        rng: random.Random | None = None,
        probe_gate: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        self.probe_gate = probe_gate  # may this process probe now? (False: another one is)
        self.primary = primary
        self.fallback = fallback
        self.clock = clock
        self.on_status = on_status
        self._rng = rng or random.Random()
        self._failures = 0  # consecutive transient failures: the backoff exponent
        self._until: float | None = None
        self._adopted = False  # the window open now came from another process
        self._auth_failed = False
        self._probing = False
        # Bumped when a window opens: a request that began before it reports on an outage
        # already counted, so its failure does not lengthen the window and its success
        # (it raced the failure) does not close it. Without this, many connections'
        # concurrent requests make the status flap and the window grow per request.
        self._generation = 0
        if primary is None:
            self._status = TierStatus("ok", None, None, "no API key", fallback.name)
        else:
            self._status = TierStatus("ok", None, None, "", primary.name)

    # -- state ---------------------------------------------------------------------------------

    @property
    def model(self) -> str:
        return (self.primary or self.fallback).model

    @property
    def status(self) -> TierStatus:
        return self._status

    def _set_status(self, status: TierStatus) -> None:
        if status == self._status:
            return
        self._status = status
        if self.on_status is not None:
            try:
                self.on_status(status)
            except Exception:
                pass  # a broken listener must not break suggestions

    def backoff_delay(self, retry_after: float | None) -> float:
        """Seconds to keep off the primary after the current run of failures."""
        if retry_after is not None and retry_after > 0:
            return min(retry_after, RETRY_AFTER_MAX_S)
        base = BACKOFF_BASE_S * 2 ** max(0, self._failures - 1)
        return min(BACKOFF_MAX_S, base * (1 + BACKOFF_JITTER * self._rng.random()))

    def _open_window(self, err: ProviderError) -> None:
        self._adopted = False
        self._generation += 1
        self._failures += 1
        delay = self.backoff_delay(err.retry_after)
        self._until = self.clock() + delay
        assert self.primary is not None
        self._set_status(
            TierStatus(
                state=_STATE_OF.get(err.kind, "unavailable"),
                until=self._until,
                retry_after_s=err.retry_after,
                reason=err.message or str(err.kind),
                active=self.fallback.name,
            )
        )

    def adopt_window(
        self, until: float, state: str, reason: str, retry_after_s: float | None = None
    ) -> bool:
        """Another process saw ``state`` (rate limited, overloaded) until ``until`` (this
        provider's clock): keep off the primary as long. False when nothing changed (no
        primary, or a window at least as long is already open)."""
        if self.primary is None or self._auth_failed or until <= self.clock():
            return False
        if self._until is not None and self._until >= until:
            return False
        self._generation += 1
        self._until = until
        self._adopted = True
        self._set_status(TierStatus(state, until, retry_after_s, reason, self.fallback.name))
        return True

    def end_adopted_window(self) -> None:
        """The process that held the window says the primary answers again: the next request
        here probes (through ``probe_gate``) instead of waiting out the adopted window."""
        if self._adopted and self._until is not None:
            self._until = min(self._until, self.clock())

    def _park(self, err: ProviderError) -> None:
        self._auth_failed = True
        self._until = None
        self._set_status(
            TierStatus(
                "auth_failed",
                None,
                None,
                err.message or "authentication failed",
                self.fallback.name,
            )
        )

    def _succeeded(self) -> None:
        self._failures = 0
        self._until = None
        self._adopted = False
        assert self.primary is not None
        self._set_status(TierStatus("ok", None, None, "", self.primary.name))

    def _use_primary(self) -> bool:
        if self.primary is None or self._auth_failed:
            return False
        if self._until is None:
            return True
        if self.clock() < self._until or self._probing:
            return False
        return True

    # -- Provider ------------------------------------------------------------------------------

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        if not self._use_primary():
            async for event in self._from_fallback(request):
                yield event
            return

        assert self.primary is not None
        probe = self._until is not None
        if probe and self.probe_gate is not None:
            self._probing = True
            try:
                allowed = await self.probe_gate()
            except Exception:
                allowed = True  # the shared state is unreachable: probe as one process would
            finally:
                self._probing = False
            if not allowed:  # another process is probing: ask again in a moment
                self._until = max(self._until or 0.0, self.clock() + PROBE_RECHECK_S)
                async for event in self._from_fallback(request):
                    yield event
                return
        generation = self._generation
        if probe:
            self._probing = True
        inner = self.primary.stream(request)
        yielded_text = False
        failed = False  # a flag, not the error: a frame holding its own traceback is a cycle
        try:
            async for event in inner:
                if isinstance(event, TextChunk):
                    yielded_text = True
                elif isinstance(event, Final) and generation == self._generation:
                    self._succeeded()
                yield event
        except ProviderError as err:
            if err.kind == ProviderErrorKind.BAD_REQUEST or not (
                err.transient or err.kind == ProviderErrorKind.AUTH
            ):
                raise
            if err.kind == ProviderErrorKind.AUTH:
                self._park(err)
            elif generation == self._generation and not err.local:
                self._open_window(err)
            if yielded_text:
                raise
            failed = True
        finally:
            if probe:
                self._probing = False
            await _close(inner)

        if failed:
            async for event in self._from_fallback(request):
                yield event

    async def _from_fallback(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        inner = self.fallback.stream(request)
        try:
            async for event in inner:
                yield event
        finally:
            await _close(inner)

    async def warm(self, prefix: str = "", document_id: str = "default") -> None:
        for tier in (self.primary, self.fallback):
            if tier is None or (tier is self.primary and self._auth_failed):
                continue
            try:
                await tier.warm(prefix, document_id)
            except Exception:
                pass

    async def aclose(self) -> None:
        for tier in (self.primary, self.fallback):
            if tier is not None:
                try:
                    await tier.aclose()
                except Exception:
                    pass
