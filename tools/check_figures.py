"""Figures of the checks as you type (docs/performance.md, *Corrections as you type*).

1. Precision and recall per class on tests/data/review_corpus, sentence by sentence as the
   writer would finish them: the offline rules, and Haiku 5.5 through the emulator (real SDK,
   the corpus's labels; the emulator's detection rates are modelled, not measured).
2. The cost of Haiku's checks per typing hour: each sentence checked as it is finished, with
   the document so far as cached context, priced from the emulator's usage at Haiku 5.5's
   prices, scaled to a writer at 40 words a minute.
3. The time from a sentence's end to its flag on the offline tier: a real server, a client
   typing the test paragraph at 33 keys a second over the WebSocket API.
4. With ``--keystrokes`` only: the server CPU of the checks a keystroke
   (``CheckRuntime.observe``), 310 keys typed into the middle of a 100 KB document.

    python -m tools.check_figures [--keystrokes]
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections import Counter
from pathlib import Path

from assistant.bench.reviews import load_corpus
from assistant.check import spelling
from assistant.check.offline import offline_findings
from assistant.check.sentences import sentences
from assistant.config import Settings
from assistant.pricing import Usage, cost_usd

WORDS_PER_MINUTE = 40


def _score(doc: str, labels: list[dict], found: list[tuple[int, int, str]], tally: dict):
    """Count each finding as true when it lies in a label's quote of its class."""
    spans = [(doc.find(lab["quote"]), lab) for lab in labels]
    hit: set[int] = set()
    for start, end, category in found:
        cls = "grammar" if category == "word_choice" else category
        tally["flagged"][cls] += 1
        for i, (at, lab) in enumerate(spans):
            if lab["class"] == cls and at <= start and end <= at + len(lab["quote"]):
                tally["true"][cls] += 1
                hit.add(i)
                break
    for i, (_, lab) in enumerate(spans):
        tally["planted"][lab["class"]] += 1
        tally["recalled"][lab["class"]] += i in hit


def _tally() -> dict:
    return {k: Counter() for k in ("flagged", "true", "planted", "recalled")}


async def corpus_figures() -> dict:
    from assistant.check.model import ModelChecker
    from assistant.emulator import Emulator, EmulatorConfig

    corpus = load_corpus()
    speller = spelling.speller()
    offline, model = _tally(), _tally()
    checks = words = 0
    total_cost, offline_cpu = 0.0, 0.0
    usage = Usage()
    async with Emulator(EmulatorConfig(review_labels=corpus.labels)) as emu:
        checker = ModelChecker(Settings(api_key="emulator", base_url=emu.base_url))
        try:
            for name, doc in corpus.documents.items():
                labels = corpus.labels_of(name)
                off, mod = [], []
                for s in sentences(doc):
                    words += len(s.text.split())
                    cpu = time.process_time()
                    found = offline_findings(s.text, speller)
                    offline_cpu += time.process_time() - cpu
                    off += [(s.start + f.start, s.start + f.end, f.category) for f in found]
                    result = await checker.check(doc[: s.end], s.text, document=name)
                    checks += 1
                    total_cost += cost_usd(result.model, result.usage)
                    usage = usage + result.usage
                    mod += [
                        (s.start + f.start, s.start + f.end, f.category) for f in result.findings
                    ]
                _score(doc, labels, off, offline)
                _score(doc, labels, mod, model)
        finally:
            await checker.aclose()
    sentences_per_hour = WORDS_PER_MINUTE * 60 / (words / checks)
    return {
        "offline": offline,
        "haiku": model,
        "checks": checks,
        "usage": usage,
        "offline_cpu_per_sentence": offline_cpu / checks,
        "cost_per_check": total_cost / checks,
        "sentences_per_hour": sentences_per_hour,
        "cost_per_hour": total_cost / checks * sentences_per_hour,
    }


