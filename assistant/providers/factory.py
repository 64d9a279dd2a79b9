"""Which provider answers suggestions, from settings: Haiku with the offline tier behind it when a
key is set, the offline tier alone otherwise. One place, used by the server, ``assistant suggest``
and the benchmark. Always a TieredProvider, so callers see one status model either way."""

from __future__ import annotations

from collections.abc import Callable

from ..config import Settings
from .offline import make_offline_provider
from .tiered import TieredProvider, TierStatus


def make_suggest_provider(
    settings: Settings,
    *,
    offline_only: bool = False,
    on_status: Callable[[TierStatus], None] | None = None,
) -> TieredProvider:
    offline = make_offline_provider(settings)
    primary = None
    if settings.has_key and not offline_only:
        from .anthropic import AnthropicProvider  # the SDK import is slow: only when used

        primary = AnthropicProvider(settings)
    return TieredProvider(primary, offline, on_status=on_status)
