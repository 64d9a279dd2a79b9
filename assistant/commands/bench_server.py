"""``assistant bench --server URL``: the options checked and turned into a remote plan, what it
will send said (and, past a few typists, confirmed), the run against the deployment, the report,
and the budget's verdict as the exit code: 0 all held, 1 a line missed, 2 a usage or connection
error (the bench itself is ``assistant.bench.remote``)."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import sys
from pathlib import Path

from ..bench import budget as budgets
from ..bench.remote import (
    FEW_TYPISTS,
    ConnectError,
    RemotePlan,
    describe,
    format_remote_report,
    jobs_for,
    run_remote,
)
from ..emulator.predictors import DEFAULT_ACCURACY
from ..endpoint import endpoint_problem, ws_endpoint
from .outputs import check_output_path, document_chars

# Options that only mean something against a deployment, and the built-in bench's that do not
# (it starts its own server and emulator): (dest, flag, value when not given).
SERVER_ONLY = (
    ("budget", "--budget", None),
    ("junit", "--junit", None),
    ("passages", "--passages", None),
    ("rate", "--rate", None),
    ("cafile", "--cafile", None),
    ("token", "--token", None),
    ("yes", "--yes", False),
)
BUILT_IN_ONLY = (
    ("quick", "--quick", False),
    ("markdown", "--markdown", None),
    ("strategies", "--strategies", None),
    ("connect_ms", "--connect-ms", 0.0),
    ("emulator_predictors", "--predictors", None),
    ("emulator_oracle", "--emulator-oracle", None),
    ("emulator_accuracy", "--emulator-accuracy", DEFAULT_ACCURACY),
)
SUITE = "assistant bench --server"


class UsageError(ValueError):
    pass


def wants_server(args) -> bool:
    """``--server`` given, or an option that needs it (so its absence is reported)."""
    return getattr(args, "server", None) is not None or any(
        getattr(args, dest, default) != default for dest, _, default in SERVER_ONLY
    )


def _given(args, options) -> list[str]:
    return [flag for dest, flag, default in options if getattr(args, dest, default) != default]


def _writable(path: str | None, flag: str) -> None:
    from ..emulator.options import OptionError

    try:
        check_output_path(path, flag)
    except OptionError as exc:
        raise UsageError(str(exc)) from None


def plan_from_args(args) -> tuple[RemotePlan, tuple[budgets.Line, ...]]:
    """The remote plan and budget the options ask for; UsageError saying what to fix."""
    from ..emulator.options import OptionError
    from ..emulator.predictors import OracleFileError, load_oracle_file

    if args.server is None:
        raise UsageError(f"{', '.join(_given(args, SERVER_ONLY))} needs --server URL")
    wrong = _given(args, BUILT_IN_ONLY)
    if wrong:
        raise UsageError(
            f"{', '.join(wrong)} applies to the built-in bench only, not with --server"
        )
    problem = endpoint_problem(args.server)
    if problem:
        raise UsageError(problem)
    url = ws_endpoint(args.server)
    token = args.token or os.environ.get("ASSISTANT_TOKEN", "")
    if not token:
        raise UsageError("--server needs the server's token: --token T or $ASSISTANT_TOKEN")
    typists = FEW_TYPISTS if args.typists is None else args.typists
    if typists < 1:
        raise UsageError("--typists must be at least 1 with --server")
    rate = 10.0 if args.rate is None else args.rate
    if not rate > 0:
        raise UsageError("--rate must be more than 0 (new connections a second)")
    window = 45.0 if args.window is None else args.window
    if not window > 0:
        raise UsageError("--window must be more than 0 seconds")
    passages: tuple[str, ...] = ()
    if args.passages is not None:
        try:
            passages = load_oracle_file(args.passages)
        except OracleFileError as exc:
            raise UsageError(str(exc).replace("oracle file", "passages file")) from None
    if args.cafile is not None:
        if not url.startswith("wss://"):
            raise UsageError("--cafile is for a wss:// (or https://) server")
        if not Path(args.cafile).is_file():
            raise UsageError(f"--cafile {args.cafile}: no such file")
        try:
            ssl.create_default_context(cafile=args.cafile)
        except ssl.SSLError as exc:
            raise UsageError(f"--cafile {args.cafile}: not a PEM CA certificate ({exc})") from None
    try:
        lead_in, lead_out = document_chars(args)
    except OptionError as exc:
        raise UsageError(str(exc)) from None
    lines: tuple[budgets.Line, ...] = ()
    if args.budget is not None:
        try:
            lines = budgets.parse_budget(args.budget)
        except budgets.BudgetError as exc:
            raise UsageError(str(exc)) from None
    _writable(args.json, "--json")
    _writable(args.junit, "--junit")
    plan = RemotePlan(
        url=url,
        token=token,
        typists=typists,
        rate=rate,
        window_s=window,
        passages=passages,
        accepting=not args.no_accept,
        cafile=args.cafile,
        lead_in_chars=lead_in,
        lead_out_chars=lead_out,
    )
    return plan, lines


def _confirmed(plan: RemotePlan, yes: bool) -> bool:
    if plan.typists <= FEW_TYPISTS or yes:
        return True
    if not sys.stdin.isatty():
        print(
            f"assistant bench: more than {FEW_TYPISTS} typists against a deployment: add --yes "
            "to go ahead without a prompt",
            file=sys.stderr,
        )
        return False
    print("Go ahead? [y/N] ", end="", file=sys.stderr, flush=True)  # stdout is the report's
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")


def _write(path: str | None, text: str) -> None:
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")


def run(args) -> int:
    try:
        plan, lines = plan_from_args(args)
    except UsageError as exc:
        print(f"assistant bench: {exc}", file=sys.stderr)
        return 2
    jobs = jobs_for(plan)
    print(describe(plan, jobs), file=sys.stderr, flush=True)
    if not _confirmed(plan, bool(args.yes)):
        return 2
    try:
        report = asyncio.run(run_remote(plan, jobs))
    except ConnectError as exc:
        print(f"assistant bench: cannot run against {plan.shown_url}: {exc}", file=sys.stderr)
        _write(
            args.json, json.dumps({"server": plan.shown_url, "error": str(exc)}, indent=1) + "\n"
        )
        _write(args.junit, budgets.junit_xml([], suite=SUITE, seconds=0.0, error=str(exc)))
        return 2
    outcomes = budgets.check(lines, report)
    print(format_remote_report(report))
    if outcomes:
        print("budget:")
        for o in outcomes:
            print(f"  {o.text}")
    report["budget"] = [o.to_json() for o in outcomes]
    _write(args.json, json.dumps(report, indent=1) + "\n")
    _write(args.junit, budgets.junit_xml(outcomes, suite=SUITE, seconds=report["wall_seconds"]))
    return 1 if any(not o.held for o in outcomes) else 0
