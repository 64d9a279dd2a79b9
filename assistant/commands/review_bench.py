"""``assistant review-bench``: the review bench (``assistant.bench.reviews``) on a corpus,
printed and optionally written as JSON."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from ..bench.reviews import DEFAULT_CORPUS, format_report, load_corpus, run_bench, verdict
from ..config import load_settings


def run(args) -> int:
    directory = Path(args.corpus) if args.corpus else DEFAULT_CORPUS
    try:
        corpus = load_corpus(directory)
    except (OSError, ValueError, KeyError) as exc:
        print(
            f"assistant review-bench: cannot read the corpus in {directory}: {exc}", file=sys.stderr
        )
        return 2
    overrides = {}
    if args.haiku:
        overrides["review_triage_model"] = args.haiku
    if args.sonnet:
        overrides["review_model"] = args.sonnet
    settings = load_settings(**overrides)
    report = asyncio.run(run_bench(corpus, settings, seed=args.seed))
    report["documents"] = len(corpus.documents)
    print(format_report(report, settings))
    if args.json:
        report.pop("_results")
        report["checks"] = [{"check": t, "ok": ok} for t, ok in verdict(report)]
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0
