"""The provider protocol every tier implements.

A provider turns a :class:`CompletionRequest` into an async stream of :class:`TextChunk` followed
by exactly one :class:`Final` (usage, model, source). Failures raise :class:`ProviderError` with a
typed ``kind``, so callers never see SDK or transport exceptions. Cancelling the consuming task
(or closing the async generator) must close the underlying stream at once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable

from ..pricing import Usage


@dataclass(frozen=True)
class CompletionRequest:
    """Text around the cursor. ``prefix`` is everything before it, ``suffix`` everything after."""

    prefix: str
    suffix: str = ""
    max_tokens: int = 24
    document_id: str = "default"  # lets a provider keep per-document state (prefix caches)
    # The Anthropic provider puts the usage message_start reported here (``meter["usage"]``):
    # what a request cancelled before its end was billed for its input.
    meter: dict | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class TextChunk:
    text: str


@dataclass(frozen=True)
class Final:
    usage: Usage
    model: str
    source: str  # "model" (Anthropic), "offline" (local model or statistical engine)
    stop_reason: str | None = None
    provider: str = ""  # which tier answered: "anthropic", "local", "statistical"
    # A better tier was busy (or still loading) and a lesser one answered: asking again once
    # the provider reports it free (``OfflineProvider.on_free``) may give a better suggestion.
    retry_when_free: bool = False


StreamEvent = TextChunk | Final


class ProviderErrorKind(StrEnum):
    RATE_LIMITED = "rate_limited"
    OVERLOADED = "overloaded"
    AUTH = "auth"
    BAD_REQUEST = "bad_request"
    NETWORK = "network"
    TIMEOUT = "timeout"
    INTERNAL = "internal"


@dataclass
class ProviderError(Exception):
    kind: ProviderErrorKind
    message: str = ""
    retry_after: float | None = None  # seconds, when the provider said so
    status: int | None = None
    partial_text: str = field(default="", repr=False)  # what streamed before the failure
    # True when this process, not the provider, gave up (its admission gate was full): the
    # request falls back, but the provider's health is not in question.
    local: bool = False

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"

    @property
    def transient(self) -> bool:
        return self.kind in {
            ProviderErrorKind.RATE_LIMITED,
            ProviderErrorKind.OVERLOADED,
            ProviderErrorKind.NETWORK,
            ProviderErrorKind.TIMEOUT,
            ProviderErrorKind.INTERNAL,
        }


@runtime_checkable
class Provider(Protocol):
    """One tier. ``name`` is "anthropic", "local", "statistical", "tiered"; ``model`` its model id."""

    name: str
    model: str

    def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        """Yield TextChunk* then one Final; raise ProviderError on failure."""
        ...

    async def warm(self, prefix: str = "", document_id: str = "default") -> None:
        """Open connections / fill caches ahead of the first keystroke. Must not raise."""
        ...

    async def aclose(self) -> None: ...
