"""The comparison strategies, driven event by event with a hand-moved clock."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assistant.bench.strategies import (
    ContinueConfig,
    ContinueStyleEngine,
    CopilotStyleEngine,
    NaiveEngine,
    make_engine,
)
from assistant.providers.base import ProviderError, ProviderErrorKind
from assistant.suggest.engine import (
    CancelRequest,
    Closed,
    CursorMoved,
    Dismiss,
    Edit,
    ManualClock,
    ProviderChunk,
    ProviderDone,
    ProviderFailed,
    ShowSuggestion,
    StartRequest,
    SuggestionEngine,
    Tick,
)


def of(cmds, kind):
    return [c for c in cmds if isinstance(c, kind)]


def finals(cmds):
    return [c for c in cmds if isinstance(c, ShowSuggestion) and c.final]


def type_text(engine, clock, text, start_version=1, gap=0.1, prefix=""):
    cmds = []
    for i, ch in enumerate(text):
        prefix += ch
        cmds += engine.handle(Edit(prefix, "", start_version + i))
        clock.advance(gap)
        cmds += engine.handle(Tick())
    return cmds


# -- naive ----------------------------------------------------------------------------------------


def test_naive_starts_a_request_on_every_keystroke_and_never_cancels():
    clock = ManualClock(10.0)
    engine = NaiveEngine(clock=clock)
    cmds = type_text(engine, clock, "Hello wor", gap=0.05)
    starts = of(cmds, StartRequest)
    assert len(starts) == 9
    assert [s.prefix for s in starts][-1] == "Hello wor"
    assert of(cmds, CancelRequest) == []
    assert engine.inflight_requests == [s.request_id for s in starts]


def test_naive_shows_only_the_latest_version_but_every_request_runs_out():
    clock = ManualClock(10.0)
    engine = NaiveEngine(clock=clock)
    cmds = type_text(engine, clock, "Hi t")
    first, *_, last = of(cmds, StartRequest)
    # The old request streams and finishes: nothing shown for it, no terminal (already closed).
    assert engine.handle(ProviderChunk(first.request_id, "ello")) == []
    assert engine.handle(ProviderDone(first.request_id)) == []
    out = engine.handle(ProviderChunk(last.request_id, "here you are"))
    assert [c.text for c in out] == ["here you are"] and not out[0].final
    (done,) = finals(engine.handle(ProviderDone(last.request_id)))
    assert (done.version, done.text, done.source) == (4, "here you are", "model")
    assert engine.stats.requests_completed == 2


def test_naive_closes_each_superseded_version():
    clock = ManualClock()
    engine = NaiveEngine(clock=clock)
    cmds = type_text(engine, clock, "abc")
    assert [c.version for c in of(cmds, Closed)] == [1, 2]
    assert engine.open_version == 3


def test_naive_failure_of_an_old_request_is_silent():
    clock = ManualClock()
    engine = NaiveEngine(clock=clock)
    cmds = type_text(engine, clock, "ab")
    old, new = of(cmds, StartRequest)
    err = ProviderError(ProviderErrorKind.OVERLOADED, "busy")
    assert engine.handle(ProviderFailed(old.request_id, err)) == []
    out = engine.handle(ProviderFailed(new.request_id, err))
    assert [c.version for c in of(out, Closed)] == [2]


# -- Continue-style --------------------------------------------------------------------------------


def test_continue_waits_the_fixed_debounce_even_after_a_space():
    clock = ManualClock(5.0)
    engine = ContinueStyleEngine(clock=clock)
    assert of(engine.handle(Edit("Dear team, ", "", 1)), StartRequest) == []
    assert engine.next_deadline == pytest.approx(5.35)
    clock.advance(0.349)
    assert engine.handle(Tick()) == []
    clock.advance(0.002)
    (start,) = of(engine.handle(Tick()), StartRequest)
    assert start.prefix == "Dear team, "


def test_continue_debounce_restarts_on_every_keystroke():
    clock = ManualClock()
    engine = ContinueStyleEngine(clock=clock)
    cmds = type_text(engine, clock, "typing fast", gap=0.2)  # 200 ms < 350 ms between keys
    assert of(cmds, StartRequest) == []
    clock.advance(0.15)
    (start,) = of(engine.handle(Tick()), StartRequest)
    assert start.prefix == "typing fast"


def test_continue_aborts_the_request_in_flight_on_a_keystroke():
    clock = ManualClock()
    engine = ContinueStyleEngine(ContinueConfig(debounce_ms=350), clock=clock)
    engine.handle(Edit("The ", "", 1))
    clock.advance(0.4)
    (start,) = of(engine.handle(Tick()), StartRequest)
    engine.handle(ProviderChunk(start.request_id, "quick"))
    out = engine.handle(Edit("The q", "", 2))
    assert of(out, CancelRequest) == [CancelRequest(start.request_id, "superseded")]
    assert of(out, Closed) == [Closed(1, "cancelled", "superseded")]
    # Even though "q" matches what was streaming: no type-through in this strategy.
    assert engine.handle(ProviderDone(start.request_id)) == []
    assert engine.inflight_request is None


def test_continue_shows_a_suggestion_only_when_complete():
    clock = ManualClock()
    engine = ContinueStyleEngine(clock=clock)
    engine.handle(Edit("Thanks for ", "", 1))
    clock.advance(0.35)
    (start,) = of(engine.handle(Tick()), StartRequest)
    assert engine.handle(ProviderChunk(start.request_id, "the quick")) == []
    assert engine.handle(ProviderChunk(start.request_id, " reply.")) == []
    clock.advance(0.3)
    (done,) = finals(engine.handle(ProviderDone(start.request_id)))
    assert (done.text, done.source) == ("the quick reply.", "model")
    assert done.latency_ms == pytest.approx(650)


def test_continue_cache_hits_on_the_exact_prefix_only():
    clock = ManualClock()
    engine = ContinueStyleEngine(clock=clock)
    engine.handle(Edit("Thanks for ", "", 1))
    clock.advance(0.35)
    (start,) = of(engine.handle(Tick()), StartRequest)
    engine.handle(ProviderChunk(start.request_id, "the reply."))
    engine.handle(ProviderDone(start.request_id))
    # Typing the start of the suggestion is not an exact prefix hit: it debounces and asks.
    out = engine.handle(Edit("Thanks for t", "", 2))
    assert finals(out) == [] and engine.next_deadline is not None
    # Backspacing to the cached prefix is a hit, served at once with no request.
    (hit,) = finals(engine.handle(Edit("Thanks for ", "", 3)))
    assert (hit.text, hit.source, hit.version) == ("the reply.", "cache", 3)
    assert engine.next_deadline is None
    assert engine.stats.requests_started == 1


def test_continue_dismiss_aborts_and_closes():
    clock = ManualClock()
    engine = ContinueStyleEngine(clock=clock)
    engine.handle(Edit("Hello ", "", 1))
    clock.advance(0.4)
    (start,) = of(engine.handle(Tick()), StartRequest)
    out = engine.handle(Dismiss())
    assert of(out, CancelRequest) == [CancelRequest(start.request_id, "client")]
    assert of(out, Closed) == [Closed(1, "cancelled", "client")]
    assert engine.handle(CursorMoved("Hel", "lo ")) != []  # clears; nothing left open


def test_make_engine_builds_each_strategy():
    assert isinstance(make_engine("naive"), NaiveEngine)
    assert isinstance(make_engine("continue"), ContinueStyleEngine)
    assert isinstance(make_engine("copilot"), CopilotStyleEngine)
    assert isinstance(make_engine("ours"), SuggestionEngine)
    with pytest.raises(ValueError):
        make_engine("psychic")


# -- the shared guarantees -------------------------------------------------------------------------

actions = st.lists(
    st.one_of(
        st.tuples(st.just("type"), st.sampled_from("ab .")),
        st.tuples(st.just("wait"), st.floats(0.0, 0.6)),
        st.tuples(st.just("chunk"), st.sampled_from(["x", " y", "z."])),
        st.just(("done",)),
        st.just(("fail",)),
        st.just(("dismiss",)),
    ),
    max_size=40,
)


@pytest.mark.parametrize("name", ["naive", "continue", "copilot"])
@settings(max_examples=150, deadline=None)
@given(steps=actions)
def test_one_terminal_per_version_and_nothing_stale(name, steps):
    clock = ManualClock()
    engine = make_engine(name, clock)
    version, prefix = 0, ""
    started: list[int] = []
    terminal: dict[int, int] = {}
    cmds_all = []

    def run(cmds):
        for c in cmds:
            if isinstance(c, StartRequest):
                started.append(c.request_id)
            if isinstance(c, ShowSuggestion):
                assert c.version == version, "shown for a version that is not the latest"
            if (isinstance(c, ShowSuggestion) and c.final) or isinstance(c, Closed):
                terminal[c.version] = terminal.get(c.version, 0) + 1
        cmds_all.extend(cmds)

    for step in steps:
        if step[0] == "type":
            version += 1
            prefix += step[1]
            run(engine.handle(Edit(prefix, "", version)))
        elif step[0] == "wait":
            clock.advance(step[1])
            run(engine.handle(Tick()))
        elif started and step[0] == "chunk":
            run(engine.handle(ProviderChunk(started[-1], step[1])))
        elif started and step[0] == "done":
            run(engine.handle(ProviderDone(started[-1])))
        elif started and step[0] == "fail":
            err = ProviderError(ProviderErrorKind.NETWORK)
            run(engine.handle(ProviderFailed(started[-1], err)))
        elif step[0] == "dismiss":
            run(engine.handle(Dismiss()))
    assert all(n == 1 for n in terminal.values())
    open_version = engine.open_version
    for v in range(1, version + 1):
        assert terminal.get(v, 0) == (0 if v == open_version else 1), v


# -- Copilot-style -------------------------------------------------------------------------------


def copilot_shown(engine, clock, prefix, text, version, suffix=""):
    """Type ``prefix`` as one edit, let the 15 ms pass, and finish its request with ``text``."""
    engine.handle(Edit(prefix, suffix, version))
    clock.advance(0.02)
    (start,) = engine.handle(Tick())
    engine.handle(ProviderChunk(start.request_id, text))
    return engine.handle(ProviderDone(start.request_id))


def test_copilot_asks_after_15_ms_and_any_change_cancels_the_request():
    clock = ManualClock(5.0)
    engine = CopilotStyleEngine(clock=clock)
    assert of(engine.handle(Edit("Hello", "", 1)), StartRequest) == []
    assert engine.next_deadline == pytest.approx(5.015)
    clock.advance(0.016)
    (start,) = engine.handle(Tick())
    cmds = engine.handle(Edit("Hello ", "", 2))
    assert [c.request_id for c in of(cmds, CancelRequest)] == [start.request_id]
    assert [c.version for c in of(cmds, Closed)] == [1]


def test_copilot_cache_needs_the_same_prefix_and_the_same_suffix():
    clock = ManualClock(5.0)
    engine = CopilotStyleEngine(clock=clock)
    copilot_shown(engine, clock, "Dear ", "Sam", 1, suffix="\nBest")
    engine.handle(Edit("Dear x", "\nBest", 2))  # away from the suggestion
    cmds = engine.handle(Edit("Dear ", "\nBest", 3))
    assert [(c.source, c.text) for c in finals(cmds)] == [("cache", "Sam")]
    cmds = engine.handle(Edit("Dear ", "\nCheers", 4))  # same prefix, another suffix: ask
    assert finals(cmds) == [] and engine.next_deadline is not None


def test_copilot_prefetch_is_dropped_when_the_writer_leaves_the_suggestion():
    clock = ManualClock(5.0)
    engine = CopilotStyleEngine(clock=clock)
    _, prefetch = copilot_shown(engine, clock, "Dear ", "Sam", 1)
    assert prefetch.prefix == "Dear Sam"
    cmds = engine.handle(Edit("Dear B", "", 2))
    assert [c.request_id for c in of(cmds, CancelRequest)] == [prefetch.request_id]
    assert engine.inflight_requests == []
