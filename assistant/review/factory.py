"""Which reviewer a server or command gets: the tiered Haiku-then-Sonnet reviewer when there is
an API key, the offline rules otherwise. Kept apart from the reviewers so that none of them
imports another (the SDK import is paid only when a key is set)."""

from __future__ import annotations

from ..config import Settings
from .rules import OfflineReviewer


def make_reviewer(settings: Settings):
    """The tiered Haiku-then-Sonnet reviewer when there is an API key, the rules otherwise."""
    if settings.has_key:
        from .tiered import TieredReviewer  # the SDK import is slow: only when used

        return TieredReviewer(settings)
    return OfflineReviewer(settings)
