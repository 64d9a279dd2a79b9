"""``assistant bench``: the suggestion bench's options turned into a plan, run, and reported
(the bench itself is ``assistant.bench.suggestions``)."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import sys
from pathlib import Path
from typing import Any

from ..bench.strategies import ENGINE_VARIANTS
from ..bench.suggestions import (
    PREDICTOR_ORDER,
    STRATEGY_ORDER,
    BenchPlan,
    format_report,
    headline_markdown,
    run_bench,
)
from .outputs import check_output_path, document_chars


def plan_from_args(args) -> BenchPlan:
    """The plan ``assistant bench`` options ask for (OptionError for a bad choice)."""
    from ..emulator.options import OptionError, parse_name_list, predictor_choice

    typists = getattr(args, "typists", None)
    if typists is None:
        typists = 200
    if typists < 0:
        raise OptionError(f"--typists must be 0 or more (0: no load part), not {typists}")
    quick = bool(getattr(args, "quick", False))
    choice = predictor_choice(args, default=("noisy",) if quick else PREDICTOR_ORDER)
    changes: dict[str, Any] = {
        "predictors": tuple(p for p in PREDICTOR_ORDER if p in choice.predictors),
        "accuracy": choice.accuracy,
    }
    if choice.oracle_file is not None:
        changes["oracle_texts"] = choice.passages
    strategies = getattr(args, "strategies", None)
    if strategies:
        # (also the engine's before/after variants, assistant/strategies.py ENGINE_VARIANTS)
        allowed = (*STRATEGY_ORDER, *ENGINE_VARIANTS)
        changes["strategies"] = parse_name_list(strategies, allowed, "strategy")
    if getattr(args, "no_accept", False):
        changes["accepting"] = False
    lead_in, lead_out = document_chars(args)
    if lead_in:
        changes["lead_in_chars"] = lead_in
    if lead_out:
        changes["lead_out_chars"] = lead_out
    window = getattr(args, "window", None)
    if window is not None:
        if not (window > 0 and math.isfinite(window)):
            raise OptionError(f"--window must be a number of seconds more than 0, not {window}")
        changes["window_s"] = float(window)
    connect_ms = getattr(args, "connect_ms", 0.0) or 0.0
    if not (connect_ms >= 0 and math.isfinite(connect_ms)):
        raise OptionError(f"--connect-ms must be 0 or more milliseconds, not {connect_ms}")
    if connect_ms:
        changes["connect_ms"] = float(connect_ms)
    if quick:
        return BenchPlan.quick(typists, **changes)
    return BenchPlan(load_typists=typists, **changes)


def run(args) -> int:
    from ..emulator.options import OptionError
    from .bench_server import wants_server

    if wants_server(args):  # against a running deployment: assistant/commands/bench_server.py
        from .bench_server import run as run_against_server

        return run_against_server(args)

    # The servers it starts log provider status changes as warnings; the report says it all.
    logging.getLogger("assistant.server").setLevel(logging.ERROR)
    try:
        plan = plan_from_args(args)
        for option in ("json", "markdown"):
            check_output_path(getattr(args, option, None), f"--{option}")
    except OptionError as exc:
        print(f"assistant bench: {exc}", file=sys.stderr)
        return 2
    report = asyncio.run(run_bench(plan))
    print(format_report(report))
    if getattr(args, "json", None):
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    if getattr(args, "markdown", None):
        Path(args.markdown).write_text(headline_markdown(report) + "\n", encoding="utf-8")
    bad = sum(
        s["violation_count"] for r in report["runs"].values() for s in r["strategies"].values()
    )
    bad += sum(st["violations"] for st in report["load"])
    return 1 if bad else 0
