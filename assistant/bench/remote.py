"""``assistant bench --server URL``: the latency budget suite against a deployment someone else
runs (their region, their Anthropic key and tier, nginx and TLS in front), not against a server
and emulator the bench starts itself on loopback.

The same typists as the built-in bench (``replay.AcceptingTypist``: the shipped typing traces, or
traces generated from the operator's own passages, typed at their recorded pace, accepting ghost
text that is what they were going to type) each open a connection to the deployment, at most
``rate`` new ones a second. Every figure comes from what a client can see, the frames the server
sends: pause -> visible and keystroke -> visible as the typist timed them, what was shown and
accepted, the sources and the server's own latency from ``done`` frames, errors, disconnects, and
tokens and dollars from the ``usage``/``cost_usd`` of ``done`` frames (a model call cancelled
mid-stream is costed only in the server's /metrics: no frame carries it). With the shipped traces
and the window of the built-in bench, the typists are the built-in bench's, so the two report the
same pause -> visible figures for the same server (docs/deployment.md § Gating a rollout).
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from ..endpoint import client_ssl_context, describe_connect_error
from ..suggest.usefulness import per_thousand_saved, total
from .replay import AcceptingTypist, ReplayResult, replay
from .suggestions import (
    BenchPlan,
    _fmt,
    _lat,
    _loadavg,
    _pct,
    _usd,
    lead_in_text,
    lead_out_text,
    pick_traces,
    summary_ms,
    trace_window,
    usefulness_figures,
    where_typed,
)
from .traces import Keystroke, load_passages

# Up to this many typists the bench starts without asking (one per shipped trace: what the
# built-in bench types against its own server); more must be confirmed (a prompt, or --yes).
FEW_TYPISTS = 12
MODEL_SOURCES = ("model", "prefetch")


class ConnectError(Exception):
    """The deployment could not be reached or refused the bench (the message says why)."""


@dataclass(frozen=True)
class RemotePlan:
    url: str  # the WebSocket endpoint (assistant.endpoint.ws_endpoint)
    token: str
    typists: int = FEW_TYPISTS
    rate: float = 10.0  # typists started (connections opened) per second, at most
    window_s: float = 45.0  # seconds of each trace typed, from its start (the built-in bench's)
    passages: tuple[str, ...] = ()  # the operator's passages; empty: the shipped traces
    accepting: bool = True
    cafile: str | None = None
    settle_s: float = 5.0  # after a typist's last key, how long to wait for the last frames
    connect_timeout_s: float = 10.0
    lead_in_chars: int = 0  # existing text before each typist's cursor (0: a new document)
    lead_out_chars: int = 0  # and after it, from the next paragraph on (0: typing at the end)

    @property
    def shown_url(self) -> str:
        """The endpoint as printed and written to reports: without its query, which may hold
        a ``?token=``."""
        return self.url.split("?", 1)[0]


@dataclass(frozen=True)
class Job:
    """One typist: which trace, from when (seconds after the first typist), typing what."""

    name: str
    start_s: float
    events: tuple[Keystroke, ...]
    target: str  # the whole text the typist means to write (after the existing text)
    initial_text: str = ""  # the document before the cursor when the typist starts
    suffix: str = ""  # the text after the cursor, which the typist never reaches


@dataclass(frozen=True)
class TypistFailure:
    name: str
    error: str


def jobs_for(plan: RemotePlan) -> list[Job]:
    """The built-in bench's traces (``suggestions.pick_traces``), one per typist, again from the
    first when there are more typists than traces; typist k starts k / rate seconds in. With a
    lead-in (or lead-out), typist k types into the built-in bench's document for writer k: its
    own, so no typist reads another's prompt cache."""
    if plan.passages:
        bench = BenchPlan(oracle_texts=plan.passages, file_passages=len(plan.passages))
    else:
        bench = BenchPlan()
    traces = pick_traces(bench)
    passages = plan.passages or tuple(load_passages().values())
    jobs = []
    for k in range(plan.typists):
        trace = traces[k % len(traces)]
        name = trace.name if k < len(traces) else f"{trace.name}#{k // len(traces) + 1}"
        before = lead_in_text(plan.lead_in_chars, passages, k, typed=trace.final_text)
        after = lead_out_text(plan.lead_out_chars, passages, k, typed=trace.final_text)
        events = trace_window(trace, plan.window_s)
        jobs.append(Job(name, k / plan.rate, events, before + trace.final_text, before, after))
    return jobs


