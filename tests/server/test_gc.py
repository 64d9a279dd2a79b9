"""The server's garbage-collector settings (server/app.py): what was alive at start is frozen, and
young collections run every ``GC_YOUNG_THRESHOLD`` allocations rather than CPython's 700 (ping p99
at 1,000 typists 155-196 -> 78-102 ms, docs/reliability.md)."""

import asyncio
import gc

from server.app import GC_YOUNG_THRESHOLD, _before_serving


def test_serving_freezes_what_is_loaded_and_collects_the_young_generation_less_often():
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)  # CPython's defaults (an in-process app may have set others)
    try:
        asyncio.run(_before_serving(None))
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, 10, 10)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
