"""Real runs shared by the latency tests, one per predictor: the server on loopback with the real
engine, the emulator with the "haiku" latency profile and the passages as oracle texts, and three
typists (slow, average, fast) typing slices of their traces at once, at their recorded pace.

- ``latency_run``: the always-right ``oracle`` with typists who type every key (no accepting), so
  type-through carries the suggestions: the budget for keystroke -> visible, the server's own
  overhead and model calls.
- ``predictor_run`` / ``latency_runs``: per chosen predictor, typists who read the ghost text and
  accept it when it is what they were going to type: pause -> visible, acceptance, guarantees.
  Default ``noisy`` (first word right with probability P = 0.3); choose with environment
  variables, e.g. ``ASSISTANT_LATENCY_PREDICTORS=noisy,oracle,local`` and
  ``ASSISTANT_LATENCY_ACCURACY=0.5``.

All runs type at the same time (the typists are few; together the suite takes one run's time)."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

import pytest

from assistant.bench.replay import AcceptingTypist, ReplayResult, replay
from assistant.bench.traces import Keystroke, Trace, load_passages, load_traces
from assistant.config import Settings
from assistant.emulator import Emulator, EmulatorConfig, RequestRecord
from assistant.emulator.options import OptionError, parse_name_list
from assistant.emulator.predictors import PREDICTORS, describe_predictor
from assistant.suggest.usefulness import Usefulness, total

# (typist, passage, first keystroke, seconds of typing): ~40 s each, replayed concurrently, so
# the whole run takes under a minute of wall time. Starting a little into each passage gives the
# model some context, as in real writing.
SLICES = (
    ("slow", "notes", 20, 40.0),
    ("average", "email", 30, 40.0),
    ("fast", "prose", 40, 40.0),
)


def _chosen() -> tuple[tuple[str, ...], float]:
    text = os.environ.get("ASSISTANT_LATENCY_PREDICTORS", "noisy")
    try:
        names = parse_name_list(text, PREDICTORS, "predictor")
    except OptionError as exc:
        raise pytest.UsageError(f"ASSISTANT_LATENCY_PREDICTORS: {exc}") from None
    return names, float(os.environ.get("ASSISTANT_LATENCY_ACCURACY", "0.3"))


LATENCY_PREDICTORS, LATENCY_ACCURACY = _chosen()


@dataclass
class LatencyRun:
    predictor: str
    traces: dict[str, Trace]
    results: dict[str, ReplayResult]
    records: list[RequestRecord]  # the emulator's /v1/messages requests

    @property
    def label(self) -> str:
        return describe_predictor(self.predictor, LATENCY_ACCURACY)

    @property
    def keystrokes(self) -> int:
        return sum(r.keystrokes for r in self.results.values())

    @property
    def usefulness(self) -> Usefulness:
        return total([r.usefulness for r in self.results.values()])

    def suggestions(self):
        return [s for r in self.results.values() for s in r.suggestions]


def slice_of(trace: Trace, start: int, seconds: float) -> tuple[str, tuple[Keystroke, ...]]:
    before, part = trace.window(start, len(trace.events))
    return before, tuple(e for e in part if e.t_ms <= seconds * 1000)


async def _run(predictor: str, accepting: bool) -> LatencyRun:
    from server.runner import ServerHandle

    traces = {t.name: t for t in load_traces()}
    passages = tuple(load_passages().values())
    cfg = EmulatorConfig(
        profile="haiku",
        seed=0,
        oracle_texts=passages,
        predictor=predictor,
        accuracy=LATENCY_ACCURACY,
    )
    async with Emulator(cfg) as emu:
        settings = Settings(api_key="x", base_url=emu.base_url, offline="statistical")
        async with ServerHandle(settings) as srv:
            jobs = {}
            for typist, passage, start, seconds in SLICES:
                name = f"{typist}-{passage}"
                before, events = slice_of(traces[name], start, seconds)
                jobs[name] = replay(
                    srv.ws_url,
                    srv.token,
                    events,
                    initial_text=before,
                    name=name,
                    typist=AcceptingTypist(traces[name].final_text) if accepting else None,
                )
            done = await asyncio.gather(*jobs.values())
        records = [r for r in emu.requests if r.path == "/v1/messages"]
    return LatencyRun(predictor, traces, dict(zip(jobs, done, strict=True)), records)


async def _run_all() -> tuple[LatencyRun, dict[str, LatencyRun]]:
    from assistant.bench.suggestions import local_model_problem

    names = [p for p in LATENCY_PREDICTORS if p != "local" or not await local_model_problem()]
    through, *runs = await asyncio.gather(
        _run("oracle", accepting=False), *(_run(p, accepting=True) for p in names)
    )
    return through, dict(zip(names, runs, strict=True))


@pytest.fixture(scope="session")
def _all_runs() -> tuple[LatencyRun, dict[str, LatencyRun]]:
    return asyncio.run(_run_all())


@pytest.fixture(scope="session")
def latency_run(_all_runs) -> LatencyRun:
    """The oracle, every key typed: type-through's upper bound."""
    return _all_runs[0]


@pytest.fixture(scope="session")
def latency_runs(_all_runs) -> dict[str, LatencyRun]:
    """Typists who accept, one run per chosen predictor."""
    return _all_runs[1]


@pytest.fixture(params=LATENCY_PREDICTORS)
def predictor_run(request, latency_runs) -> LatencyRun:
    if request.param not in latency_runs:
        pytest.skip(f"predictor {request.param}: the local model is not usable here")
    return latency_runs[request.param]