def peak_keys_per_second(jobs: Sequence[Job]) -> int:
    """The most suggest frames any one second of the run holds, at the traces' own pace."""
    per_second: Counter[int] = Counter()
    for job in jobs:
        for e in job.events:
            per_second[int(job.start_s + e.t_ms / 1000)] += 1
    return max(per_second.values(), default=0)


def describe(plan: RemotePlan, jobs: Sequence[Job]) -> str:
    """What the run will send, said before it starts."""
    keys = sum(len(j.events) for j in jobs)
    last = max((j.start_s + (j.events[-1].t_ms / 1000 if j.events else 0) for j in jobs), default=0)
    traces = "your passages" if plan.passages else "the shipped traces"
    accepting = "accepting ghosts that match (an accept frame each)" if plan.accepting else ""
    carries = ""
    if plan.lead_in_chars or plan.lead_out_chars:
        carries = ", each carrying the whole document"
    return (
        f"assistant bench: {plan.typists} typists will connect to {plan.shown_url} (at most "
        f"{plan.rate:g} new connections a second) and type {traces} "
        f"{where_typed(plan.lead_in_chars, plan.lead_out_chars)}, up to {plan.window_s:g} s "
        f"each at their recorded pace: {keys:,} keystrokes, one suggest frame each{carries} (at "
        f"most {peak_keys_per_second(jobs):,} in any second)"
        f"{', ' + accepting if accepting else ''}; about {last + plan.settle_s:.0f} s in all. "
        "Every suggestion the deployment asks its model for is billed to its API key."
    )


async def probe(plan: RemotePlan, context: ssl.SSLContext | None) -> dict:
    """One connection first: its ``ready`` frame, or ConnectError before any typist starts."""
    tls = {"ssl": context} if context is not None else {}
    try:
        async with connect(
            plan.url,
            additional_headers={"Authorization": f"Bearer {plan.token}"},
            open_timeout=plan.connect_timeout_s,
            compression=None,
            **tls,
        ) as ws:
            ready = json.loads(await asyncio.wait_for(ws.recv(), plan.connect_timeout_s))
    except (OSError, TimeoutError, InvalidHandshake, InvalidURI, ConnectionClosed) as exc:
        raise ConnectError(describe_connect_error(exc, plan.shown_url)) from None
    except ValueError as exc:
        raise ConnectError(f"{plan.shown_url}: {exc}") from None
    if not isinstance(ready, dict) or ready.get("type") != "ready":
        raise ConnectError(
            f"{plan.shown_url} is not an assistant server (its first frame: {ready!r:.80})"
        )
    return ready


async def run_remote(plan: RemotePlan, jobs: Sequence[Job] | None = None) -> dict:
    """Probe, then every typist at once (each from its start time); the report. ConnectError
    when the probe fails or no typist could connect at all."""
    jobs = list(jobs) if jobs is not None else jobs_for(plan)
    context = client_ssl_context(plan.url, plan.cafile)
    ready = await probe(plan, context)

    async def one(job: Job) -> ReplayResult | TypistFailure:
        await asyncio.sleep(job.start_s)  # the --rate ramp: a schedule, not a wait for anything
        try:
            return await replay(
                plan.url,
                plan.token,
                job.events,
                name=job.name,
                initial_text=job.initial_text,
                suffix=job.suffix,
                settle_s=plan.settle_s,
                connect_timeout_s=plan.connect_timeout_s,
                typist=AcceptingTypist(job.target) if plan.accepting else None,
                ssl=context,
                keep_on_close=True,
            )
        except (OSError, TimeoutError, InvalidHandshake, ConnectionClosed, ValueError) as exc:
            return TypistFailure(job.name, describe_connect_error(exc, plan.shown_url))

    started, load_before = time.monotonic(), _loadavg()
    outcomes = await asyncio.gather(*(one(j) for j in jobs))
    if not any(isinstance(o, ReplayResult) for o in outcomes):
        first = next(o for o in outcomes if isinstance(o, TypistFailure))
        raise ConnectError(f"no typist could connect: {first.error}")
    report = summarize_remote(plan, outcomes, ready, time.monotonic() - started)
    # The bench's own machine: a loaded one adds its scheduling delay to every figure.
    report["machine"] = {
        "cpus": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": _loadavg(),
    }
    return report


