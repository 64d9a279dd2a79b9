"""Measure the offline tier: ``python -m assistant.bench.offline [--json PATH]``.

Prints model load time and RSS, first-token latency cold and with the prefix cache (one char,
one word appended), per-token time, how long a cancelled request keeps its slot, two documents
at once, whole-suggestion time, the statistical engine's p50/p99 per call on a 20k-char
document, and ten example completions from both engines. ``--compare-llama-cpp-python`` also
runs the same prompts through llama-cpp-python (the engine before xllamacpp) when it is
installed, in the same process run, on the same .gguf.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import statistics
import threading
import time

from ..providers.base import CompletionRequest, TextChunk
from ..providers.local import LocalModelProvider, available, shared_model
from ..providers.statistical import StatisticalProvider, lexicon

EXAMPLES = [
    ("prose", "The quick brown fox jumps over the"),
    ("prose", "It was a bright cold day in April, and the"),
    ("prose", "After years of research, the scientists finally disc"),
    ("email", "Dear Sir or Mad"),
    ("email", "Hi Sarah,\n\nThanks for your email. I would like to"),
    ("email", "Please find attach"),
    ("email", "Let me know if you have any ques"),
    ("notes", "Meeting notes:\n- discussed the budget\n- agreed to hire"),
    ("notes", "TODO: update the docum"),
    ("notes", "Action items: send the report to the"),
]

# What a document already holds before the example prompts, for the statistical engine.
CONTEXT = (
    "Hi Sarah,\n\nThanks for your email. I would like to schedule a call next week. "
    "Please find attached the quarterly report. Let me know if you have any questions. "
    "Meeting notes: discussed the budget; agreed to hire two engineers. "
    "Action items: send the report to the board. TODO: update the documentation.\n\n"
)


def rss_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def prose_document(chars: int = 20_000, seed: int = 1) -> str:
    lex = lexicon()
    order = sorted(range(len(lex.words)), key=lambda i: -lex.freqs[i])
    vocab = [lex.words[i] for i in order[:3000]]
    rng = random.Random(seed)
    parts, size = [], 0
    while size < chars:
        top = rng.choice([50, 300, 3000])
        s = " ".join(rng.choice(vocab[:top]) for _ in range(rng.randint(5, 18))).capitalize() + ". "
        if rng.random() < 0.1:
            s += "\n\n"
        parts.append(s)
        size += len(s)
    return "".join(parts)[:chars]


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))]


def measure_statistical() -> dict:
    t = time.perf_counter()
    lexicon()
    lexicon_s = time.perf_counter() - t
    engine = StatisticalProvider()
    doc = prose_document()
    cut = doc.index(" ", 15_000) + 1
    before, typed, after = doc[: cut - 1000], doc[cut - 1000 : cut], doc[cut:]
    t = time.perf_counter()
    engine.learn(before, after, "m")
    learn_s = time.perf_counter() - t
    times = []
    for i in range(len(typed) + 1):
        t = time.perf_counter()
        engine.suggest(before + typed[:i], after, "m")
        times.append(time.perf_counter() - t)
    return {
        "lexicon_load_ms": lexicon_s * 1000,
        "learn_20k_doc_ms": learn_s * 1000,
        "calls": len(times),
        "p50_ms": pct(times, 0.5) * 1000,
        "p99_ms": pct(times, 0.99) * 1000,
        "max_ms": max(times) * 1000,
    }


PROMPT60 = (
    "The committee met on Tuesday to review the budget for the coming year. After a long "
    "discussion about priorities, the members agreed to fund the new library, repair the "
    "roads near the school, and hire two more"
)
STORY = "Once upon a time, in a land far away,"
EMPTY_CACHE = "Unrelated text to empty the cache."


def first_token(model, prompt: str, max_tokens: int = 1, document_id: str = "measure") -> dict:
    stats: dict = {}
    out: list[str] = []
    slot = model.table.acquire(document_id, wait=True)
    t = time.perf_counter()
    try:
        model.complete(prompt, slot, max_tokens, out.append, threading.Event(), stats)
    finally:
        model.release(slot)
    stats["total_s"] = time.perf_counter() - t
    stats.setdefault("first_token_s", stats["total_s"])
    stats["text"] = "".join(out)
    return stats


def latency_figures(run) -> dict:
    """The same prompts through ``run(prompt, max_tokens) -> stats`` for either engine."""
    long_prompt = (CONTEXT + prose_document(4000, seed=5))[:3500]
    run(EMPTY_CACHE, 1)
    cold = run(PROMPT60, 1)
    one_char = run(PROMPT60 + " t", 1)
    one_word = run(PROMPT60 + " teachers", 1)
    run(EMPTY_CACHE, 1)
    cold_long = run(long_prompt, 1)
    long_char = run(long_prompt + " a", 1)
    long_word = run(long_prompt + " about", 1)
    gen = run(STORY, 48)
    return {
        "first_token_cold_ms": cold["first_token_s"] * 1000,
        "first_token_plus_one_char_ms": one_char["first_token_s"] * 1000,
        "first_token_plus_one_word_ms": one_word["first_token_s"] * 1000,
        "long_first_token_cold_ms": cold_long["first_token_s"] * 1000,
        "long_first_token_plus_one_char_ms": long_char["first_token_s"] * 1000,
        "long_first_token_plus_one_word_ms": long_word["first_token_s"] * 1000,
        "generate_48_tokens_ms": gen["total_s"] * 1000,
        "per_token_ms": (gen["total_s"] - gen["first_token_s"]) * 1000 / 47,
    }


def cancel_latency(model) -> float:
    """Seconds from cancelling a streaming request to its slot being free again."""
    cancel = threading.Event()
    first = threading.Event()
    slot = model.table.acquire("cancel", wait=True)

    def on_text(_text: str) -> None:
        first.set()

    def work() -> None:
        try:
            model.complete(STORY, slot, 200, on_text, cancel)
        finally:
            model.release(slot)

    worker = threading.Thread(target=work)
    worker.start()
    first.wait(30)
    t = time.perf_counter()
    cancel.set()
    model.release(model.table.acquire("cancel", wait=True))
    worker.join()
    return time.perf_counter() - t


def two_documents(model) -> dict:
    """Two documents' suggestions (24 tokens each) one after the other, then at once."""
    prompts = [
        "The committee met on Tuesday to review the budget for the coming year. After a long "
        "discussion, the members agreed",
        "It was a bright cold day in April, and the clocks were striking thirteen. Winston Smith, "
        "his chin nuzzled into his breast,",
    ]
    for i, prompt in enumerate(prompts):  # warm both slots
        first_token(model, prompt, 1, f"doc{i}")
    t = time.perf_counter()
    for i, prompt in enumerate(prompts):
        first_token(model, prompt, 24, f"doc{i}")
    one_by_one = time.perf_counter() - t
    t = time.perf_counter()
    workers = [
        threading.Thread(target=first_token, args=(model, prompt, 24, f"doc{i}"))
        for i, prompt in enumerate(prompts)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return {
        "two_docs_one_by_one_ms": one_by_one * 1000,
        "two_docs_at_once_ms": (time.perf_counter() - t) * 1000,
    }


def measure_local() -> dict:
    rss0 = rss_mb()
    model = shared_model()
    t = time.perf_counter()
    model.load()
    load_s = time.perf_counter() - t
    out: dict = {
        "slots": model.slots,
        "load_s": load_s,
        "rss_mb_before": rss0,
        "rss_mb_after_load": rss_mb(),
    }
    out.update(latency_figures(lambda prompt, n: first_token(model, prompt, n)))
    out["cancel_to_free_slot_ms"] = cancel_latency(model) * 1000
    out.update(two_documents(model))
    out["rss_mb_after_generation"] = rss_mb()
    return out


def measure_llama_cpp_python() -> dict:
    """The engine before xllamacpp, same .gguf and settings (n_ctx 2048, greedy, 2 threads)."""
    from llama_cpp import Llama

    from ..providers.local import N_CTX, N_THREADS, weights_path

    t = time.perf_counter()
    llm = Llama(
        model_path=str(weights_path()),
        n_ctx=N_CTX,
        n_threads=N_THREADS,
        n_threads_batch=N_THREADS,
        n_batch=512,
        # its source build segfaults on this machine's AVX512/AMX CPU for any batch larger
        # than one token (docs/performance.md), so cold prompts go one token at a time
        n_ubatch=int(os.environ.get("LLAMA_CPP_PYTHON_UBATCH", "1")),
        verbose=False,
    )
    out: dict = {"load_s": time.perf_counter() - t}

    def run(prompt: str, n: int) -> dict:
        stats: dict = {}
        t = time.perf_counter()
        for chunk in llm.create_completion(
            prompt,
            max_tokens=n,
            temperature=0.0,
            repeat_penalty=1.3,  # what main used
            stop=["\n"],
            stream=True,
        ):
            stats.setdefault("first_token_s", time.perf_counter() - t)
            del chunk
        stats["total_s"] = time.perf_counter() - t
        stats.setdefault("first_token_s", stats["total_s"])
        return stats

    out.update(latency_figures(run))
    return out


async def suggestion(provider, prefix: str, max_tokens: int = 16) -> tuple[str, float, str]:
    t = time.perf_counter()
    chunks, final = [], None
    async for event in provider.stream(CompletionRequest(prefix, "", max_tokens, "examples")):
        if isinstance(event, TextChunk):
            chunks.append(event.text)
        else:
            final = event
    return "".join(chunks), time.perf_counter() - t, final.stop_reason or ""


async def examples(use_local: bool) -> list[dict]:
    stat = StatisticalProvider()
    local = LocalModelProvider() if use_local else None
    rows = []
    for kind, prompt in EXAMPLES:
        row = {"kind": kind, "prompt": prompt}
        row["statistical"] = stat.suggest(CONTEXT + prompt, "", "examples")
        if local is not None:
            # as in the editor: the prompt with one char less was asked just before
            await suggestion(local, prompt[:-1])
            text, secs, _ = await suggestion(local, prompt)
            row["local"], row["local_ms"] = text, secs * 1000
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument(
        "--compare-llama-cpp-python",
        action="store_true",
        help="also measure llama-cpp-python on the same prompts (when it is installed)",
    )
    args = parser.parse_args(argv)
    result: dict = {"uptime": os.popen("uptime").read().strip()}
    result["statistical"] = measure_statistical()
    result["local_available"] = available()
    if result["local_available"]:
        result["local"] = measure_local()
    if args.compare_llama_cpp_python:
        result["llama_cpp_python"] = measure_llama_cpp_python()
    result["examples"] = asyncio.run(examples(result["local_available"]))
    if result["local_available"]:
        result["local"]["whole_suggestion_ms_median"] = statistics.median(
            r["local_ms"] for r in result["examples"]
        )
    result["uptime_after"] = os.popen("uptime").read().strip()
    print(result["uptime"])
    print(result["uptime_after"])
    for section in ("statistical", "local", "llama_cpp_python"):
        if section in result:
            print(f"[{section}]")
            for k, v in result[section].items():
                print(f"  {k:36s} {v:.1f}" if isinstance(v, float) else f"  {k:36s} {v}")
    print("[examples]")
    for r in result["examples"]:
        print(f"  {r['kind']:5s} {r['prompt']!r}")
        print(f"        statistical: {r['statistical']!r}")
        if "local" in r:
            print(f"        local:       {r['local']!r}  ({r['local_ms']:.0f} ms)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
