"""The tiered review's router, without I/O: what the writer is shown from each tier's answers."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from assistant.review.findings import REASONING_CLASSES, Finding, FindingRetracted
from assistant.review.router import ReviewRouter, merge_windows, sentence_window

TEXT = (
    "The team asked for $48,000 for contractors. We could definately trim travel.\n\n"
    "The summary table says contractors at $84,000. Paris is the capital of France.\n"
)


def raw(quote, replacement, category, confidence, problem="p"):
    return {
        "quote": quote,
        "problem": problem,
        "replacement": replacement,
        "severity": "high",
        "category": category,
        "confidence": confidence,
    }


def shown(events):
    return [e for e in events if isinstance(e, Finding)]


def test_a_sure_surface_finding_is_shown_at_once_and_marked_unconfirmed():
    router = ReviewRouter(TEXT)
    (f,) = shown(router.from_haiku(raw("definately", "definitely", "spelling", 0.95)))
    assert (f.tier, f.confirmed, f.category, f.confidence) == ("haiku", False, "spelling", 0.95)
    assert TEXT[f.start : f.end] == "definately"
    assert router.plan() is None  # nothing for Sonnet


def test_a_planted_confident_wrong_reasoning_finding_is_never_shown_unless_sonnet_confirms():
    # Haiku is sure, and wrong: Paris is the capital of France.
    wrong = raw("Paris is the capital of France", "Lyon is the capital of France", "fact", 0.99)
    router = ReviewRouter(TEXT)
    assert router.from_haiku(wrong) == []
    plan = router.plan()
    assert plan is not None and plan.items[0]["quote"] == wrong["quote"]
    assert "Paris is the capital of France." in plan.passages[0]
    assert router.verdict({"id": 0, "verdict": "drop"}) == []
    assert router.sonnet_done() == [] and router.shown == []
    # Sonnet that never gives a verdict (or fails) does not let it through either.
    for end in ("done", "failed"):
        router = ReviewRouter(TEXT)
        router.from_haiku(wrong)
        router.plan()
        events = router.sonnet_done() if end == "done" else router.sonnet_failed("overloaded")
        assert events == [] and router.shown == [] and router.withheld == 1
    assert "Sonnet failed (overloaded)" in router.note


def test_a_confirmed_reasoning_finding_is_shown_as_haiku_confirmed():
    router = ReviewRouter(TEXT)
    router.from_haiku(raw("contractors at $84,000", "contractors at $48,000", "numbers", 0.7))
    router.flag({"quote": "contractors at $84,000", "reason": "numbers", "related": ["$48,000"]})
    plan = router.plan()
    assert any("$48,000 for contractors" in p for p in plan.passages)  # the related figure
    (f,) = shown(router.verdict({"id": 0, "verdict": "confirm"}))
    assert (f.tier, f.confirmed) == ("haiku", True)


def test_sonnet_corrects_a_finding():
    router = ReviewRouter(TEXT)
    router.from_haiku(raw("$84,000", "$80,000", "numbers", 0.9))
    router.plan()
    (f,) = shown(
        router.verdict(
            {
                "id": 0,
                "verdict": "correct",
                "quote": "contractors at $84,000",
                "replacement": "contractors at $48,000",
            }
        )
    )
    assert (f.tier, f.confirmed, f.replacement) == ("sonnet", True, "contractors at $48,000")
    assert TEXT[f.start : f.end] == f.quote


def test_an_unsure_surface_finding_waits_for_sonnet():
    router = ReviewRouter(TEXT)
    assert router.from_haiku(raw("definately", "definitely", "spelling", 0.6)) == []
    router.plan()
    (f,) = shown(router.verdict({"id": 0, "verdict": "confirm"}))
    assert f.confirmed


def test_guards_drop_quotes_not_in_the_text_and_replacements_that_change_nothing():
    router = ReviewRouter(TEXT)
    assert router.from_haiku(raw("definatly", "definitely", "spelling", 0.99)) == []
    assert router.from_haiku(raw("definately", "definately", "spelling", 0.99)) == []
    assert router.from_sonnet(raw("Paris", "Paris", "fact", 0.99)) == []
    assert router.shown == []


def test_sonnet_wins_a_contradiction_on_the_same_span():
    router = ReviewRouter(TEXT)
    (haiku,) = shown(router.from_haiku(raw("trim travel", "trims travel", "grammar", 0.9)))
    events = router.from_sonnet(
        raw("definately trim travel", "definitely trim travel", "spelling", 0.9)
    )
    assert events[0] == FindingRetracted(haiku.index, "contradicted by Sonnet")
    assert [f.quote for f in router.shown] == ["definately trim travel"]
    # The same finding from both tiers is shown once.
    router = ReviewRouter(TEXT)
    router.from_haiku(raw("definately", "definitely", "spelling", 0.9))
    assert router.from_sonnet(raw("definately", "definitely", "spelling", 0.9)) == []


def test_haiku_alone_withholds_reasoning_with_a_note():
    router = ReviewRouter(TEXT, mode="haiku")
    assert router.from_haiku(raw("$84,000", "$48,000", "numbers", 0.99)) == []
    assert shown(router.from_haiku(raw("definately", "definitely", "spelling", 0.5)))
    assert router.withheld == 1 and "--tier auto" in router.note


def test_windows_are_whole_sentences_within_a_paragraph():
    start = TEXT.index("$84,000")
    lo, hi = sentence_window(TEXT, start, start + 7, around=0)
    assert TEXT[lo:hi] == "The summary table says contractors at $84,000."
    lo, hi = sentence_window(TEXT, start, start + 7)
    assert TEXT[lo:hi].startswith("The summary") and "France." in TEXT[lo:hi]
    assert "\n\n" not in TEXT[lo:hi]
    assert merge_windows([(5, 9), (0, 3), (8, 12)]) == [(0, 3), (5, 12)]


categories = st.sampled_from(["spelling", "grammar", "doubled_word", "numbers", "fact", "argument"])
quotes = st.sampled_from(
    ["definately", "$84,000", "$48,000", "Paris is the capital", "trim travel", "The team"]
)


@settings(max_examples=200, deadline=None)
@given(
    haiku=st.lists(st.tuples(quotes, categories, st.floats(0, 1), st.booleans()), max_size=8),
    verdicts=st.lists(
        st.tuples(st.integers(0, 8), st.sampled_from(["confirm", "correct", "drop", "bogus"])),
        max_size=10,
    ),
    sonnet_fails=st.booleans(),
)
def test_no_unconfirmed_reasoning_finding_is_ever_shown(haiku, verdicts, sonnet_fails):
    router = ReviewRouter(TEXT)
    seen: dict[int, Finding] = {}

    def take(events):
        for e in events:
            if isinstance(e, Finding):
                seen[e.index] = e
            else:
                seen.pop(e.index)

    for quote, category, confidence, as_flag in haiku:
        if as_flag:
            router.flag({"quote": quote, "reason": "check"})
        take(router.from_haiku(raw(quote, quote + "!", category, confidence)))
    plan = router.plan()
    if plan is not None:
        for i, verdict in verdicts:
            take(router.verdict({"id": i, "verdict": verdict, "replacement": "x"}))
        take(router.sonnet_failed("overloaded") if sonnet_fails else router.sonnet_done())
    for f in seen.values():
        assert TEXT[f.start : f.end] == f.quote and f.replacement != f.quote
        if f.category in REASONING_CLASSES:
            assert f.confirmed
