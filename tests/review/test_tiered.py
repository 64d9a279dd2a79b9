"""The tiered review through the real SDK against the emulator: routing, caching, degradation,
and the issue's done-when on the labelled corpus."""

from __future__ import annotations

import json

import pytest

from assistant.bench.reviews import load_corpus, run_bench, verdict
from assistant.config import Settings
from assistant.emulator import Emulator, EmulatorConfig, Fault
from assistant.providers.base import ProviderError, ProviderErrorKind
from assistant.review.findings import REASONING_CLASSES, Finding, FindingRetracted, ReviewDone
from assistant.review.tiered import TieredReviewer

CORPUS = load_corpus()
HAIKU, SONNET = "claude-haiku-5-5", "claude-sonnet-5-5"


def settings_for(emu, **changes) -> Settings:
    return Settings(api_key="test", base_url=emu.base_url, **changes)


async def review(reviewer, text, **kwargs):
    shown: dict[int, Finding] = {}
    done = None
    async for ev in reviewer.review(text, **kwargs):
        if isinstance(ev, Finding):
            shown[ev.index] = ev
        elif isinstance(ev, FindingRetracted):
            shown.pop(ev.index)
        elif isinstance(ev, ReviewDone):
            done = ev
    return list(shown.values()), done


def review_calls(emu, model):
    return [r for r in emu.requests if r.path == "/v1/messages" and r.model == model]


def labelled(emu_config_seed: int = 0) -> EmulatorConfig:
    return EmulatorConfig(review_labels=CORPUS.labels, seed=emu_config_seed)


async def test_haiku_reads_everything_and_sonnet_only_the_flagged_passages():
    text = CORPUS.documents["email-budget.txt"]
    async with Emulator(labelled()) as emu:
        reviewer = TieredReviewer(settings_for(emu))
        try:
            findings, done = await review(reviewer, text)
        finally:
            await reviewer.aclose()
    (haiku,) = review_calls(emu, HAIKU)
    (sonnet,) = review_calls(emu, SONNET)
    assert haiku.body["messages"][0]["content"][0]["text"] == f"<document>{text}</document>"
    sent = "".join(b["text"] for b in sonnet.body["messages"][0]["content"])
    assert "<passage>" in sent and len(sent) < len(text)
    assert "I is free" not in sent  # a paragraph with no reasoning problem stays with Haiku
    assert [t.tier for t in done.tiers] == ["haiku", "sonnet"]
    assert done.cost_usd == pytest.approx(sum(t.cost_usd for t in done.tiers))
    by_quote = {f.quote: f for f in findings}
    assert by_quote["definately"].tier == "haiku" and not by_quote["definately"].confirmed
    numbers = by_quote["contractors at $84,000"]
    assert numbers.category == "numbers" and numbers.confirmed


async def test_no_unconfirmed_reasoning_finding_from_haiku_reaches_the_writer_on_the_corpus():
    """Haiku's modelled confident wrong answers (numbers or facts it is >= 0.9 sure of, that no
    label backs) are planted by the emulator; none of them is ever shown."""
    planted = 0
    async with Emulator(labelled()) as emu:
        reviewer = TieredReviewer(settings_for(emu))
        try:
            for name, text in CORPUS.documents.items():
                emu.reset()
                findings, _ = await review(reviewer, text, document=name)
                (haiku,) = review_calls(emu, HAIKU)
                raw = json.loads(haiku.text_sent)["findings"]
                quotes = [label["quote"] for label in CORPUS.labels_of(name)]
                wrong = [
                    f
                    for f in raw
                    if f["category"] in REASONING_CLASSES
                    and f["confidence"] >= 0.9
                    and not any(q in f["quote"] or f["quote"] in q for q in quotes)
                ]
                planted += len(wrong)
                shown = {(f.quote, f.replacement) for f in findings}
                assert not any((w["quote"], w["replacement"]) in shown for w in wrong), name
                for f in findings:
                    assert text[f.start : f.end] == f.quote and f.replacement != f.quote
                    if f.category in REASONING_CLASSES:
                        assert f.confirmed, (name, f)
        finally:
            await reviewer.aclose()
    assert planted >= 3  # the model did plant some


async def test_a_planted_confident_wrong_finding_is_withheld_when_sonnet_is_down():
    text = "Paris is the capital of France. We met on Monday."
    wrong = {
        "quote": "Paris is the capital of France",
        "problem": "Wrong capital.",
        "replacement": "Lyon is the capital of France",
        "severity": "high",
        "category": "fact",
        "confidence": 0.99,
    }
    canned = json.dumps({"findings": [wrong], "flags": []})
    async with Emulator(EmulatorConfig(canned_text=canned)) as emu:
        emu.inject(Fault("overloaded"), count=5, match_model=SONNET)
        reviewer = TieredReviewer(settings_for(emu))
        try:
            findings, done = await review(reviewer, text)
        finally:
            await reviewer.aclose()
    assert findings == []
    assert done.withheld == 1
    assert "Sonnet failed (overloaded)" in done.note
    assert [(t.tier, t.status) for t in done.tiers] == [("haiku", "ok"), ("sonnet", "failed")]


