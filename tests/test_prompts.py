"""The suggestion prompt: tags intact, suffix present, cache marks only where they can pay off,
and document blocks that stay byte-identical while the user types (so the cache actually hits)."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from assistant.pricing import default_catalog
from assistant.providers.prompts import (
    AFTER_CLOSE,
    AFTER_OPEN,
    BEFORE_CLOSE,
    BEFORE_OPEN,
    CLEAN_START_CHARS,
    COARSE_BLOCK_CHARS,
    MAX_FINE_BLOCK_CHARS,
    MAX_SUFFIX_CHARS,
    PREFIX_WINDOW_CHARS,
    SUGGEST_SYSTEM,
    TRIM_STEP_CHARS,
    build_suggest_params,
    prefix_window_chars,
    suggest_prompt_chars_bound,
)

MODEL = "claude-haiku-4-5"


def params(prefix: str, suffix: str = "", cache_min_tokens: int = 4096) -> dict:
    return build_suggest_params(
        prefix, suffix, model=MODEL, max_tokens=24, cache_min_tokens=cache_min_tokens
    )


def user_text(p: dict) -> str:
    blocks = p["messages"][-1]["content"]
    return "".join(b["text"] for b in blocks)


def before_cursor(p: dict) -> str:
    # (to the closing tag, or to the end of the message when nothing follows the cursor)
    m = re.search(
        re.escape(BEFORE_OPEN) + r"(.*?)(?:" + re.escape(BEFORE_CLOSE) + r"|\Z)", user_text(p), re.S
    )
    assert m, "text_before_cursor tags missing"
    return m.group(1)


def prose(n_chars: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    words = "the quick brown fox jumps over a lazy dog while rain falls softly on old roofs".split()
    out: list[str] = []
    size = 0
    while size < n_chars:
        w = rng.choice(words)
        out.append(w)
        size += len(w) + 1
    return " ".join(out)[:n_chars]


def cache_blocks(p: dict) -> list[dict]:
    blocks = list(p["system"]) + list(p["messages"][-1]["content"])
    return [b for b in blocks if "cache_control" in b]


def test_system_prompt_asks_for_insertion_only():
    text = SUGGEST_SYSTEM.lower()
    for must in ("only", "cursor", "repeat", "single line", "no chatter"):
        assert must in text


def test_request_shape_is_ready_for_messages_create():
    p = params("Dear team, I wanted to", " Best, Ann")
    assert p["model"] == MODEL
    assert p["max_tokens"] == 24
    assert p["system"][0]["text"] == SUGGEST_SYSTEM
    assert p["messages"][-1]["role"] == "user"
    assert p["stop_sequences"], "needs stop sequences"
    # the API rejects whitespace-only stop sequences with a 400
    assert all(s.strip() for s in p["stop_sequences"])
    # no sampling parameters: the current models refuse them with a 400, and none is needed
    assert not {"temperature", "top_p", "top_k"} & (set(p) | set(p.get("extra_body", {})))
    assert "thinking" not in p.get("extra_body", {})  # Haiku 4.5 does not think unless asked
    assert "stream" not in p


def test_short_document_tags_and_suffix():
    p = params("Dear team, I wanted to", " Best, Ann")
    assert before_cursor(p) == "Dear team, I wanted to"
    text = user_text(p)
    # The text after the cursor goes first (it stays the same while the writer types, so it is
    # cached), and the text before the cursor runs to the end of the message.
    assert text.startswith(AFTER_OPEN + " Best, Ann" + AFTER_CLOSE)
    assert text.endswith(BEFORE_OPEN + "Dear team, I wanted to") and BEFORE_CLOSE not in text


def test_no_suffix_means_no_after_tags_and_no_closing_tag():
    # The closing tag would be uncached on every call: with nothing after the cursor the
    # message simply ends there.
    text = user_text(params("Hello"))
    assert AFTER_OPEN not in text and BEFORE_CLOSE not in text
    assert text == BEFORE_OPEN + "Hello"


def test_closing_tag_keeps_a_whitespace_tail_out_of_a_block_of_its_own():
    doc = prose(COARSE_BLOCK_CHARS)
    p = params(doc + "\n\n")
    assert before_cursor(p) == doc + "\n\n"
    assert all(b["text"].strip() for b in p["messages"][-1]["content"])


def test_empty_prefix_still_has_tags():
    p = params("", "after")
    assert before_cursor(p) == ""
    assert all(b["text"].strip() for b in p["messages"][-1]["content"])


def test_short_document_has_no_cache_mark():
    assert cache_blocks(params(prose(3_000))) == []


def test_long_document_marks_the_last_coarse_and_the_last_fine_block():
    p = params(prose(40_000) + ". And then a sentence. Then we")
    content = p["messages"][-1]["content"]
    marked = cache_blocks(p)
    assert len(marked) == 2  # the system prompt alone is under Haiku 4.5's 4,096 minimum
    assert all(m["cache_control"] == {"type": "ephemeral"} for m in marked)
    coarse = [b for b in content if len(b["text"].removeprefix(BEFORE_OPEN)) == COARSE_BLOCK_CHARS]
    assert marked == [coarse[-1], content[-2]]
    assert content[0]["text"].startswith(BEFORE_OPEN)
    assert all(BEFORE_CLOSE not in b["text"] for b in content[:-1])
    assert content[-1]["text"] == "a sentence. Then we" and "cache_control" not in content[-1]


def test_cache_mark_follows_model_minimum():
    doc = prose(10_000)  # about 2,500 tokens: enough for a 2,048 minimum, not for 4,096
    assert cache_blocks(params(doc, cache_min_tokens=2048))
    assert not cache_blocks(params(doc, cache_min_tokens=4096))


def test_blocks_stay_identical_as_the_writer_types_and_only_the_sentence_is_live():
    doc = prose(30_000).replace(" dog ", " dog. ")  # sentences of a few dozen characters
    start = 10 * COARSE_BLOCK_CHARS + 100
    previous: list[str] | None = None
    for n in range(start, start + 1_500):
        p = params(doc[:n])
        assert before_cursor(p) == doc[:n]
        blocks = [b["text"] for b in p["messages"][-1]["content"][:-1]]
        if previous is not None and n // COARSE_BLOCK_CHARS == (n - 1) // COARSE_BLOCK_CHARS:
            assert blocks[: len(previous)] == previous  # typing only ever appends blocks
            assert len(blocks) - len(previous) <= 1
        live = p["messages"][-1]["content"][-1]["text"]
        assert len(live) < MAX_FINE_BLOCK_CHARS
        previous = blocks


def test_only_the_first_block_depends_on_the_suffix():
    doc = prose(30_000)
    a = params(doc, "one ending")
    b = params(doc, "a completely different ending")
    assert a["messages"][-1]["content"][1:] == b["messages"][-1]["content"][1:]
    assert a["messages"][-1]["content"][0]["text"] == AFTER_OPEN + "one ending" + AFTER_CLOSE + "\n"
    assert a["system"] == b["system"]


@pytest.mark.parametrize(("model", "cache_min"), [("claude-haiku-5-5", 512), (MODEL, 4096)])
def test_very_long_document_trimmed_from_left_in_stable_steps(model, cache_min):
    entry = default_catalog().price(model)
    window = prefix_window_chars(cache_min, entry.rules.tokenizer_factor)
    assert window == (PREFIX_WINDOW_CHARS if cache_min == 512 else 24_576)
    size = window + 80 * TRIM_STEP_CHARS + 1  # just past a step: 2,047 chars to the next
    doc = prose(size + 100)[:size]

    def kept(text: str) -> str:
        return before_cursor(
            build_suggest_params(
                text, "", model=model, max_tokens=24, cache_min_tokens=cache_min, rules=entry.rules
            )
        )

    first = kept(doc)
    assert doc.endswith(first)
    assert window - TRIM_STEP_CHARS - CLEAN_START_CHARS < len(first) <= window
    assert doc[: -len(first)].endswith(" ")  # it starts at a word, not inside one
    # typing on does not move the start until a whole step more has been typed
    for k in range(0, TRIM_STEP_CHARS - 1, 7):
        assert kept(doc + "x" * k).startswith(first)
    assert not kept(doc + "x" * TRIM_STEP_CHARS).startswith(first)


def test_a_trimmed_document_starts_at_a_paragraph_near_the_cut():
    paragraph = prose(700) + ".\n\n"
    doc = paragraph * 40  # 28 KB
    first = before_cursor(params(doc, cache_min_tokens=512))
    assert doc.endswith(first) and first.startswith(paragraph)
    assert len(first) <= PREFIX_WINDOW_CHARS


def test_long_suffix_trimmed_from_right():
    suffix = "z" * (MAX_SUFFIX_CHARS * 3)
    text = user_text(params("abc", suffix))
    assert AFTER_OPEN + "z" * MAX_SUFFIX_CHARS + AFTER_CLOSE in text


@given(st.text(max_size=9_000), st.text(max_size=300))
def test_any_text_round_trips_inside_the_tags(prefix, suffix):
    p = params(prefix, suffix, cache_min_tokens=512)
    text = user_text(p)
    assert text.count(BEFORE_OPEN) >= 1
    if BEFORE_CLOSE not in prefix:
        assert before_cursor(p) == prefix
    for block in p["messages"][-1]["content"]:
        assert block["text"].strip()  # the API rejects empty / whitespace-only text blocks


def haiku_5_5_params(prefix: str) -> dict:
    entry = default_catalog().price("claude-haiku-5-5")
    return build_suggest_params(
        prefix,
        "",
        model="claude-haiku-5-5",
        max_tokens=24,
        cache_min_tokens=entry.min_cacheable_tokens,
        rules=entry.rules,
    )


def test_haiku_5_5_request_turns_thinking_off_and_counts_its_tokenizer():
    p = haiku_5_5_params("Dear team, I wanted to")
    assert p["extra_body"] == {"thinking": {"type": "disabled"}}
    assert "temperature" not in p and "temperature" not in p["extra_body"]
    assert p["max_tokens"] == 32  # 24 Haiku 4.5 tokens hold the same text as 32 on Haiku 5.5


def test_ordinary_document_is_cacheable_on_haiku_5_5_but_not_on_haiku_4_5():
    doc = prose(3_000)  # a 3 KB document: head of 2,048 characters plus the system prompt
    assert cache_blocks(haiku_5_5_params(doc))
    assert not cache_blocks(params(doc, cache_min_tokens=4096))


@pytest.mark.parametrize(
    "prefix_chars,suffix_chars", [(0, 0), (1, 0), (700, 30), (3_000, 2_500), (70_000, 5_000)]
)
def test_the_reservation_bound_covers_every_character_a_suggestion_sends(
    prefix_chars, suffix_chars
):
    """The budget reserves for ``suggest_prompt_chars_bound`` characters without building the
    request: it must never be fewer than the request really carries."""
    sentence = "The quarterly report shows growth. "
    prefix = (sentence * (prefix_chars // len(sentence) + 1))[:prefix_chars]
    suffix = ("And more text follows here.\n" * (suffix_chars // 28 + 1))[:suffix_chars]
    params = build_suggest_params(
        prefix, suffix, model="claude-haiku-5-5", max_tokens=16, cache_min_tokens=512
    )
    sent = sum(len(b["text"]) for b in params["system"])
    sent += sum(len(b["text"]) for b in params["messages"][0]["content"])
    bound = suggest_prompt_chars_bound(len(prefix), len(suffix), PREFIX_WINDOW_CHARS)
    assert sent <= bound
    if prefix_chars <= PREFIX_WINDOW_CHARS:  # (a longer document is trimmed in 2 KB steps)
        assert bound <= sent + 64
