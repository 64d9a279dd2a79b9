"""Completion providers: one small async protocol, several tiers (Anthropic, local model, statistical)."""

from .base import (
    CompletionRequest,
    Final,
    Provider,
    ProviderError,
    ProviderErrorKind,
    StreamEvent,
    TextChunk,
)

__all__ = [
    "CompletionRequest",
    "Final",
    "Provider",
    "ProviderError",
    "ProviderErrorKind",
    "StreamEvent",
    "TextChunk",
]
