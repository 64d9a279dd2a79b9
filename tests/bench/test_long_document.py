"""The bench on a document longer than the prompt's window, end to end (the bench's server, the
real SDK, the emulator's billing)."""

from __future__ import annotations

from assistant.bench.suggestions import BenchPlan, pick_traces, run_strategy


async def test_on_a_long_document_every_call_is_matched_to_its_fate():
    """The prompt carries only a window of a long document; the report still finds each call's
    engine request (by the end of the text), so fates and the opening write are counted."""
    plan = BenchPlan.quick(0, window_s=6.0, lead_in_chars=20_000)
    traces = pick_traces(plan, "noisy")[:1]
    out = await run_strategy("ours", traces, plan, "noisy")
    assert out["model_calls"] >= 3
    assert sum(f["calls"] for f in out["call_fates"].values()) == out["model_calls"]
    assert out["opening_write_usd"] > 0
