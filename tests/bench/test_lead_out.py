"""``assistant bench --lead-out``: typing in the middle of a document, with text after the cursor,
end to end (the bench's server, the real SDK, the emulator's billing)."""

from __future__ import annotations

from assistant.bench.suggestions import (
    BenchPlan,
    lead_out_text,
    pick_traces,
    run_strategy,
)
from assistant.bench.traces import load_passages


def test_the_text_after_the_cursor_starts_a_new_paragraph_and_is_not_the_typed_text():
    passages = tuple(load_passages().values())
    typed = load_passages()["email"]
    afters = [lead_out_text(2_000, passages, w, typed=typed) for w in range(50)]
    assert all(a.startswith("\n\n") and a[2:3].strip() for a in afters)
    after = afters[0]
    assert after.startswith("\n\n") and after[2:3].strip()
    assert 1_900 <= len(after) <= 2_010
    assert typed.strip()[:60] not in after
    assert lead_out_text(0, passages) == ""


async def test_typing_in_the_middle_reads_the_text_after_the_cursor_from_the_cache():
    """The text after the cursor does not change while the writer types, so the prompt sends it
    before the text before the cursor, where it is cached: each call pays full price only for
    the last few words (it went out uncached after them before: ~500 tokens a call here)."""
    plan = BenchPlan.quick(0, window_s=6.0, lead_in_chars=1_000, lead_out_chars=2_000)
    traces = pick_traces(plan, "noisy")[:1]
    out = await run_strategy("ours", traces, plan, "noisy")
    calls, billed = out["model_calls"], out["billed_tokens"]
    assert calls >= 3
    assert billed["input"] / calls < 20
    # every call reads the text after the cursor (2,000 chars, ~650 tokens) with the rest
    assert billed["cache_read"] / calls > 1_000
