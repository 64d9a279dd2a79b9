"""Measure the offline tier: ``python -m assistant.providers.measure_offline [--json PATH]``.

Prints model load time and RSS, first-token latency cold and with the prefix cache (one char,
one word appended), per-token time, whole-suggestion time, the statistical engine's p50/p99
per call on a 20k-char document, and ten example completions from both engines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import statistics
import threading
import time

from .base import CompletionRequest, TextChunk
from .local import LocalModelProvider, available, shared_model
from .statistical import StatisticalProvider, lexicon

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


def first_token(model, prompt: str, max_tokens: int = 1) -> dict:
    stats: dict = {}
    t = time.perf_counter()
    with model.lock:
        text = "".join(model.generate(prompt, max_tokens, threading.Event(), stats))
    stats["total_s"] = time.perf_counter() - t
    stats["text"] = text
    return stats


def measure_local() -> dict:
    rss0 = rss_mb()
    model = shared_model()
    t = time.perf_counter()
    model.load()
    load_s = time.perf_counter() - t
    out: dict = {"load_s": load_s, "rss_mb_before": rss0, "rss_mb_after_load": rss_mb()}
    prompt60 = (
        "The committee met on Tuesday to review the budget for the coming year. After a long "
        "discussion about priorities, the members agreed to fund the new library, repair the "
        "roads near the school, and hire two more"
    )
    first_token(model, "Unrelated text to empty the cache.")
    cold = first_token(model, prompt60)
    one_char = first_token(model, prompt60 + " t")
    one_word = first_token(model, prompt60 + " teachers")
    long_prompt = (CONTEXT + prose_document(4000, seed=5))[:3500]
    first_token(model, "Unrelated text to empty the cache.")
    cold_long = first_token(model, long_prompt)
    long_char = first_token(model, long_prompt + " a")
    gen = first_token(model, "Once upon a time, in a land far away,", 32)
    per_token = (gen["total_s"] - gen["first_token_s"]) / max(1, gen["output_tokens"] - 1)
    out.update(
        {
            "prompt_tokens": cold["prompt_tokens"],
            "first_token_cold_ms": cold["first_token_s"] * 1000,
            "first_token_plus_one_char_ms": one_char["first_token_s"] * 1000,
            "first_token_plus_one_word_ms": one_word["first_token_s"] * 1000,
            "long_prompt_tokens": cold_long["prompt_tokens"],
            "long_first_token_cold_ms": cold_long["first_token_s"] * 1000,
            "long_first_token_plus_one_char_ms": long_char["first_token_s"] * 1000,
            "per_token_ms": per_token * 1000,
            "rss_mb_after_generation": rss_mb(),
        }
    )
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
    args = parser.parse_args(argv)
    result: dict = {"statistical": measure_statistical(), "local_available": available()}
    if result["local_available"]:
        result["local"] = measure_local()
    result["examples"] = asyncio.run(examples(result["local_available"]))
    if result["local_available"]:
        result["local"]["whole_suggestion_ms_median"] = statistics.median(
            r["local_ms"] for r in result["examples"]
        )
    for section in ("statistical", "local"):
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
