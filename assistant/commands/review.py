"""``assistant review FILE``: a deep review printed to the terminal (or as JSON).

In-process by default (with a key, ``--tier auto``: Haiku reads the document and Sonnet checks
what it flags; ``haiku`` or ``sonnet`` alone; without a key, the offline rules). ``--emulator``
starts the built-in emulator and points the SDK at it (``ASSISTANT_EMULATOR_REVIEW_LABELS`` names
a labels file for its modelled reviewing); ``--server`` asks a running server over the
WebSocket protocol instead. Exit codes: 0 done, 1 the review failed, 2 the file is unreadable.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import ExitStack
from pathlib import Path

from websockets.exceptions import InvalidHandshake

from ..config import ConfigError, load_settings
from ..endpoint import describe_connect_error, endpoint_problem, ws_endpoint
from ..providers.base import ProviderError
from ..review.factory import make_reviewer
from ..review.findings import (
    Finding,
    FindingRetracted,
    ReviewDelta,
    ReviewDone,
    ReviewEvent,
)
from ..review.frames import (
    finding_from_frame,
    format_tiers,
    tier_label,
    tiers_from_frame,
    usage_from,
)

EMULATOR_PROFILE_ENV = "ASSISTANT_EMULATOR_PROFILE"  # tests use "fast"
EMULATOR_LABELS_ENV = "ASSISTANT_EMULATOR_REVIEW_LABELS"  # a review corpus's labels.json


class ReviewFailed(Exception):
    pass


async def review_over_server(
    url: str, token: str | None, text: str, tier: str | None = None
) -> AsyncIterator[ReviewEvent]:
    """The same event stream as a reviewer, from a server's ``review`` frames."""
    from websockets.asyncio.client import connect

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with connect(ws_endpoint(url), additional_headers=headers, max_size=None) as ws:
        ready = json.loads(await ws.recv())
        if ready.get("type") != "ready":
            raise ReviewFailed(f"unexpected first frame from the server: {ready.get('type')!r}")
        request = {"type": "review", "id": 1, "text": text}
        if tier:
            request["tier"] = tier
        await ws.send(json.dumps(request))
        async for raw in ws:
            frame = json.loads(raw)
            kind = frame.get("type")
            if frame.get("id") not in (1, None):
                continue
            if kind == "review_delta":
                yield ReviewDelta(frame.get("text", ""))
            elif kind == "finding":
                yield finding_from_frame(frame)
            elif kind == "finding_retracted":
                yield FindingRetracted(int(frame["index"]), str(frame.get("reason", "")))
            elif kind == "review_done":
                yield ReviewDone(
                    findings=frame.get("findings", 0),
                    model=frame.get("model", ""),
                    usage=usage_from(frame.get("usage")),
                    cost_usd=frame.get("cost_usd", 0.0),
                    latency_ms=frame.get("latency_ms", 0.0),
                    tiers=tiers_from_frame(frame),
                    note=str(frame.get("note") or ""),
                    withheld=int(frame.get("withheld") or 0),
                )
                return
            elif kind == "error":
                raise ReviewFailed(f"{frame.get('code')}: {frame.get('message')}")
            elif kind == "cancelled":
                raise ReviewFailed(f"review cancelled ({frame.get('reason')})")
        raise ReviewFailed("the server closed the connection before the review finished")


