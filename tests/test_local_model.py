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
    available,
    clean_completion,
    plan_prompt,
    shared_model,
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


# --------------------------------------------------------------------------- the real model

needs_model = pytest.mark.skipif(not available(), reason="llama-cpp-python / Gemma weights missing")


@pytest.fixture(scope="module")
def provider() -> LocalModelProvider:
    if not available():
        pytest.skip("llama-cpp-python / Gemma weights missing")
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
async def test_cancellation_stops_generation_between_tokens(provider):
    model = provider.local
    gen = provider.stream(CompletionRequest("Once upon a time, in a land far away,", "", 200))
    first = await anext(gen)
    assert isinstance(first, TextChunk)
    t = time.perf_counter()
    await gen.aclose()
    # the worker notices at its next token and lets go of the model
    acquired = await asyncio.to_thread(model.lock.acquire, True, 5.0)
    released_after = time.perf_counter() - t
    assert acquired
    model.lock.release()
    assert released_after < 1.0, f"{released_after:.2f} s"


@pytest.mark.local_model
@needs_model
def test_prefix_cache_makes_an_extended_prompt_faster(provider):
    model = provider.local
    base = (
        "Minutes of the planning meeting. The team reviewed the roadmap for the next quarter, "
        "agreed on the priorities for the mobile release, and discussed hiring two engineers "
        "for the platform group. Budget questions were deferred to the finance review. "
    )

    def first_token(prompt: str) -> float:
        stats: dict = {}
        with model.lock:
            for _ in model.generate(prompt, 1, threading.Event(), stats):
                break
        return stats["first_token_s"]

    first_token("Something unrelated to evict the cache.")
    cold = first_token(base + "Next steps")
    warm = first_token(base + "Next steps were")
    assert warm < cold / 2, f"cold {cold * 1000:.0f} ms, extended {warm * 1000:.0f} ms"


@pytest.mark.local_model
@needs_model
async def test_one_request_at_a_time(provider):
    prompts = ["The quick brown fox jumps over the", "Dear Sir or Mad"]
    alone = [await collect(provider, p) for p in prompts]
    together = await asyncio.gather(*(collect(provider, p) for p in prompts))
    assert [t for t, _ in together] == [t for t, _ in alone]
    assert not provider.local.lock.locked()


@pytest.mark.local_model
@needs_model
async def test_warm_fills_the_prefix_cache(provider):
    doc = "Quarterly update for the board. Revenue grew in every region this quarter. " * 4
    await provider.warm(doc, "doc")
    _, final = await collect(provider, doc + "Costs ")
    assert final.usage.cache_read_input_tokens > final.usage.input_tokens


@pytest.mark.local_model
@needs_model
def test_a_cancelled_cold_prompt_lets_go_of_the_model_within_a_batch(provider):
    model = provider.local
    long_prompt = " ".join(f"Item {i} is ready." for i in range(150))  # ~750 tokens, uncached
    cancel = threading.Event()
    stats: dict = {}
    done = threading.Event()

    def run():
        with model.lock:
            for _ in model.generate(long_prompt, 4, cancel, stats):
                pass
        done.set()

    worker = threading.Thread(target=run)
    worker.start()
    cancel.set()
    assert done.wait(5.0)  # a whole cold prompt takes far longer on this machine
    worker.join()
    assert "first_token_s" not in stats  # stopped before generating
