"""The suggestion bench (``assistant bench``): replay the typing traces through the real server and the emulator, and
compare four ways of deciding when to ask the model, on the same traces in one run, under each
chosen predictor (who writes the emulated model's suggestions: ``noisy`` at P = 0.3 by default,
``oracle``, the upper bound, and ``local``, the embedded local model).

Part 1 (strategies x predictors): for each predictor and each of naive, Continue-style,
Copilot-style and ours, a fresh emulator with the "haiku" latency profile, a real server whose
connections use that strategy's engine, and every trace typed at once, each on its own
connection, at its recorded pace, by typists who read the ghost text and accept it when it is
what they were going to type (``replay.AcceptingTypist``). Reported: what the writer gets
(suggestions shown and accepted, characters saved, time from a pause to a visible suggestion;
``assistant/usefulness.py`` defines each), keystroke-to-visible latency by source, model calls
per 100 keystrokes and per 1,000 saved characters, billed and stale tokens, prompt-cache reads,
dollars per hour of typing and per 1,000 saved characters at the configured suggestion model's
prices.

Part 2 (load): the server alone in a child process (emulator "fast" profile), N typists at once;
reported: the server's own overhead on suggestions that needed no model call (p50/p99, as the
server timed it and as the client saw it), for N = --typists and then doubling while time allows.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import platform
import random
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..config import Settings, load_settings
from ..emulator.predictors import describe_predictor
from ..pricing import Usage, cost_usd
from ..suggest.engine import Accept, CancelRequest, Clock, ShowSuggestion, StartRequest
from ..suggest.usefulness import Usefulness, per_thousand_saved, total
from .replay import AcceptingTypist, ReplayResult, replay, requested_prefix
from .strategies import ENGINE_VARIANTS, make_engine
from .traces import Keystroke, Trace, generate, load_passages, load_traces

STRATEGY_ORDER = ("naive", "continue", "copilot", "ours")
# The report's rows: the strategies, then the engine's before/after variants when a run has them.
REPORT_ORDER = (*STRATEGY_ORDER, *ENGINE_VARIANTS)
STRATEGY_LABELS = {
    "naive": "naive (request per key)",
    "continue": "Continue-style (350 ms)",
    "copilot": "Copilot-style (15 ms)",
    "ours": "ours (SuggestionEngine)",
}
PREDICTOR_ORDER = ("noisy", "oracle", "local")
# The local model answers one request at a time, slower than a request per keystroke from a
# dozen typists: the local run types fewer traces and leaves naive out (its figures would
# measure the emulator's queue, not the strategy).
LOCAL_TRACES = (("average", "email"), ("fast", "prose"), ("slow", "notes"))
LOCAL_STRATEGIES = ("continue", "copilot", "ours")
NO_MODEL_SOURCES = ("typethrough", "cache", "none")
FRAME_MS = 16.0


@dataclass(frozen=True)
class BenchPlan:
    window_s: float = 45.0  # typing replayed per trace, from its start, at real pace
    typists: tuple[str, ...] = ("slow", "average", "fast")
    passages: tuple[str, ...] = ("prose", "email", "notes", "code")
    load_typists: int = 200
    load_seconds: float = 15.0
    load_budget_s: float = 75.0  # stop doubling the typists past this much wall time
    load_max_typists: int = 1600
    emulator_profile: str = "haiku"
    connect_ms: float = 0.0  # a new API connection's modelled setup (emulator connect_ms)
    load_profile: str = "fast"
    concurrent_strategies: bool = False  # quick runs only: saves time, skews latency a little
    predictors: tuple[str, ...] = PREDICTOR_ORDER
    accuracy: float = 0.3  # the noisy predictor's P
    strategies: tuple[str, ...] = STRATEGY_ORDER
    oracle_texts: tuple[str, ...] = ()  # a user's passages: traces are typed from them too
    file_passages: int = 4  # how many of the user's passages get traces
    accepting: bool = True  # typists accept matching ghost text
    lead_in_chars: int = 0  # existing document text before each typist's cursor (0: a new one)
    lead_out_chars: int = 0  # and after it, from the next paragraph on (0: typing at the end)

    @classmethod
    def quick(cls, load_typists: int, **changes: Any) -> BenchPlan:
        quick: dict[str, Any] = {
            "window_s": 4.0,
            "passages": ("email",),
            "load_typists": min(load_typists, 10),
            "load_seconds": 2.0,
            "load_budget_s": 0.0,
            "concurrent_strategies": True,
            "predictors": ("noisy",),
            "file_passages": 1,
        }
        return cls(**(quick | changes))


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[k]


def summary_ms(values: Sequence[float]) -> dict:
    r = lambda v: None if v is None else round(v, 1)  # noqa: E731
    return {
        "n": len(values),
        "p50": r(percentile(values, 50)),
        "p95": r(percentile(values, 95)),
        "p99": r(percentile(values, 99)),
    }


# ---------------------------------------------------------------------------------------------
# Watching the engines: which requests were ever shown


class RecordingEngine:
    """Wraps an engine and notes the fate of each request (shown, cancelled) for the report."""

    def __init__(self, inner: Any, log: EngineLog):
        self._inner = inner
        self._log = log
        self._showing: int | None = None  # the request whose text is on screen

    def handle(self, event):
        if isinstance(event, Accept) and self._showing is not None:
            self._log.accepted.add((id(self), self._showing))
        cmds = self._inner.handle(event)
        for c in cmds:
            if isinstance(c, StartRequest):
                self._log.prefixes[(id(self), c.request_id)] = c.prefix
            elif isinstance(c, ShowSuggestion) and c.request_id is not None:
                self._log.shown.add((id(self), c.request_id))
                if c.text:
                    self._showing = c.request_id
            elif isinstance(c, CancelRequest):
                self._log.cancelled.add((id(self), c.request_id))
        return cmds

    def __getattr__(self, name):
        return getattr(self._inner, name)


# A model call is matched to the engine request that made it by the text before the cursor its
# prompt carries. On a long document the prompt carries only a window of it (the last 6 KB or
# more), so the match is on the end of that text.
MATCH_CHARS = 4_096


def _near(prefix: str) -> str:
    return prefix[-MATCH_CHARS:]


@dataclass
class EngineLog:
    prefixes: dict = field(default_factory=dict)
    shown: set = field(default_factory=set)
    cancelled: set = field(default_factory=set)
    accepted: set = field(default_factory=set)
    engines: list = field(default_factory=list)

    def factory(self, strategy: str) -> Callable[[Clock], Any]:
        def build(clock: Clock) -> Any:
            engine = RecordingEngine(make_engine(strategy, clock), self)
            self.engines.append(engine)
            return engine

        return build

    def shown_prefixes(self) -> Counter:
        return Counter(_near(p) for key, p in self.prefixes.items() if key in self.shown)

    def stat(self, name: str) -> int:
        return sum(getattr(e.stats, name, 0) for e in self.engines)

    def fate(self, key: tuple) -> str:
        """What became of one model call: one of CALL_FATES."""
        if key in self.shown:
            return "shown, accepted" if key in self.accepted else "shown, not accepted"
        return "cancelled unseen" if key in self.cancelled else "ran out unseen"

    def keys_by_prefix(self) -> dict[str, list]:
        """The calls' keys by the text before the cursor they asked about (its end), in start
        order."""
        out: dict[str, list] = {}
        for key, prefix in self.prefixes.items():
            out.setdefault(_near(prefix), []).append(key)
        return out


# What became of each model call (issue 26): only the first buys anything.
CALL_FATES = ("shown, accepted", "shown, not accepted", "cancelled unseen", "ran out unseen")


# ---------------------------------------------------------------------------------------------
# Part 1: the strategies


def server_with_engine(settings: Settings, factory: Callable[[Clock], Any]):
    """A real server whose connections drive engines from ``factory(clock)``."""
    from server.runner import ServerHandle

    return ServerHandle(settings, engine_factory=factory)


def lead_in_text(chars: int, passages: Sequence[str], writer: int = 0, typed: str = "") -> str:
    """An existing document of ``chars`` characters (the passages, repeated) that the typing
    continues, so prompts are as long as a normal document's and the prompt cache can apply.
    Each ``writer`` gets a different document, so no typist reads another's cache entry. It is
    made of passages other than ``typed`` (what this writer will type): a document holding the
    text about to be typed lets anything that learns from the document (the offline tier's
    n-grams) read what it is asked to predict. With no other passage, the shipped ones."""
    if chars <= 0 or not passages:
        return ""
    typed = typed.strip()

    def others(texts: Sequence[str]) -> list[str]:
        return [p for p in texts if not typed or (typed not in p and p.strip() not in typed)]

    kept = others(passages) or others(tuple(load_passages().values())) or list(passages)
    text = "\n\n".join(kept) + "\n\n"
    start = (writer * 97) % len(text)
    return (text * (chars // len(text) + 2))[start : start + chars].rstrip() + "\n\n"


def lead_out_text(chars: int, passages: Sequence[str], writer: int = 0, typed: str = "") -> str:
    """The rest of the document after the cursor: a new paragraph, then ``chars`` characters of
    passages other than the typed one (from another place than :func:`lead_in_text`'s)."""
    if chars <= 0 or not passages:
        return ""
    return "\n\n" + lead_in_text(chars, passages, writer + 5, typed).strip()


def where_typed(lead_in: int, lead_out: int) -> str:
    """Where the typing goes, as a report's title says it."""
    where = f"after {lead_in:,} chars of existing text" if lead_in else "into a new document"
    return where + (f" and before {lead_out:,} more" if lead_out else "")


def pick_traces(plan: BenchPlan, predictor: str = "oracle") -> list[Trace]:
    """The traces a run types: the shipped ones, or (with the user's own passages) traces
    generated from the first few of those; the local predictor types a few of them."""
    if plan.oracle_texts:
        traces = [
            generate(text, typist, seed=0, passage=f"file{i + 1}")
            for i, text in enumerate(plan.oracle_texts[: plan.file_passages])
            for typist in plan.typists
        ]
    else:
        traces = [
            t for t in load_traces() if t.typist in plan.typists and t.passage in plan.passages
        ]
    if predictor == "local":
        few = [t for t in traces if (t.typist, t.passage) in LOCAL_TRACES]
        traces = few or traces[:3]
    return traces


def strategies_for(plan: BenchPlan, predictor: str) -> tuple[str, ...]:
    if predictor == "local":
        return tuple(n for n in plan.strategies if n in LOCAL_STRATEGIES or n in ENGINE_VARIANTS)
    return plan.strategies


def trace_window(trace: Trace, seconds: float) -> tuple[Keystroke, ...]:
    return tuple(e for e in trace.events if e.t_ms <= seconds * 1000)


def _useful(prefix: str, text: str, passage: str) -> bool:
    """The suggestion's first word is what the typist went on to type."""
    if not text.strip() or not passage.startswith(prefix):
        return False
    stripped = text.lstrip()
    first = stripped.split(None, 1)[0]
    head = text[: len(text) - len(stripped) + len(first)]
    return passage[len(prefix) :].startswith(head)


async def run_strategy(
    name: str, traces: Sequence[Trace], plan: BenchPlan, predictor: str = "oracle"
) -> dict:
    from ..emulator import Emulator, EmulatorConfig

    log = EngineLog()
    passages = plan.oracle_texts or tuple(load_passages().values())
    windows = [(t, trace_window(t, plan.window_s)) for t in traces]
    lead_ins = [
        lead_in_text(plan.lead_in_chars, passages, i, typed=t.final_text)
        for i, (t, _) in enumerate(windows)
    ]
    lead_outs = [
        lead_out_text(plan.lead_out_chars, passages, i, typed=t.final_text)
        for i, (t, _) in enumerate(windows)
    ]
    cfg = EmulatorConfig(
        profile=plan.emulator_profile,
        seed=0,
        oracle_texts=passages,
        predictor=predictor,
        accuracy=plan.accuracy,
        connect_ms=plan.connect_ms,
        tls=True,  # TLS + HTTP/2 by ALPN, as the API: a cancel resets a stream, not a connection
    )
    started = time.monotonic()
    configured = load_settings()
    async with Emulator(cfg) as emu:
        settings = Settings(
            api_key="bench",
            base_url=emu.base_url,
            ca_file=emu.ca_file,
            offline="statistical",
            max_frames_per_second=1000.0,
            checks="offline",  # the figures are the suggestions'; checks are costed apart
            suggest_model=configured.suggest_model,  # ASSISTANT_SUGGEST_MODEL, config file
            suggest_max_tokens=configured.suggest_max_tokens,
        )
        async with server_with_engine(settings, log.factory(name)) as srv:
            results = await asyncio.gather(
                *(
                    replay(
                        srv.ws_url,
                        srv.token,
                        ev,
                        name=t.name,
                        initial_text=lead_in,
                        suffix=lead_out,
                        typist=AcceptingTypist(lead_in + t.final_text) if plan.accepting else None,
                    )
                    for (t, ev), lead_in, lead_out in zip(windows, lead_ins, lead_outs, strict=True)
                )
            )
        records = [r for r in emu.requests if r.path == "/v1/messages"]
        overruns = emu.predictor_overruns
        connections = emu.connections_opened
        # Calls that waited for their connection's setup: the first on a connection, and on
        # HTTP/2 any that arrived while it was being set up.
        on_new_connection = sum(1 for r in records if r.new_connection)
    out = summarize(
        name,
        [
            (replace(t, final_text=lead_in + t.final_text), r)
            for t, r, lead_in in zip(traces, results, lead_ins, strict=True)
        ],
        records,
        log,
        settings.suggest_model,
        wall_s=time.monotonic() - started,
        typing_seconds=sum(r.typing_s for r in results),
    )
    out["predictor"] = predictor
    out["predictor_label"] = describe_predictor(predictor, plan.accuracy)
    out["replies_later_than_profile"] = overruns
    out["connections_opened"] = connections
    out["model_calls_on_a_new_connection"] = on_new_connection
    return out


def _round(v: float | None, digits: int) -> float | None:
    return None if v is None else round(v, digits)


def usefulness_figures(use: Usefulness, written: int) -> dict:
    """What the writers got, as the report's fields (the built-in bench's and ``--server``'s)."""
    return {
        "typed_keys": use.typed_keys,
        "accept_keys": use.accept_keys,
        "suggestions": use.suggestions,
        "shown": use.shown,
        "accepted": use.accepted,
        "acceptance_rate": round(use.acceptance_rate, 3),
        "rejected": use.rejected,
        "accepted_chars": use.accepted_chars,
        "chars_saved": use.chars_saved,
        "chars_written": written,
        "saved_share": round(use.saved_share(written), 3),
        "pauses": use.pauses,
        "visible_at_pause_share": round(use.visible_at_pause_share, 3),
        "pause_to_visible_ms": summary_ms(use.pause_to_visible_ms),
    }


def summarize(
    name: str,
    runs: list[tuple[Trace, ReplayResult]],
    records: list,
    log: EngineLog,
    model: str,
    wall_s: float = 0.0,
    typing_seconds: float = 0.0,
) -> dict:
    keys = sum(r.keystrokes for _, r in runs)
    typing_hours = typing_seconds / 3600
    visible = [s for _, r in runs for s in r.visible()]
    by_source: dict[str, list[float]] = {}
    for s in visible:
        by_source.setdefault(s.shown_source or "?", []).append(s.visible_ms)
    all_ms = [s.visible_ms for s in visible]
    useful = sum(
        _useful(s.prefix, s.text, t.final_text)
        for t, r in runs
        for s in r.suggestions
        if s.terminal == "done" and s.text
    )
    done_with_text = sum(
        1 for _, r in runs for s in r.suggestions if s.terminal == "done" and s.text
    )
    violations = [v for _, r in runs for v in r.violations]

    # Tokens: everything the emulator streamed is billed; what no one ever saw is stale.
    shown = log.shown_prefixes()
    usage = Usage()
    cost = 0.0  # request by request: a long prompt's tier applies to its own request only
    cancelled_out = unseen_completed_out = 0
    cancelled_calls = 0
    fates = {f: {"calls": 0, "cost_usd": 0.0} for f in CALL_FATES}
    keys_by_prefix = log.keys_by_prefix()
    # What each document's first model call wrote to the prompt cache (the system prompt, for the
    # run's first writer, and the text the document opened with): paid once per document opened,
    # not per hour of typing, so a window of seconds inflates it in the hourly figure.
    opening = 0.0
    opened: set[int] = set()  # the engines (writer documents) whose first call is counted
    for rec in records:
        u = rec.usage or {}
        one = Usage(
            int(u.get("input_tokens", 0)),
            # As the API bills it: in the model's tokens (Haiku 5.5 counts ~30% more than the
            # emulator's pieces), thinking included; a request cut off bills what it streamed.
            int(u.get("output_tokens", rec.tokens_sent)),
            int(u.get("cache_creation_input_tokens", 0)),
            int(u.get("cache_read_input_tokens", 0)),
        )
        usage = usage + one
        written_1h = int((u.get("cache_creation") or {}).get("ephemeral_1h_input_tokens", 0))
        one_cost = cost_usd(model, one, cache_write_1h_tokens=written_1h)
        cost += one_cost
        prefix = requested_prefix(rec.body)
        near = None if prefix is None else _near(prefix)
        asked = keys_by_prefix.get(near or "", [])
        if asked:
            key = asked.pop(0)
            fate = fates[log.fate(key)]
            fate["calls"] += 1
            fate["cost_usd"] += one_cost
            if key[0] not in opened:
                opened.add(key[0])
                opening += cost_usd(
                    model,
                    Usage(cache_creation_input_tokens=one.cache_creation_input_tokens),
                    cache_write_1h_tokens=written_1h,
                )
        if rec.client_disconnected:
            cancelled_calls += 1
            cancelled_out += rec.tokens_sent
        if near is not None and shown[near] > 0:
            shown[near] -= 1
        elif not rec.client_disconnected:
            unseen_completed_out += rec.tokens_sent
    use = total([r.usefulness for _, r in runs])
    written = sum(r.chars_written for _, r in runs)
    return {
        "strategy": name,
        "label": STRATEGY_LABELS.get(name, name),
        "traces": len(runs),
        "keystrokes": keys,
        "typing_seconds": round(typing_hours * 3600, 1),
        "wall_seconds": round(wall_s, 1),
        "displays": len(visible),
        "latency_ms": summary_ms(all_ms),
        "latency_ms_by_source": {k: summary_ms(v) for k, v in sorted(by_source.items())},
        "share_within_16ms": round(sum(ms <= FRAME_MS for ms in all_ms) / len(all_ms), 3)
        if all_ms
        else 0.0,
        "useful_share": round(useful / done_with_text, 3) if done_with_text else 0.0,
        "model_calls": len(records),
        "model_calls_per_100_keys": round(100 * len(records) / keys, 1) if keys else 0.0,
        "cancelled_calls": cancelled_calls,
        "call_fates": {
            f: {"calls": v["calls"], "cost_usd": round(v["cost_usd"], 6)} for f, v in fates.items()
        },
        "billed_tokens": {
            "input": usage.input_tokens,
            "cache_write": usage.cache_creation_input_tokens,
            "cache_read": usage.cache_read_input_tokens,
            "output": usage.output_tokens,
        },
        "stale_output_tokens": cancelled_out + unseen_completed_out,
        "stale_output_tokens_cancelled": cancelled_out,
        "stale_output_tokens_ran_out_unseen": unseen_completed_out,
        "cache_read_tokens": usage.cache_read_input_tokens,
        "engine_cache_hits": log.stat("shown_cache"),
        "typethrough_displays": len(by_source.get("typethrough", [])),
        "cost_usd": round(cost, 6),
        "cost_per_typing_hour_usd": round(cost / typing_hours, 4) if typing_hours else 0.0,
        "opening_write_usd": round(opening, 6),
        "cost_per_typing_hour_after_opening_usd": round((cost - opening) / typing_hours, 4)
        if typing_hours
        else 0.0,
        **usefulness_figures(use, written),
        "model_calls_per_1000_saved": _round(per_thousand_saved(len(records), use.chars_saved), 1),
        "cost_per_1000_saved_usd": _round(per_thousand_saved(cost, use.chars_saved), 5),
        "model": model,
        "status_frames": sum(r.status_frames for _, r in runs),
        "violations": violations[:20],
        "violation_count": len(violations),
    }


# ---------------------------------------------------------------------------------------------
# Part 2: the server under load (server and emulator in a child process)


def _serve_child(profile: str) -> None:
    """Child process: emulator + server; prints ``URL TOKEN``; runs until stdin closes."""
    logging.getLogger("assistant.server").setLevel(logging.ERROR)

    async def main() -> None:
        from server.runner import ServerHandle

        from ..emulator import Emulator, EmulatorConfig

        passages = tuple(load_passages().values())
        cfg = EmulatorConfig(profile=profile, seed=0, oracle_texts=passages, tls=True)
        async with Emulator(cfg) as emu:
            settings = Settings(
                api_key="bench",
                base_url=emu.base_url,
                ca_file=emu.ca_file,
                offline="statistical",
                max_frames_per_second=1000.0,
                max_connections=100_000,
                offline_memory_per_address=False,  # every typist comes from 127.0.0.1
            )
            async with ServerHandle(settings) as srv:
                lag = LoopLag()
                lag.start()
                print(f"{srv.ws_url} {srv.token}", flush=True)
                loop = asyncio.get_running_loop()
                while await loop.run_in_executor(None, sys.stdin.readline):
                    print(json.dumps(lag.take()), flush=True)  # any line: report and reset
                lag.stop()

    asyncio.run(main())


class LoopLag:
    """How late the event loop wakes a 10 ms sleeper: time every callback (a frame to read, a
    keystroke to send) waits behind other work. Sampled in the server and the typists alike."""

    def __init__(self, interval_s: float = 0.01):
        self.interval_s = interval_s
        self.samples: list[float] = []
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            t = loop.time()
            await asyncio.sleep(self.interval_s)
            self.samples.append(max(0.0, (loop.time() - t - self.interval_s) * 1000))

    def take(self) -> dict:
        out, self.samples = summary_ms(self.samples), []
        return out

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


async def _warm_up(url: str, token: str) -> None:
    """One short typist first, so lazy start-up work (word lists, connection pools) is not
    counted as overhead."""
    trace = load_traces()[0]
    initial, part = trace.window(len(trace.events) // 2, 12)
    await replay(url, token, part, initial_text=initial, name="warm-up", time_scale=0.5)


async def _load_step(url: str, token: str, typists: int, plan: BenchPlan, seed: int) -> dict:
    traces = load_traces()
    rng = random.Random(seed)
    jobs = []
    for i in range(typists):
        trace = traces[i % len(traces)]
        start = rng.randrange(0, max(1, len(trace.events) // 2))
        initial, part = trace.window(start, len(trace.events))
        part = tuple(e for e in part if e.t_ms <= plan.load_seconds * 1000)
        jobs.append((f"{trace.name}#{i}", initial, part, rng.uniform(0, 1.0)))

    async def one(name, initial, events, delay):
        await asyncio.sleep(delay)
        return await replay(url, token, events, initial_text=initial, name=name, settle_s=10.0)

    t0 = time.monotonic()
    lag = LoopLag()
    lag.start()
    results = await asyncio.gather(*(one(*j) for j in jobs), return_exceptions=True)
    lag.stop()
    wall = time.monotonic() - t0
    ok = [r for r in results if isinstance(r, ReplayResult)]
    failed = len(results) - len(ok)
    server_ms, client_ms, visible_ms = [], [], []
    keys = terminals = 0
    for r in ok:
        keys += r.keystrokes
        for s in r.suggestions:
            terminals += s.terminal is not None
            if s.terminal == "done" and s.source in NO_MODEL_SOURCES:
                if s.server_latency_ms is not None:
                    server_ms.append(s.server_latency_ms)
                if s.round_trip_ms is not None:
                    client_ms.append(s.round_trip_ms)
            if s.visible_ms is not None:
                visible_ms.append(s.visible_ms)
    violations = sum(len(r.violations) for r in ok)
    return {
        "typists": typists,
        "connections_failed": failed,
        "keystrokes": keys,
        "keystrokes_per_second": round(keys / wall, 1) if wall else 0.0,
        "terminal_share": round(terminals / keys, 4) if keys else 0.0,
        "server_overhead_ms": summary_ms(server_ms),
        "client_round_trip_ms": summary_ms(client_ms),
        "visible_ms_all_sources": summary_ms(visible_ms),
        "typists_loop_lag_ms": lag.take(),
        "violations": violations,
        "wall_seconds": round(wall, 1),
    }


_ROOT = str(Path(__file__).resolve().parents[2])


async def run_load(plan: BenchPlan) -> list[dict]:
    env = dict(os.environ)
    env["PYTHONPATH"] = _ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "assistant.bench",
        "--serve-child",
        plan.load_profile,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    steps: list[dict] = []
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        if not line.strip():
            raise RuntimeError("the load server did not start")
        url, token = line.split()

        async def server_lag() -> dict:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(b"stats\n")
            await proc.stdin.drain()
            return json.loads(await asyncio.wait_for(proc.stdout.readline(), 30))

        await _warm_up(url, token)
        t0 = time.monotonic()
        n = plan.load_typists
        seed = 0
        while n > 0:
            await server_lag()  # reset
            step = await _load_step(url, token, n, plan, seed)
            step["server_loop_lag_ms"] = await server_lag()
            steps.append(step)
            seed += 1
            elapsed = time.monotonic() - t0
            p99 = step["server_overhead_ms"]["p99"] or 0.0
            healthy = step["connections_failed"] == 0 and p99 < 250 and step["violations"] == 0
            n *= 2
            if (
                not healthy
                or n > plan.load_max_typists
                or elapsed + step["wall_seconds"] * 2.2 > plan.load_budget_s
            ):
                break
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
    return steps


# ---------------------------------------------------------------------------------------------
# Report


def _fmt(v: Any, unit: str = "") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.1f}{unit}" if abs(v) >= 1 or v == 0 else f"{v:.3g}{unit}"
    return f"{v:,}{unit}"


def _lat(s: dict | None) -> str:
    if not s or not s.get("n"):
        return "-"
    return f"{_fmt(s['p50'])} / {_fmt(s['p95'])} / {_fmt(s['p99'])}  (n={s['n']})"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.0f} %"


def _p50_p95(s: dict | None) -> str:
    if not s or not s.get("n"):
        return "-"
    return f"{_fmt(s['p50'])} / {_fmt(s['p95'])}"


def _usd(v: float | None) -> str:
    return "-" if v is None else f"${v:.4f}"


def _table(title: str, names: Sequence[str], results: dict, rows: list) -> list[str]:
    cells = [(label, [fn(results[n]) for n in names]) for label, fn in rows]
    width = max(len(label) for label, _ in cells) + 2
    cols = [
        max(len(STRATEGY_LABELS.get(n, n)), *(len(c[1][i]) for c in cells)) + 2
        for i, n in enumerate(names)
    ]
    lines = [
        title,
        "".ljust(width)
        + "".join(STRATEGY_LABELS.get(n, n).rjust(c) for n, c in zip(names, cols, strict=True)),
    ]
    for label, values in cells:
        lines.append(
            label.ljust(width) + "".join(v.rjust(c) for v, c in zip(values, cols, strict=True))
        )
    return lines


# What the writer gets: the first rows of every predictor's table.
HEADLINE_ROWS: list = [
    ("shown / accepted", lambda s: f"{_fmt(s['shown'])} / {_fmt(s['accepted'])}"),
    ("acceptance rate", lambda s: _pct(s["acceptance_rate"])),
    ("characters saved (net of accept keys)", lambda s: _fmt(s["chars_saved"])),
    ("  share of the text written", lambda s: _pct(s["saved_share"])),
    ("rejected (shown, not taken in 10 s)", lambda s: _fmt(s["rejected"])),
    ("pause -> visible ms p50 / p95", lambda s: _p50_p95(s["pause_to_visible_ms"])),
    ("pauses with a suggestion visible", lambda s: _pct(s["visible_at_pause_share"])),
    ("model calls / 100 keys", lambda s: _fmt(s["model_calls_per_100_keys"])),
    ("model calls / 1,000 saved chars", lambda s: _fmt(s["model_calls_per_1000_saved"])),
    ("cost / 1,000 saved chars", lambda s: _usd(s["cost_per_1000_saved_usd"])),
]
DETAIL_ROWS: list = [
    (
        "keys pressed (typed + accept)",
        lambda s: f"{_fmt(s['typed_keys'])} + {_fmt(s['accept_keys'])}",
    ),
    ("accepted characters", lambda s: _fmt(s["accepted_chars"])),
    ("suggestions displayed (frames)", lambda s: _fmt(s["displays"])),
    ("key->visible ms p50/p95/p99", lambda s: _lat(s["latency_ms"])),
    *(
        (f"  from {src}", lambda s, src=src: _lat(s["latency_ms_by_source"].get(src)))
        for src in ("model", "offline", "typethrough", "cache")
    ),
    ("displays within 16 ms", lambda s: f"{100 * s['share_within_16ms']:.0f} %"),
    ("first word right", lambda s: f"{100 * s['useful_share']:.0f} %"),
    ("provider-degraded notices", lambda s: _fmt(s["status_frames"])),
    ("calls cancelled mid-stream", lambda s: _fmt(s["cancelled_calls"])),
    (
        "  calls on a new connection",
        lambda s: _fmt(s.get("model_calls_on_a_new_connection")),
    ),
    (
        "billed in / out tokens",
        lambda s: f"{_fmt(s['billed_tokens']['input'])} / {_fmt(s['billed_tokens']['output'])}",
    ),
    ("stale out tokens", lambda s: _fmt(s["stale_output_tokens"])),
    ("  cut off by a cancel", lambda s: _fmt(s["stale_output_tokens_cancelled"])),
    ("  ran out, never shown", lambda s: _fmt(s["stale_output_tokens_ran_out_unseen"])),
    ("prompt-cache read tokens", lambda s: _fmt(s["cache_read_tokens"])),
    ("engine cache hits", lambda s: _fmt(s["engine_cache_hits"])),
    ("cost per typing hour", lambda s: f"${s['cost_per_typing_hour_usd']:.3f}"),
    (
        "  without each document's opening write",
        lambda s: f"${s['cost_per_typing_hour_after_opening_usd']:.3f}",
    ),
    (
        "  opening write per document",
        lambda s: f"${s['opening_write_usd'] / s['traces']:.5f}" if s["traces"] else "-",
    ),
    (
        "  input tokens uncached / read / written",
        lambda s: " / ".join(
            _fmt(s["billed_tokens"][k]) for k in ("input", "cache_read", "cache_write")
        ),
    ),
    *(
        (
            f"calls {fate}, share of cost",
            lambda s, fate=fate: (
                f"{_fmt(s['call_fates'][fate]['calls'])}, "
                f"{_pct(s['call_fates'][fate]['cost_usd'] / s['cost_usd'] if s['cost_usd'] else 0)}"
            ),
        )
        for fate in CALL_FATES
    ),
    ("replies later than the profile", lambda s: _fmt(s.get("replies_later_than_profile", 0))),
    ("guarantee violations", lambda s: _fmt(s["violation_count"])),
]


def format_report(report: dict) -> str:
    plan = report["plan"]
    lines: list[str] = []
    runs = report.get("runs") or {
        report.get("predictor", "oracle"): {
            "label": report.get("predictor", "oracle"),
            "strategies": report["strategies"],
            "traces": plan["traces"],
        }
    }
    for run in runs.values():
        if lines:
            lines.append("")
        if run.get("skipped"):
            lines.append(f"Predictor {run['label']}: skipped ({run['skipped']})")
            continue
        results = run["strategies"]
        names = [n for n in REPORT_ORDER if n in results]
        accepting = (
            "accepting matching ghosts"
            if plan.get("accepting_typists", True)
            else "typing every key (never accepting)"
        )
        where = where_typed(plan.get("lead_in_chars", 0), plan.get("lead_out_chars", 0))
        title = (
            f"Predictor {run['label']}: {run['traces']} traces, first {plan['window_s']:g} s of "
            f"each at real pace {where}, typists {accepting}; emulator "
            f"'{plan['emulator_profile']}' profile, model {report['model']} prices"
        )
        lines += _table(title, names, results, HEADLINE_ROWS + DETAIL_ROWS)
    load = report.get("load") or []
    if load:
        lines += [
            "",
            f"Server under load (child process, emulator '{plan['load_profile']}' profile, "
            f"{plan['load_seconds']:g} s of typing per typist); overhead = suggest read -> done "
            "sent, on suggestions served with no model call:",
            "typists  keys/s  server p50/p99 ms  round trip p50/p99 ms  server loop lag p50/p99"
            "  typists' loop lag p99  failed",
        ]
        for st in load:
            so, rt = st["server_overhead_ms"], st["client_round_trip_ms"]
            sl, cl = st.get("server_loop_lag_ms") or {}, st["typists_loop_lag_ms"]
            lines.append(
                f"{st['typists']:>7}  {st['keystrokes_per_second']:>6}  "
                f"{_fmt(so['p50']):>7} / {_fmt(so['p99']):<7}  "
                f"{_fmt(rt['p50']):>9} / {_fmt(rt['p99']):<9}  "
                f"{_fmt(sl.get('p50')):>11} / {_fmt(sl.get('p99')):<9}  "
                f"{_fmt(cl['p99']):>20}  {st['connections_failed']:>6}"
            )
    m = report["machine"]
    lines.append(
        f"\n(total wall time {report['wall_seconds']:.0f} s on {m['cpus']} CPUs; load average "
        f"before {m['load_average_before']}, after {m['load_average_after']})"
    )
    return "\n".join(lines)


def headline_markdown(report: dict) -> str:
    """The headline table of docs/performance.md: one row per strategy, the first predictor's
    figures (noisy at P = 0.3 by default) and the others' beside them."""
    runs = {k: r for k, r in report["runs"].items() if r["strategies"]}
    if not runs:
        return ""
    first, *others = runs
    head = [
        f"{runs[first]['label']}: accepted / shown",
        "chars saved (share)",
        "pause -> visible p50 / p95 ms",
        "pauses with a suggestion",
        "calls / 100 keys",
        "$ / 1,000 saved chars",
    ]
    for name in others:
        label = runs[name]["label"]
        head += [
            f"{label}: chars saved (share)",
            "pause -> visible p50 / p95 ms",
            "$ / 1,000 saved",
        ]

    def saved(s: dict) -> str:
        return f"{_fmt(s['chars_saved'])} ({_pct(s['saved_share'])})"

    lines = [
        "| strategy | " + " | ".join(head) + " |",
        "|---" * (len(head) + 1) + "|",
    ]
    for strategy in REPORT_ORDER:
        s = runs[first]["strategies"].get(strategy)
        if s is None:
            continue
        cells = [
            f"{_fmt(s['accepted'])} / {_fmt(s['shown'])} ({_pct(s['acceptance_rate'])})",
            saved(s),
            _p50_p95(s["pause_to_visible_ms"]),
            _pct(s["visible_at_pause_share"]),
            _fmt(s["model_calls_per_100_keys"]),
            _usd(s["cost_per_1000_saved_usd"]),
        ]
        for name in others:
            o = runs[name]["strategies"].get(strategy)
            cells += (
                [saved(o), _p50_p95(o["pause_to_visible_ms"]), _usd(o["cost_per_1000_saved_usd"])]
                if o
                else ["not run"] * 3
            )
        lines.append(f"| {STRATEGY_LABELS.get(strategy, strategy)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


async def run_predictor(plan: BenchPlan, predictor: str) -> dict:
    """Every strategy of ``plan`` under one predictor."""
    label = describe_predictor(predictor, plan.accuracy)
    if predictor == "local":
        problem = await local_model_problem()
        if problem:
            return {"label": label, "skipped": problem, "strategies": {}, "traces": 0}
    traces = pick_traces(plan, predictor)
    names = strategies_for(plan, predictor)
    if plan.concurrent_strategies:
        done = await asyncio.gather(*(run_strategy(n, traces, plan, predictor) for n in names))
        results = dict(zip(names, done, strict=True))
    else:
        results = {n: await run_strategy(n, traces, plan, predictor) for n in names}
    return {
        "label": label,
        "strategies": results,
        "traces": len(traces),
        "trace_names": [t.name for t in traces],
    }


_LOCAL_PROBE = """
import asyncio
from assistant.emulator.predictors import LocalPredictor
print(repr(asyncio.run(LocalPredictor().continuation("Dear Sam, thanks for", "", 4))))
"""


async def local_model_problem() -> str:
    """Why the local predictor cannot run here ("" when it can). The model is tried once in a
    child process first: a broken native build crashes that process, not the benchmark."""
    from ..emulator.predictors import LOCAL_MISSING, LocalPredictor

    if not LocalPredictor.available():
        return LOCAL_MISSING
    env = dict(os.environ)
    env["PYTHONPATH"] = _ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _LOCAL_PROBE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        _, err = await asyncio.wait_for(proc.communicate(), 180)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return "the local model did not answer a probe request within 180 s"
    if proc.returncode is not None and proc.returncode < 0:
        name = signal.Signals(-proc.returncode).name
        return f"the local model crashed on a probe request ({name}); not measured"
    if proc.returncode != 0:
        last = (err.decode(errors="replace").strip().splitlines() or [""])[-1]
        return f"the local model failed a probe request (exit {proc.returncode}): {last[:200]}"
    return ""


async def run_bench(plan: BenchPlan, strategies: Sequence[str] | None = None) -> dict:
    if strategies is not None:
        plan = replace(plan, strategies=tuple(strategies))
    t0 = time.monotonic()
    load_before = _loadavg()
    runs = {p: await run_predictor(plan, p) for p in plan.predictors}
    load = await run_load(plan) if plan.load_typists > 0 else []
    measured = [r for r in runs.values() if r["strategies"]]
    first = measured[0] if measured else {"strategies": {}, "traces": 0}
    model = (
        next(iter(first["strategies"].values()))["model"]
        if first["strategies"]
        else Settings().suggest_model
    )
    return {
        "command": "assistant bench " + " ".join(sys.argv[2:])
        if sys.argv[1:2] == ["bench"]
        else "",
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_before": load_before,
            "load_average_after": _loadavg(),
        },
        "plan": {
            "traces": first["traces"],
            "trace_names": first.get("trace_names", []),
            "window_s": plan.window_s,
            "emulator_profile": plan.emulator_profile,
            "connect_ms": plan.connect_ms,
            "load_profile": plan.load_profile,
            "load_seconds": plan.load_seconds,
            "predictors": list(plan.predictors),
            "accuracy": plan.accuracy,
            "accepting_typists": plan.accepting,
            "lead_in_chars": plan.lead_in_chars,
            "lead_out_chars": plan.lead_out_chars,
        },
        "model": model,
        # The first predictor measured (noisy at P = 0.3 by default): the headline.
        "predictor": next((p for p in plan.predictors if runs[p]["strategies"]), None),
        "strategies": first["strategies"],
        "runs": runs,
        "load": load,
        "wall_seconds": round(time.monotonic() - t0, 1),
    }