def line_col(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    col = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, col


def format_finding(text: str, f: Finding) -> str:
    line, col = line_col(text, f.start)
    quote = json.dumps(f.quote, ensure_ascii=False)
    replacement = json.dumps(f.replacement, ensure_ascii=False)
    change = f"{quote} -> {replacement}" if f.replacement != f.quote else quote
    tags = ", ".join(t for t in (f.severity, f.category, tier_label(f)) if t)
    return f"{line}:{col} [{tags}] {change}  {f.problem}"


def format_summary(done: ReviewDone) -> str:
    u = done.usage
    noun = "finding" if done.findings == 1 else "findings"
    line = (
        f"{done.findings} {noun} · {done.model} · {u.input_tokens} in / {u.output_tokens} out "
        f"tokens · ${done.cost_usd:.4f} · {done.latency_ms / 1000:.1f} s"
    )
    if done.tiers:
        line += f"\n  {format_tiers(done.tiers)}"
    if done.note:
        line += f"\n  note: {done.note}"
    elif done.withheld:
        line += f"\n  {done.withheld} finding(s) Sonnet did not confirm were not shown"
    return line


async def _drive(events: AsyncIterator[ReviewEvent], text: str, as_json: bool) -> dict:
    findings: dict[int, Finding] = {}
    done: ReviewDone | None = None
    async for ev in events:
        if isinstance(ev, Finding):
            findings[ev.index] = ev
            if not as_json:
                print(format_finding(text, ev), flush=True)
        elif isinstance(ev, FindingRetracted):
            gone = findings.pop(ev.index, None)
            if gone is not None and not as_json:
                print(f"  withdrawn: {json.dumps(gone.quote, ensure_ascii=False)} ({ev.reason})")
        elif isinstance(ev, ReviewDone):
            done = ev
    if done is None:
        raise ReviewFailed("the review ended without a result")
    if not as_json:
        print(format_summary(done), flush=True)
    return {
        "findings": [f.to_dict() for f in findings.values()],
        "model": done.model,
        "usage": done.usage.to_dict(),
        "cost_usd": done.cost_usd,
        "latency_ms": done.latency_ms,
        "tiers": [t.to_dict() for t in done.tiers],
        "note": done.note,
        "withheld": done.withheld,
    }


async def _review_in_process(settings, text: str, as_json: bool, tier: str | None) -> dict:
    reviewer = make_reviewer(settings)
    try:
        return await _drive(reviewer.review(text, tier=tier), text, as_json)
    finally:
        await reviewer.aclose()


def _route(settings, tier: str | None) -> str:
    if not settings.has_key:
        return "offline rules"
    tier = tier or settings.review_tier
    if tier == "haiku":
        return settings.review_triage_model
    if tier == "sonnet":
        return settings.review_model
    return f"{settings.review_triage_model}, then {settings.review_model} on what it flags"


def run(args) -> int:
    path = Path(args.file)
    problem = endpoint_problem(args.server) if getattr(args, "server", None) else ""
    if problem:
        print(f"assistant review: --server {problem}", file=sys.stderr)
        return 2
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        print(f"assistant review: {path}: no such file", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"assistant review: {path}: cannot read it ({exc.strerror or exc})", file=sys.stderr)
        return 2
    try:
        if b"\x00" in data:
            raise ValueError("it holds NUL bytes")
        text = data.decode("utf-8")
    except (UnicodeDecodeError, ValueError) as exc:
        where = f"byte {exc.start} is not UTF-8" if isinstance(exc, UnicodeDecodeError) else exc
        print(
            f"assistant review: {path} is not a text file ({where}); "
            "review takes UTF-8 text such as Markdown",
            file=sys.stderr,
        )
        return 2
    as_json = bool(getattr(args, "json", False))
    tier = getattr(args, "tier", None)
    try:
        with ExitStack() as stack:
            if getattr(args, "server", None):
                token = args.token or os.environ.get("ASSISTANT_TOKEN")
                events = review_over_server(args.server, token, text, tier)
                if not as_json:
                    print(f"Reviewing {path} on {args.server}…", file=sys.stderr, flush=True)
                result = asyncio.run(_drive(events, text, as_json))
            else:
                settings = load_settings()
                if getattr(args, "emulator", False):
                    from ..emulator import EmulatorConfig, EmulatorThread

                    profile = os.environ.get(EMULATOR_PROFILE_ENV, "sonnet")
                    labels = ()
                    if os.environ.get(EMULATOR_LABELS_ENV):
                        labels_path = Path(os.environ[EMULATOR_LABELS_ENV])
                        labels = json.loads(labels_path.read_text(encoding="utf-8"))["labels"]
                    config = EmulatorConfig(profile=profile, review_labels=labels)
                    emu = stack.enter_context(EmulatorThread(config))
                    settings = settings.with_(api_key="emulator", base_url=emu.base_url)
                if not as_json:
                    print(
                        f"Reviewing {path} with {_route(settings, tier)}…",
                        file=sys.stderr,
                        flush=True,
                    )
                result = asyncio.run(_review_in_process(settings, text, as_json, tier))
    except ProviderError as exc:
        print(f"assistant review: the review failed: {exc}", file=sys.stderr)
        return 1
    except ReviewFailed as exc:
        print(f"assistant review: the review failed: {exc}", file=sys.stderr)
        return 1
    except ConfigError:
        raise  # a usage error (exit 2), said as every command says it (assistant/cli.py)
    except Exception as exc:  # a connection refused, a bad URL, a server that went away
        server = getattr(args, "server", None)
        if server and isinstance(exc, OSError | TimeoutError | InvalidHandshake):
            said = describe_connect_error(exc, ws_endpoint(server))  # as bench --server says it
        else:
            said = f"{type(exc).__name__}: {exc}"
        print(f"assistant review: {said}", file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0
