"""The local Gemma 3 270M model through llama.cpp (skipped when the `local` extra is missing)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from assistant.providers.base import CompletionRequest, Final, Provider, TextChunk
from assistant.providers.local import (
    PROMPT_CHARS,
    PROMPT_STEP,
    LocalModelProvider,
    SlotTable,
    available,
    clean_completion,
    plan_prompt,
    shared_model,
    slot_count,
    steering_grammar,
)

# ------------------------------------------------------------ prompt shaping (no model needed)


def test_prompt_backs_off_to_the_last_word_boundary():
    plan = plan_prompt("I would like to rec")
    assert (plan.prompt, plan.expected) == ("I would like to", " rec")
    plan = plan_prompt("The quick brown fox ")
    assert (plan.prompt, plan.expected) == ("The quick brown fox", " ")
    plan = plan_prompt("Hello,")
    assert (plan.prompt, plan.expected) == ("Hello,", "")


def test_prompt_left_edge_moves_only_in_big_steps():
    text = " ".join(f"w{i}" for i in range(3000))
    starts = set()
    for n in range(PROMPT_CHARS + 10, PROMPT_CHARS + PROMPT_STEP - 10, 37):
        starts.add(text.index(plan_prompt(text[:n]).prompt))
    assert len(starts) == 1  # one anchor for a whole step of typing: the cache stays valid
    assert len(plan_prompt(text).prompt) <= PROMPT_CHARS
    assert plan_prompt(text).prompt.startswith("w")  # cut at a word boundary


def test_clean_completion_keeps_only_continuations_of_the_fragment():
    assert clean_completion(" rec", " recommend it") == "ommend it"
    assert clean_completion(" rec", " thank you") is None
    assert clean_completion(" ", " lazy dog") == "lazy dog"
    assert clean_completion("", " how are you") == " how are you"


def test_steering_grammar_quotes_the_typed_text():
    assert steering_grammar(" rec") == 'root ::= " rec" .*'
    assert steering_grammar(' "q\\') == 'root ::= " \\"q\\\\" .*'


# ------------------------------------------------------------------------------ slots


def test_slot_count_follows_cores_memory_and_the_environment(monkeypatch):
    monkeypatch.delenv("ASSISTANT_LOCAL_SLOTS", raising=False)
    assert slot_count(cores=2, available_mb=20_000) == 4
    assert slot_count(cores=64, available_mb=20_000) == 8
    assert slot_count(cores=8, available_mb=600) == 2  # a quarter of 600 MB holds two slots
    assert slot_count(cores=8, available_mb=100) == 1
    monkeypatch.setenv("ASSISTANT_LOCAL_SLOTS", "3")
    assert slot_count(cores=2, available_mb=100) == 3
    monkeypatch.setenv("ASSISTANT_LOCAL_SLOTS", "many")
    with pytest.raises(ValueError, match="ASSISTANT_LOCAL_SLOTS"):
        slot_count()


def test_a_document_keeps_its_slot_and_new_ones_take_the_least_recently_used():
    table = SlotTable(2)
    a = table.acquire("a", wait=False)
    b = table.acquire("b", wait=False)
    assert {a, b} == {0, 1}
    assert table.acquire("c", wait=False) is None  # both generating: no waiting
    table.release(a)
    table.release(b)
    assert table.acquire("a", wait=False) == a  # its prefix cache is still there
    table.release(a)
    assert table.acquire("c", wait=False) == b  # b was used longest ago
    table.release(b)
    assert table.acquire("b", wait=False) == a  # b lost its slot; a's is the older now


def test_a_document_waits_for_its_own_slot_to_be_let_go():
    table = SlotTable(1)
    slot = table.acquire("a", wait=False)
    got = []
    waiter = threading.Thread(target=lambda: got.append(table.acquire("a", wait=False)))
    waiter.start()
    table.release(slot)  # its cancelled request let go
    waiter.join(5)
    assert got == [slot]


# --------------------------------------------------------------------------- the real model

needs_model = pytest.mark.skipif(
    not available(), reason="xllamacpp / Gemma weights missing (the local extra)"
)


@pytest.fixture(scope="module")
def provider() -> LocalModelProvider:
    if not available():
        pytest.skip("xllamacpp / Gemma weights missing (the local extra)")
    shared_model().load()
    return LocalModelProvider()


async def collect(provider, prefix: str, suffix: str = "", max_tokens: int = 12):
    events = [e async for e in provider.stream(CompletionRequest(prefix, suffix, max_tokens))]
    assert isinstance(events[-1], Final)
    assert all(isinstance(e, TextChunk) for e in events[:-1])
    return "".join(e.text for e in events[:-1]), events[-1]


@pytest.mark.local_model
@needs_model
async def test_completes_a_sentence(provider):
    assert isinstance(provider, Provider)
    text, final = await collect(provider, "The quick brown fox jumps over the")
    assert text.strip() and "\n" not in text
    assert text.startswith(" ")  # a new word after a complete one
    assert (final.source, final.provider, final.model) == ("offline", "local", "gemma-3-270m")


@pytest.mark.local_model
@needs_model
async def test_mid_word_prompt_continues_the_word(provider):
    text, _ = await collect(provider, "I would like to rec")
    assert text == "" or (not text[0].isspace() and "\n" not in text)
    assert text  # steering finds a word that starts with "rec"


@pytest.mark.local_model
@needs_model
async def test_stopping_on_the_token_cap_says_so(provider):
    # finalize keeps whole words only when told the cap cut the text; "end_turn" here let a
    # ghost end mid-word ("the chil")
    text, final = await collect(provider, "The quick brown fox jumps over the", max_tokens=2)
    assert text.strip()
    assert final.stop_reason == "max_tokens"
    assert final.usage.output_tokens <= 2


@pytest.mark.local_model
@needs_model
async def test_a_fragment_no_likely_word_starts_with_gives_nothing(provider):
    # the grammar could force "todya…" out of it; the model's own odds say it knows no such word
    text, final = await collect(provider, "The weather todya")
    assert (text, final.stop_reason) == ("", "rejected")


@pytest.mark.local_model
@needs_model
async def test_cancellation_stops_generation_between_tokens(provider):
    model = provider.local
    gen = provider.stream(CompletionRequest("Once upon a time, in a land far away,", "", 200))
    first = await anext(gen)
    assert isinstance(first, TextChunk)
    t = time.perf_counter()
    await gen.aclose()
    # the worker notices at its next token and gives the document's slot back
    slot = await asyncio.to_thread(model.table.acquire, "default", True)
    released_after = time.perf_counter() - t
    model.release(slot)
    assert released_after < 1.0, f"{released_after:.2f} s"


@pytest.mark.local_model
@needs_model
def test_prefix_cache_makes_an_extended_prompt_faster(provider):
    model = provider.local
    base = (
        "Minutes of the planning meeting. The team reviewed the roadmap for the next quarter, "
        "agreed on the priorities for the mobile release, and discussed hiring two engineers "
        "for the platform group. Budget questions were deferred to the finance review. "
    ) * 4  # ~250 tokens: a cold prompt costs far more than the few new ones

    def first_token(prompt: str) -> float:
        stats: dict = {}
        slot = model.table.acquire("cache-test", wait=True)
        try:
            model.complete(prompt, slot, 1, lambda _text: None, threading.Event(), stats)
        finally:
            model.release(slot)
        return stats["first_token_s"]

    first_token("Something unrelated to evict the cache.")
    cold = first_token(base + "Next steps")
    warm = first_token(base + "Next steps were")
    assert warm < cold / 2, f"cold {cold * 1000:.0f} ms, extended {warm * 1000:.0f} ms"


@pytest.mark.local_model
@needs_model
async def test_two_documents_are_served_at_once(provider):
    assert provider.local.slots >= 2
    prompts = {"fox": "The quick brown fox jumps over the", "letter": "Dear Sir or Mad"}

    async def ask(doc: str):
        request = CompletionRequest(prompts[doc], "", 12, document_id=doc)
        events = [e async for e in provider.stream(request)]
        return "".join(e.text for e in events[:-1]), events[-1]

    together = await asyncio.gather(*(ask(doc) for doc in prompts))
    for text, final in together:
        assert text.strip() and final.provider == "local"
    assert together[1][0].startswith("am")
    assert provider.local.table.in_use() == 0


@pytest.mark.local_model
@needs_model
async def test_warm_fills_the_prefix_cache(provider):
    doc = "Quarterly update for the board. Revenue grew in every region this quarter. " * 4
    await provider.warm(doc, "doc")
    request = CompletionRequest(doc + "Costs ", "", 12, document_id="doc")
    final = [e async for e in provider.stream(request)][-1]
    assert final.usage.cache_read_input_tokens > final.usage.input_tokens


@pytest.mark.local_model
@needs_model
def test_a_cancelled_cold_prompt_lets_go_of_the_model_within_a_batch(provider):
    model = provider.local

    class CancelAfterOneBatch(threading.Event):
        """Not cancelled for the check before the request, cancelled at its first chunk (the
        progress report after the first batch of the prompt)."""

        looks = 0

        def is_set(self) -> bool:
            self.looks += 1
            return self.looks > 1

    def run(prompt: str, cancel: threading.Event) -> tuple[float, dict]:
        stats: dict = {}
        slot = model.table.acquire("cold", wait=True)
        t = time.perf_counter()
        try:
            model.complete(prompt, slot, 4, lambda _text: None, cancel, stats)
        finally:
            model.release(slot)
        return time.perf_counter() - t, stats

    # ~750 tokens each, never seen before
    whole, _ = run(" ".join(f"Item {i} is ready." for i in range(150)), threading.Event())
    cancelled, stats = run(" ".join(f"Row {i} is done." for i in range(150)), CancelAfterOneBatch())
    assert "first_token_s" not in stats  # stopped before generating
    assert cancelled < whole / 2, f"cancelled after {cancelled:.2f} s, whole {whole:.2f} s"
