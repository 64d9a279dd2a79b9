"""``assistant review FILE``: a deep review printed to the terminal (or as JSON).

In-process by default (Sonnet with a key, the offline rules without; ``--emulator`` starts the
built-in emulator and points the SDK at it); ``--server`` asks a running server over the
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

from .config import load_settings
from .pricing import Usage
from .providers.base import ProviderError
from .review import Finding, ReviewDelta, ReviewDone, ReviewEvent, make_reviewer

EMULATOR_PROFILE_ENV = "ASSISTANT_EMULATOR_PROFILE"  # tests use "fast"


class ReviewFailed(Exception):
    pass


def ws_endpoint(url: str) -> str:
    """``ws://host:port`` (or with a path) -> the protocol endpoint."""
    url = url.rstrip("/")
    if url.startswith("http://"):
        url = "ws://" + url[len("http://") :]
    elif url.startswith("https://"):
        url = "wss://" + url[len("https://") :]
    head, sep, path = url.partition("://")
    if "/" not in path:
        url = f"{url}/v1/ws"
    return url


async def review_over_server(url: str, token: str | None, text: str) -> AsyncIterator[ReviewEvent]:
    """The same event stream as a reviewer, from a server's ``review`` frames."""
    from websockets.asyncio.client import connect

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with connect(ws_endpoint(url), additional_headers=headers, max_size=None) as ws:
        ready = json.loads(await ws.recv())
        if ready.get("type") != "ready":
            raise ReviewFailed(f"unexpected first frame from the server: {ready.get('type')!r}")
        await ws.send(json.dumps({"type": "review", "id": 1, "text": text}))
        async for raw in ws:
            frame = json.loads(raw)
            kind = frame.get("type")
            if frame.get("id") not in (1, None):
                continue
            if kind == "review_delta":
                yield ReviewDelta(frame.get("text", ""))
            elif kind == "finding":
                yield Finding(
                    frame["index"],
                    frame["quote"],
                    frame.get("problem", ""),
                    frame.get("replacement", ""),
                    frame.get("severity", "medium"),
                    frame["start"],
                    frame["end"],
                )
            elif kind == "review_done":
                u = frame.get("usage") or {}
                yield ReviewDone(
                    findings=frame.get("findings", 0),
                    model=frame.get("model", ""),
                    usage=Usage(**{k: v for k, v in u.items() if k in Usage.__dataclass_fields__}),
                    cost_usd=frame.get("cost_usd", 0.0),
                    latency_ms=frame.get("latency_ms", 0.0),
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
    return f"{line}:{col} [{f.severity}] {change}  {f.problem}"


def format_summary(done: ReviewDone) -> str:
    u = done.usage
    noun = "finding" if done.findings == 1 else "findings"
    return (
        f"{done.findings} {noun} · {done.model} · {u.input_tokens} in / {u.output_tokens} out "
        f"tokens · ${done.cost_usd:.4f} · {done.latency_ms / 1000:.1f} s"
    )


async def _drive(events: AsyncIterator[ReviewEvent], text: str, as_json: bool) -> dict:
    findings: list[Finding] = []
    done: ReviewDone | None = None
    async for ev in events:
        if isinstance(ev, Finding):
            findings.append(ev)
            if not as_json:
                print(format_finding(text, ev), flush=True)
        elif isinstance(ev, ReviewDone):
            done = ev
    if done is None:
        raise ReviewFailed("the review ended without a result")
    if not as_json:
        print(format_summary(done), flush=True)
    return {
        "findings": [f.to_dict() for f in findings],
        "model": done.model,
        "usage": done.usage.to_dict(),
        "cost_usd": done.cost_usd,
        "latency_ms": done.latency_ms,
    }


async def _review_in_process(settings, text: str, as_json: bool) -> dict:
    reviewer = make_reviewer(settings)
    try:
        return await _drive(reviewer.review(text), text, as_json)
    finally:
        await reviewer.aclose()


def run(args) -> int:
    path = Path(args.file)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        print(f"assistant review: {path}: no such file", file=sys.stderr)
        return 2
    except (OSError, UnicodeDecodeError) as exc:
        print(f"assistant review: {path}: cannot read it ({exc})", file=sys.stderr)
        return 2
    as_json = bool(getattr(args, "json", False))
    try:
        with ExitStack() as stack:
            if getattr(args, "server", None):
                token = args.token or os.environ.get("ASSISTANT_TOKEN")
                events = review_over_server(args.server, token, text)
                if not as_json:
                    print(f"Reviewing {path} on {args.server}…", file=sys.stderr, flush=True)
                result = asyncio.run(_drive(events, text, as_json))
            else:
                settings = load_settings()
                if getattr(args, "emulator", False):
                    from .emulator import EmulatorConfig, EmulatorThread

                    profile = os.environ.get(EMULATOR_PROFILE_ENV, "sonnet")
                    emu = stack.enter_context(EmulatorThread(EmulatorConfig(profile=profile)))
                    settings = settings.with_(api_key="emulator", base_url=emu.base_url)
                if not as_json:
                    model = settings.review_model if settings.has_key else "offline rules"
                    print(f"Reviewing {path} with {model}…", file=sys.stderr, flush=True)
                result = asyncio.run(_review_in_process(settings, text, as_json))
    except ProviderError as exc:
        print(f"assistant review: the review failed: {exc}", file=sys.stderr)
        return 1
    except ReviewFailed as exc:
        print(f"assistant review: the review failed: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # a connection refused, a bad URL, a server that went away
        print(f"assistant review: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0
