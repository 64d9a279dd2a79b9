"""Which provider answers suggestions, from settings: Haiku behind a fallback when a key is set,
the offline tier otherwise. One place, used by the server, ``assistant suggest`` and the bench."""

from __future__ import annotations

from collections.abc import Callable

from ..config import Settings
from .base import Provider


def make_suggest_provider(
    settings: Settings, *, offline_only: bool = False, on_status: Callable | None = None
) -> Provider:
    from .offline import make_offline_provider

    offline = make_offline_provider(settings)
    if offline_only or not settings.has_key:
        return offline
    from .anthropic import AnthropicProvider
    from .tiered import TieredProvider

    return TieredProvider(AnthropicProvider(settings), offline, on_status=on_status)