def summarize_remote(
    plan: RemotePlan,
    outcomes: Sequence[ReplayResult | TypistFailure],
    ready: dict,
    wall_s: float,
) -> dict:
    results = [o for o in outcomes if isinstance(o, ReplayResult)]
    failures = [o for o in outcomes if isinstance(o, TypistFailure)]
    suggestions = [s for r in results for s in r.suggestions]
    visible = [s for s in suggestions if s.first_visible_at is not None]
    by_source: dict[str, list[float]] = {}
    for s in visible:
        by_source.setdefault(s.shown_source or "?", []).append(s.visible_ms)
    done = [s for s in suggestions if s.terminal == "done"]
    models = [s for s in done if s.source in MODEL_SOURCES]
    usage: Counter[str] = Counter()
    for s in done:
        for k, v in (s.usage or {}).items():
            if isinstance(v, int | float) and not isinstance(v, bool):
                usage[k] += int(v)
    cost = sum(s.cost_usd for s in done)
    typing_hours = sum(r.typing_s for r in results) / 3600
    use = total([r.usefulness for r in results])
    written = sum(r.chars_written for r in results)
    keys = sum(r.keystrokes for r in results)
    error_frames = Counter(s.reason or "?" for s in suggestions if s.terminal == "error")
    violations = [f"{r.name}: {v}" for r in results for v in r.violations]
    return {
        "server": plan.shown_url,
        "provider": ready.get("provider"),
        "server_model": ready.get("model"),
        "typists": len(outcomes),
        "typists_connected": len(results),
        "typists_failed": [{"typist": f.name, "error": f.error} for f in failures],
        "window_s": plan.window_s,
        "lead_in_chars": plan.lead_in_chars,
        "lead_out_chars": plan.lead_out_chars,
        "rate": plan.rate,
        "traces": sorted({r.name.split("#")[0] for r in results}),
        "accepting_typists": plan.accepting,
        "keystrokes": keys,
        "typing_seconds": round(typing_hours * 3600, 1),
        "wall_seconds": round(wall_s, 1),
        **usefulness_figures(use, written),
        "key_to_visible_ms": summary_ms([s.visible_ms for s in visible]),
        "key_to_visible_ms_by_source": {k: summary_ms(v) for k, v in sorted(by_source.items())},
        "server_latency_ms": summary_ms(
            [s.server_latency_ms for s in done if isinstance(s.server_latency_ms, int | float)]
        ),
        "done_by_source": dict(Counter(s.source or "?" for s in done).most_common()),
        "cancelled_by_reason": dict(
            Counter(s.reason or "?" for s in suggestions if s.terminal == "cancelled").most_common()
        ),
        "error_frames": dict(error_frames.most_common()),
        "errors": sum(error_frames.values()) + len(failures),
        "disconnects": sum(1 for r in results if r.closed),
        "closed_by_server": dict(Counter(r.closed for r in results if r.closed)),
        "unanswered": sum(1 for s in suggestions if s.terminal is None),
        "status_frames": sum(r.status_frames for r in results),
        "violations": violations[:20],
        "violation_count": len(violations),
        "model_answers": len(models),
        "model_answers_per_100_keys": round(100 * len(models) / keys, 1) if keys else 0.0,
        "models": dict(Counter(s.model for s in models if s.model)),
        "tokens": {
            "input": usage["input_tokens"],
            "cache_write": usage["cache_creation_input_tokens"],
            "cache_read": usage["cache_read_input_tokens"],
            "output": usage["output_tokens"],
        },
        "cost_usd": round(cost, 6),
        "cost_per_typing_hour_usd": round(cost / typing_hours, 4) if typing_hours else 0.0,
        "cost_per_1000_saved_usd": _round5(per_thousand_saved(cost, use.chars_saved)),
    }