async def test_haiku_rate_limited_degrades_to_sonnet_alone():
    text = CORPUS.documents["notes-trip.md"]
    async with Emulator(labelled()) as emu:
        emu.inject(Fault("rate_limit", retry_after=0), count=5, match_model=HAIKU)
        reviewer = TieredReviewer(settings_for(emu))
        try:
            findings, done = await review(reviewer, text)
        finally:
            await reviewer.aclose()
    assert [(t.tier, t.status) for t in done.tiers] == [("haiku", "failed"), ("sonnet", "ok")]
    assert "Haiku failed (rate_limited)" in done.note
    assert findings and all(f.tier == "sonnet" and f.confirmed for f in findings)
    sonnet = review_calls(emu, SONNET)[-1]
    # Sonnet reviewed the whole document
    assert sonnet.body["messages"][0]["content"][0]["text"] == f"<document>{text}</document>"


async def test_a_haiku_timeout_degrades_and_both_down_falls_back_to_the_rules():
    text = "We recieve teh letter today. The plan was agreed."
    async with Emulator(EmulatorConfig(profile="instant")) as emu:
        emu.inject(Fault("hang"), count=5, match_model=HAIKU)
        emu.inject(Fault("overloaded"), count=5, match_model=SONNET)
        reviewer = TieredReviewer(settings_for(emu, review_timeout_s=0.5))
        try:
            findings, done = await review(reviewer, text)
        finally:
            await reviewer.aclose()
    assert "Haiku failed (timeout)" in done.note and "Offline rules only" in done.note
    assert {f.quote for f in findings} >= {"recieve", "teh"}
    assert all(f.tier == "offline" for f in findings)


async def test_a_refused_key_is_an_error_not_a_degraded_review():
    async with Emulator(EmulatorConfig(api_key="right")) as emu:
        reviewer = TieredReviewer(Settings(api_key="wrong", base_url=emu.base_url))
        try:
            with pytest.raises(ProviderError) as info:
                await review(reviewer, "Some text to review.")
        finally:
            await reviewer.aclose()
    assert info.value.kind == ProviderErrorKind.AUTH


async def test_re_review_after_a_one_word_edit_reads_most_input_from_cache():
    name = "report-pilot.md"
    text = CORPUS.documents[name]
    async with Emulator(labelled()) as emu:
        reviewer = TieredReviewer(settings_for(emu))
        try:
            first, before = await review(reviewer, text, document=name)
            sonnet_calls = len(review_calls(emu, SONNET))
            edited = text.replace("fell by a quarter", "fell by a third")  # outside every passage
            again, after = await review(reviewer, edited, document=name)
        finally:
            await reviewer.aclose()
    u = after.usage
    total = u.input_tokens + u.cache_creation_input_tokens + u.cache_read_input_tokens
    assert u.cache_read_input_tokens >= 0.8 * total, u
    # Haiku got the base text (cached) and the edit, and reviewed the edited text.
    haiku = review_calls(emu, HAIKU)[-1]
    blocks = haiku.body["messages"][0]["content"]
    assert blocks[0]["text"] == f"<document>{text}</document>" and "cache_control" in blocks[0]
    assert json.loads(blocks[1]["text"].removeprefix("<edits>").removesuffix("</edits>")) == [
        {"at": text.index("quarter"), "old": "quarter", "new": "third"}
    ]
    for f in again:
        assert edited[f.start : f.end] == f.quote
    # The passages Sonnet checked did not change: its answers were replayed, not paid for again.
    assert [t.status for t in after.tiers] == ["ok", "reused"]
    assert len(review_calls(emu, SONNET)) == sonnet_calls
    assert {(f.quote, f.replacement) for f in again} == {(f.quote, f.replacement) for f in first}


async def test_documents_never_share_a_base():
    async with Emulator(EmulatorConfig()) as emu:
        reviewer = TieredReviewer(settings_for(emu))
        try:
            await review(reviewer, "Alice's private draft about the merger.", document="a")
            await review(reviewer, "Alice's private draft about the merger!", document="b")
        finally:
            await reviewer.aclose()
    second = review_calls(emu, HAIKU)[-1]
    assert second.body["messages"][0]["content"][1]["text"] == "Review the document above."


async def test_forgetting_a_document_drops_its_base_and_only_its_own_remembered_answers():
    name = "report-pilot.md"
    text = CORPUS.documents[name]
    async with Emulator(labelled()) as emu:
        reviewer = TieredReviewer(settings_for(emu))
        try:
            await review(reviewer, text, document="a")
            remembered = dict(reviewer._windows)
            assert remembered and len(reviewer.bases) == 1
            await review(reviewer, "A note of another writer's, with no flags in it.", document="b")
            reviewer.forget("b")  # b's review used no remembered answer: a's stay
            assert reviewer._windows == remembered and len(reviewer.bases) == 1
            await review(reviewer, text, document="c")  # replays a's answers
            reviewer.forget("a")  # c still uses them
            assert reviewer._windows == remembered and len(reviewer.bases) == 1
            reviewer.forget("c")
            assert not reviewer._windows and len(reviewer.bases) == 0
            sonnet_calls = len(review_calls(emu, SONNET))
            await review(reviewer, text, document="a")
        finally:
            await reviewer.aclose()
    # Nothing was kept: the whole text went again, and Sonnet was asked again.
    haiku = review_calls(emu, HAIKU)[-1]
    assert haiku.body["messages"][0]["content"][1]["text"] == "Review the document above."
    assert len(review_calls(emu, SONNET)) == sonnet_calls + 1


async def test_the_done_when_on_the_corpus():
    """Tiered costs >= 50 % less than Sonnet alone, recall per class within 5 points, precision no
    lower, and a re-review after a one-word edit reads >= 80 % of its input from cache. (Under
    the emulator's modelled reviewing: see docs/performance.md.)"""
    report = await run_bench(CORPUS, Settings())
    failed = [text for text, ok in verdict(report) if not ok]
    assert failed == []
