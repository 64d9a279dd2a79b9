"""Review requests: cacheable layout at each model's minimum, and base + edits for re-reviews."""

from __future__ import annotations

from dataclasses import replace

from assistant.pricing import default_catalog
from assistant.review.requests import (
    TRIAGE_SCHEMA,
    TRIAGE_SYSTEM,
    DocumentBases,
    document_blocks,
    single_edit,
    tier_params,
)


def params(model, system=TRIAGE_SYSTEM, catalog=None):
    stable, changing = document_blocks("Some document.", [])
    return tier_params(
        model=model,
        max_tokens=1000,
        system=system,
        stable=stable,
        changing=changing,
        schema=TRIAGE_SCHEMA,
        catalog=catalog,
    )


def test_the_document_block_ends_the_cacheable_prefix_and_what_changes_comes_after():
    p = params("claude-haiku-5-5")
    first, second = p["messages"][0]["content"]
    assert first == {
        "type": "text",
        "text": "<document>Some document.</document>",
        "cache_control": {"type": "ephemeral"},
    }
    assert "cache_control" not in second
    assert p["output_config"]["format"]["schema"] is TRIAGE_SCHEMA
    assert "temperature" not in p  # Haiku 5.5 refuses sampling parameters


def test_the_system_prompt_gets_its_own_breakpoint_only_at_the_models_minimum():
    catalog = default_catalog()
    (system,) = params("claude-haiku-5-5")["system"]
    assert "cache_control" not in system  # ~430 tokens, under Haiku 5.5's 512
    low = replace(
        catalog,
        prices={
            **catalog.prices,
            "claude-haiku-5-5": replace(
                catalog.prices["claude-haiku-5-5"], min_cacheable_tokens=64
            ),
        },
    )
    (system,) = params("claude-haiku-5-5", catalog=low)["system"]
    assert system["cache_control"] == {"type": "ephemeral"}


def test_a_re_review_sends_the_base_and_the_edit_until_the_edits_grow_past_a_fifth():
    bases = DocumentBases()
    text = "The quick brown fox jumps over the lazy dog. " * 4
    assert bases.prepare("doc", text).edits == []
    edited = text.replace("lazy", "sleepy", 1)
    again = bases.prepare("doc", edited)
    assert again.base == text
    assert again.edits == [{"at": text.index("lazy"), "old": "laz", "new": "sleep"}]
    assert bases.prepare("other", edited).edits == []  # never across documents
    rewritten = "An entirely different text now. " * 6
    assert bases.prepare("doc", rewritten).base == rewritten  # a new base
    assert single_edit("abc", "abc") is None