def _round5(v: float | None) -> float | None:
    return None if v is None else round(v, 5)


def _counts(d: dict) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in d.items()) or "none"


def format_remote_report(report: dict) -> str:
    r = report
    accepting = "accepting matching ghosts" if r["accepting_typists"] else "typing every key"
    rows = [
        ("typists connected / failed", f"{r['typists_connected']} / {len(r['typists_failed'])}"),
        ("keys pressed (typed + accept)", f"{_fmt(r['typed_keys'])} + {_fmt(r['accept_keys'])}"),
        ("pause -> visible ms p50/p95/p99", _lat(r["pause_to_visible_ms"])),
        ("pauses with a suggestion visible", _pct(r["visible_at_pause_share"])),
        ("key -> visible ms p50/p95/p99", _lat(r["key_to_visible_ms"])),
        *(
            (f"  from {src}", _lat(stats))
            for src, stats in r["key_to_visible_ms_by_source"].items()
        ),
        ("server's own latency ms (done frames)", _lat(r["server_latency_ms"])),
        ("shown / accepted", f"{_fmt(r['shown'])} / {_fmt(r['accepted'])}"),
        ("acceptance rate", _pct(r["acceptance_rate"])),
        (
            "characters saved (share of the text)",
            f"{_fmt(r['chars_saved'])} ({_pct(r['saved_share'])})",
        ),
        ("done frames by source", _counts(r["done_by_source"])),
        ("cancelled frames by reason", _counts(r["cancelled_by_reason"])),
        ("error frames by code", _counts(r["error_frames"])),
        (
            "disconnects (closed by the server)",
            f"{r['disconnects']} {_counts(r['closed_by_server']) if r['disconnects'] else ''}".strip(),
        ),
        ("provider status notices", _fmt(r["status_frames"])),
        ("guarantee violations", _fmt(r["violation_count"])),
        (
            "model answers (/ 100 keys)",
            f"{_fmt(r['model_answers'])} ({_fmt(r['model_answers_per_100_keys'])})",
        ),
        (
            "tokens in / cache write / read / out",
            " / ".join(
                _fmt(r["tokens"][k]) for k in ("input", "cache_write", "cache_read", "output")
            ),
        ),
        (
            "cost in done frames",
            f"{_usd(r['cost_usd'])} ({_usd(r['cost_per_typing_hour_usd'])} per typing hour)",
        ),
        ("cost / 1,000 saved chars", _usd(r["cost_per_1000_saved_usd"])),
    ]
    width = max(len(label) for label, _ in rows) + 2
    lines = [
        f"{r['server']} (provider {r['provider']}, model {r['server_model']}): {r['typists']} "
        f"typists, first {r['window_s']:g} s of each trace at real pace "
        f"{where_typed(r.get('lead_in_chars', 0), r.get('lead_out_chars', 0))}, {accepting}; "
        f"{r['wall_seconds']:g} s",
        *(label.ljust(width) + value for label, value in rows),
    ]
    m = r.get("machine")
    if m:
        lines.append(
            f"(this machine: {m['cpus']} CPUs, load average before {m['load_average_before']}, "
            f"after {m['load_average_after']})"
        )
    for f in r["typists_failed"][:5]:
        lines.append(f"  {f['typist']} failed: {f['error']}")
    for v in r["violations"][:5]:
        lines.append(f"  violation: {v}")
    return "\n".join(lines)
