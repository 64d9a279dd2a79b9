"""``assistant review-bench``: recall per class, precision, cost and time of each review route.

Reviews every document of the labelled corpus (``tests/data/review_corpus``) three ways, through
the real SDK against the emulator: Sonnet alone, Haiku alone, and tiered (Haiku, then Sonnet on
what it flags). Then re-reviews each document after a one-word edit (a word inserted at the
middle of the text) and reports how much of that input was read from the prompt cache.

The emulator's reviewing is *modelled* (``assistant/emulator/reviewing.py``: seeded detection
rates per model and class that we chose from the seed's qualitative claims), so these figures
compare routes under that model; they are not measurements of Claude. Time is modelled too:
each request's time to first token (p50) plus its output tokens at the inter-token gap of the
model's emulator latency profile, requests of one review run one after the other.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..emulator.latency import PROFILES
from ..pricing import Usage
from ..review.findings import CLASSES, Finding, FindingRetracted, ReviewDone

ROUTES = ("sonnet", "haiku", "auto")
ROUTE_NAMES = {"sonnet": "Sonnet only", "haiku": "Haiku only", "auto": "tiered"}
DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "tests" / "data" / "review_corpus"


@dataclass
class Corpus:
    documents: dict[str, str]
    labels: list[dict]

    def labels_of(self, name: str) -> list[dict]:
        return [label for label in self.labels if label["document"] == name]


def load_corpus(directory: Path = DEFAULT_CORPUS) -> Corpus:
    labels = json.loads((directory / "labels.json").read_text(encoding="utf-8"))["labels"]
    names = sorted({label["document"] for label in labels})
    docs = {name: (directory / name).read_text(encoding="utf-8") for name in names}
    return Corpus(docs, labels)


@dataclass
class RouteResult:
    route: str
    found: Counter = field(default_factory=Counter)  # labels found, by class
    planted: Counter = field(default_factory=Counter)
    shown: int = 0
    true_shown: int = 0
    cost_usd: float = 0.0
    cost_by_tier: Counter = field(default_factory=Counter)
    usage: Usage = Usage()
    modelled_ms: float = 0.0
    reviews: int = 0
    withheld: int = 0
    notes: list[str] = field(default_factory=list)

    def recall(self, cls: str) -> float | None:
        return self.found[cls] / self.planted[cls] if self.planted[cls] else None

    @property
    def precision(self) -> float:
        return self.true_shown / self.shown if self.shown else 1.0

    def to_dict(self) -> dict:
        return {
            "route": self.route,
            "recall": {c: self.recall(c) for c in CLASSES if self.planted[c]},
            "precision": self.precision,
            "shown": self.shown,
            "true_shown": self.true_shown,
            "cost_usd": self.cost_usd,
            "cost_by_tier": dict(self.cost_by_tier),
            "usage": self.usage.to_dict(),
            "modelled_ms_per_review": self.modelled_ms / max(1, self.reviews),
            "withheld": self.withheld,
        }


def modelled_ms(model: str, output_tokens: int) -> float:
    family = "haiku" if "haiku" in model else "sonnet"
    profile = PROFILES[family]
    return profile.ttft_p50_ms + output_tokens * profile.inter_token_ms


def score(text: str, labels: list[dict], findings: list[Finding]) -> tuple[Counter, int]:
    """Labels found (by class) and how many findings hit a label (a finding hits a label when
    their spans overlap)."""
    spans = []
    for label in labels:
        start = text.find(label["quote"])
        spans.append((start, start + len(label["quote"]), label["class"]))
    found: Counter = Counter()
    hit = set()
    true_shown = 0
    for f in findings:
        matched = [i for i, (a, b, _) in enumerate(spans) if a < f.end and f.start < b]
        if matched:
            true_shown += 1
            hit.update(matched)
    for i in hit:
        found[spans[i][2]] += 1
    return found, true_shown


async def _review(reviewer, text: str, tier: str, key: str) -> tuple[list[Finding], ReviewDone]:
    shown: dict[int, Finding] = {}
    done = None
    async for ev in reviewer.review(text, tier=tier, document=key):
        if isinstance(ev, Finding):
            shown[ev.index] = ev
        elif isinstance(ev, FindingRetracted):
            shown.pop(ev.index, None)
        elif isinstance(ev, ReviewDone):
            done = ev
    assert done is not None
    return list(shown.values()), done


def one_word_edit(text: str) -> str:
    """``text`` with one word inserted at the first word boundary past its middle."""
    middle = text.find(" ", len(text) // 2)
    middle = middle if middle >= 0 else len(text)
    return text[:middle] + " really" + text[middle:]


async def run_bench(corpus: Corpus, settings, seed: int = 0) -> dict:
    from ..emulator import Emulator, EmulatorConfig
    from ..review.tiered import TieredReviewer

    results: dict[str, RouteResult] = {}
    cache: dict[str, dict] = {}
    async with Emulator(EmulatorConfig(review_labels=corpus.labels, seed=seed)) as emu:
        run_settings = settings.with_(api_key="emulator", base_url=emu.base_url)
        for route in ROUTES:
            emu.reset()
            reviewer = TieredReviewer(run_settings)
            result = RouteResult(route)
            first_input = Usage()
            again = Usage()
            try:
                for name, text in corpus.documents.items():
                    labels = corpus.labels_of(name)
                    findings, done = await _review(reviewer, text, route, name)
                    found, true_shown = score(text, labels, findings)
                    result.found += found
                    result.planted += Counter(label["class"] for label in labels)
                    result.shown += len(findings)
                    result.true_shown += true_shown
                    result.cost_usd += done.cost_usd
                    result.usage = result.usage + done.usage
                    result.withheld += done.withheld
                    result.reviews += 1
                    first_input = first_input + done.usage
                    for tier in done.tiers:
                        result.cost_by_tier[tier.tier] += tier.cost_usd
                        if tier.status == "ok":
                            result.modelled_ms += modelled_ms(tier.model, tier.usage.output_tokens)
                    if done.note:
                        result.notes.append(f"{name}: {done.note}")
                    edited = one_word_edit(text)
                    _, redo = await _review(reviewer, edited, route, name)
                    again = again + redo.usage
            finally:
                await reviewer.aclose()
            results[route] = result
            cache[route] = {"first": first_input.to_dict(), "after_one_word_edit": again.to_dict()}
    return {
        "routes": {r: results[r].to_dict() for r in ROUTES},
        "cache": cache,
        "_results": results,
    }


def input_total(u: dict) -> int:
    return u["input_tokens"] + u["cache_creation_input_tokens"] + u["cache_read_input_tokens"]


def cache_share(u: dict) -> float:
    total = input_total(u)
    return u["cache_read_input_tokens"] / total if total else 0.0


def verdict(report: dict) -> list[tuple[str, bool]]:
    """The issue's done-when checks on this run."""
    sonnet, tiered = report["routes"]["sonnet"], report["routes"]["auto"]
    checks = [
        (
            f"tiered costs {1 - tiered['cost_usd'] / sonnet['cost_usd']:.0%} less than Sonnet "
            "only (>= 50%)",
            tiered["cost_usd"] <= 0.5 * sonnet["cost_usd"],
        )
    ]
    for cls, recall in sonnet["recall"].items():
        mine = tiered["recall"].get(cls) or 0.0
        checks.append(
            (
                f"{cls} recall {mine:.0%} vs {recall:.0%} (within 5 points)",
                mine >= recall - 0.05 - 1e-9,
            )
        )
    checks.append(
        (
            f"precision {tiered['precision']:.1%} vs {sonnet['precision']:.1%} (no lower)",
            tiered["precision"] >= sonnet["precision"] - 1e-9,
        )
    )
    share = cache_share(report["cache"]["auto"]["after_one_word_edit"])
    checks.append(
        (f"re-review after a one-word edit read {share:.0%} from cache (>= 80%)", share >= 0.8)
    )
    return checks