async def time_to_flag() -> list[float]:
    """Seconds from each flagged sentence's end punctuation to its check frame (offline)."""
    import orjson
    from websockets.asyncio.client import connect

    from server.runner import ServerHandle

    paragraph = (
        "The report is definately ready. Everyone liked the summary. We will send it to the "
        "the board on Friday. Please recieve it with care untill then. Thanks for your help."
    )
    settings = Settings(token="figures-token", offline="statistical")
    loop = asyncio.get_running_loop()
    gaps: list[float] = []
    async with ServerHandle(settings) as srv:
        headers = {"Authorization": f"Bearer {srv.token}"}
        async with connect(srv.ws_url, additional_headers=headers) as ws:
            await ws.recv()
            arrivals: list[tuple[float, dict]] = []

            async def read() -> None:
                async for raw in ws:
                    arrivals.append((loop.time(), orjson.loads(raw)))

            reader = asyncio.create_task(read())
            ends: dict[int, float] = {}
            for i in range(1, len(paragraph) + 1):
                await ws.send(orjson.dumps({"type": "suggest", "id": i, "prefix": paragraph[:i]}))
                if paragraph[i - 1] == ".":
                    ends[i] = loop.time()
                await asyncio.sleep(0.03)  # the typist's pace
            await asyncio.sleep(1.5)  # the last sentence's pause, then what is still in flight
            reader.cancel()
    for t, frame in arrivals:
        if frame["type"] == "check" and frame["findings"]:
            gaps.append(t - ends[frame["sentence"]["end"]])
    return gaps


def _long_document(chars: int = 100_000) -> str:
    corpus = sorted(Path("tests/data/review_corpus").glob("*.txt"))
    return ("".join(f.read_text(encoding="utf-8") for f in corpus) * 20)[:chars]


async def keystroke_cpu(doc: str) -> float:
    """Seconds of CPU a keystroke of ``CheckRuntime.observe`` (v1 frames, 100 KB document)."""
    from server import checks

    class Outbox:
        def emit(self, *frame) -> None:
            pass

    typed = "We will send the the report tomorrow. It is definately ready. " * 5
    spelling.speller()
    runtime = checks.CheckRuntime(Outbox(), account=lambda model, usage: 0.0)
    at = 50_000
    runtime.observe(0, doc[:at], doc[at:])
    cpu = time.process_time()
    for i in range(1, len(typed) + 1):
        runtime.observe(i, doc[:at] + typed[:i], doc[at:])
    used = time.process_time() - cpu
    runtime.stop()
    return used / len(typed)


def _rows(tally: dict) -> list[str]:
    rows = []
    for cls in sorted(tally["planted"] | tally["flagged"]):
        flagged, true = tally["flagged"][cls], tally["true"][cls]
        planted, recalled = tally["planted"][cls], tally["recalled"][cls]
        precision = f"{true / flagged:.0%}" if flagged else "-"
        rows.append(
            f"| {cls} | {true}/{flagged} = {precision} | {recalled}/{planted} = {recalled / planted:.0%} |"
        )
    return rows


async def main() -> None:
    print(f"load average {os.getloadavg()[0]:.1f}")
    if "--keystrokes" in sys.argv:
        print(f"checks: {await keystroke_cpu(_long_document()) * 1e6:.0f} µs CPU a keystroke")
        return
    figures = await corpus_figures()
    for name in ("offline", "haiku"):
        print(f"\n{name}: | class | precision | recall |")
        print("\n".join(_rows(figures[name])))
    print(
        f"\nchecks {figures['checks']}, ${figures['cost_per_check']:.7f} a check, "
        f"{figures['sentences_per_hour']:.0f} sentences an hour at {WORDS_PER_MINUTE} wpm: "
        f"${figures['cost_per_hour']:.5f} per typing hour"
    )
    u = figures["usage"]
    print(
        f"tokens: input {u.input_tokens}, cache write {u.cache_creation_input_tokens}, "
        f"cache read {u.cache_read_input_tokens}, output {u.output_tokens}; offline rules "
        f"{figures['offline_cpu_per_sentence'] * 1e6:.0f} µs CPU a sentence"
    )
    gaps = sorted(await time_to_flag())
    print(f"sentence end -> flag (offline): {', '.join(f'{g * 1000:.0f} ms' for g in gaps)}")


if __name__ == "__main__":
    asyncio.run(main())
