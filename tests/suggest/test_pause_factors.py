"""The debounce as a multiple of the typist's usual gap between keys, mid-word and at a word
boundary (the bench's ``ours+bpause`` / ``ours+pause*`` variants, docs/performance.md)."""

from __future__ import annotations

from assistant.suggest.engine import Edit, EngineConfig, ManualClock, StartRequest, SuggestionEngine


def typed(**cfg) -> SuggestionEngine:
    """An engine that has seen ten keys 100 ms apart."""
    clock = ManualClock(100.0)
    engine = SuggestionEngine(EngineConfig(**cfg), clock=clock)
    for i in range(10):
        engine.handle(Edit("x" + "abcdefghij"[: i + 1], "", i + 1))
        clock.advance(0.100)
    return engine


def test_by_default_a_boundary_asks_at_once_and_mid_word_waits_one_gap():
    engine = typed()
    assert engine.debounce_ms("Dear team, ") == 0.0
    assert 90 < engine.debounce_ms("Dear te") < 150
    cmds = engine.handle(Edit("Dear team, ", "", 11))
    assert [c for c in cmds if isinstance(c, StartRequest)]


def test_pause_factors_scale_the_wait_up_to_the_cap():
    engine = typed(pause_factor=2.0, boundary_pause_factor=1.5, debounce_max_ms=400.0)
    gap = engine.debounce_ms("Dear te") / 2.0
    assert 90 < gap < 150
    assert engine.debounce_ms("Dear team, ") == 1.5 * gap
    assert typed(pause_factor=9.0, debounce_max_ms=400.0).debounce_ms("Dear te") == 400.0