def format_report(report: dict, settings) -> str:
    routes = report["routes"]
    classes = [c for c in CLASSES if c in routes["sonnet"]["recall"]]
    planted = report["_results"]["sonnet"].planted
    head = [
        "route",
        *[f"{c} ({planted[c]})" for c in classes],
        "precision",
        "cost $",
        "vs Sonnet",
        "time (modelled)",
    ]
    lines = [
        f"Review routes on {sum(planted.values())} planted issues in {report['documents']} "
        f"documents; Haiku = {settings.review_triage_model}, Sonnet = {settings.review_model}. "
        "Modelled rates (emulator), not measured ones.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    sonnet_cost = routes["sonnet"]["cost_usd"]
    for route in ROUTES:
        r = routes[route]
        cells = [ROUTE_NAMES[route]]
        cells += [f"{r['recall'].get(c, 0.0):.0%}" for c in classes]
        split = " + ".join(f"{t} {v:.4f}" for t, v in r["cost_by_tier"].items() if v)
        cells += [
            f"{r['precision']:.1%} ({r['true_shown']}/{r['shown']})",
            f"{r['cost_usd']:.4f}" + (f" ({split})" if route == "auto" else ""),
            f"{r['cost_usd'] / sonnet_cost:.0%}",
            f"{r['modelled_ms_per_review'] / 1000:.1f} s",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Re-review after a one-word edit (input tokens read from the prompt cache):", ""]
    lines += ["| route | first review: cache read / input | after the edit: cache read / input |"]
    lines += ["|---|---|---|"]
    for route in ROUTES:
        c = report["cache"][route]
        first, again = c["first"], c["after_one_word_edit"]
        lines.append(
            f"| {ROUTE_NAMES[route]} | {first['cache_read_input_tokens']} / {input_total(first)} "
            f"({cache_share(first):.0%}) | {again['cache_read_input_tokens']} / "
            f"{input_total(again)} ({cache_share(again):.0%}) |"
        )
    lines += [""]
    lines += [("PASS " if ok else "FAIL ") + text for text, ok in verdict(report)]
    return "\n".join(lines)
