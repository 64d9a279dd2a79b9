"""The suggestion engine, driven event by event with a hand-moved clock."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assistant.pricing import Usage
from assistant.providers.base import ProviderError, ProviderErrorKind
from assistant.suggest.engine import (
    Accept,
    CancelRequest,
    ClearSuggestion,
    Closed,
    CursorMoved,
    Dismiss,
    Edit,
    EngineConfig,
    ManualClock,
    ProviderChunk,
    ProviderDone,
    ProviderFailed,
    ShowSuggestion,
    StartRequest,
    SuggestionEngine,
    Tick,
)


def make(**cfg) -> tuple[SuggestionEngine, ManualClock]:
    clock = ManualClock(100.0)
    return SuggestionEngine(EngineConfig(**cfg), clock=clock), clock


def of(cmds, kind):
    return [c for c in cmds if isinstance(c, kind)]


def finals(cmds):
    return [c for c in cmds if isinstance(c, ShowSuggestion) and c.final]


def complete(engine, rid, text, **done):
    out = engine.handle(ProviderChunk(rid, text))
    return out + engine.handle(ProviderDone(rid, **done))


def test_word_boundary_starts_a_request_at_once():
    engine, _ = make()
    cmds = engine.handle(Edit("Dear team, ", "", 1))
    (start,) = of(cmds, StartRequest)
    assert (start.version, start.prefix) == (1, "Dear team, ")


def test_mid_word_waits_for_the_debounce_then_starts():
    engine, clock = make(debounce_min_ms=40, debounce_max_ms=150)
    assert of(engine.handle(Edit("Dear te", "", 1)), StartRequest) == []
    assert engine.next_deadline is not None
    clock.advance(0.010)
    assert engine.handle(Tick()) == []
    clock.now = engine.next_deadline
    (start,) = of(engine.handle(Tick()), StartRequest)
    assert start.prefix == "Dear te"


def test_fast_typing_shortens_the_wait_and_slow_typing_lengthens_it():
    fast, fclock = make(debounce_min_ms=25, debounce_max_ms=150)
    slow, sclock = make(debounce_min_ms=25, debounce_max_ms=150)
    for i in range(10):
        fast.handle(Edit("x" + "abcdefghij"[: i + 1], "", i + 1))
        fclock.advance(0.050)
        slow.handle(Edit("x" + "abcdefghij"[: i + 1], "", i + 1))
        sclock.advance(0.400)
    assert fast.debounce_ms("xab") < 60
    assert slow.debounce_ms("xab") == 150


def test_suggestion_streams_then_closes_its_version():
    engine, clock = make()
    (start,) = of(engine.handle(Edit("The meeting is ", "", 1)), StartRequest)
    clock.advance(0.3)
    shown = engine.handle(ProviderChunk(start.request_id, "moved to"))
    assert shown == [ShowSuggestion(1, "moved to", final=False, request_id=start.request_id)]
    more = engine.handle(ProviderChunk(start.request_id, " Friday."))
    assert more[0].text == "moved to Friday." and not more[0].final
    (done,) = engine.handle(ProviderDone(start.request_id, Usage(10, 4), model="m", source="model"))
    assert done.final and done.text == "moved to Friday." and done.source == "model"
    assert done.usage == Usage(10, 4) and done.latency_ms == pytest.approx(300)
    assert engine.open_version is None


def test_newer_edit_cancels_a_useless_request_and_closes_the_old_version():
    engine, _ = make()
    (start,) = of(engine.handle(Edit("Hello ", "", 1)), StartRequest)
    engine.handle(ProviderChunk(start.request_id, "world"))
    cmds = engine.handle(Edit("Hello x", "", 2))
    assert Closed(1, "cancelled", "superseded") in cmds
    assert CancelRequest(start.request_id, "superseded") in cmds  # at once, by default
    # Late output of the cancelled request is never shown.
    assert engine.handle(ProviderChunk(start.request_id, " again")) == []
    assert engine.handle(ProviderDone(start.request_id)) == []


def test_with_keep_request_over_typo_a_useless_request_runs_until_the_new_one_starts():
    engine, clock = make(keep_request_over_typo=True)
    (start,) = of(engine.handle(Edit("Hello ", "", 1)), StartRequest)
    engine.handle(ProviderChunk(start.request_id, "world"))
    cmds = engine.handle(Edit("Hello x", "", 2))
    assert Closed(1, "cancelled", "superseded") in cmds
    # Mid-word: the useless request runs on until the new one starts (a backspace may save it).
    assert of(cmds, CancelRequest) == [] and of(cmds, ShowSuggestion) == []
    clock.now = engine.next_deadline
    cmds = engine.handle(Tick())
    assert cmds[0] == CancelRequest(start.request_id, "superseded")
    assert of(cmds, StartRequest)[0].prefix == "Hello x"
    assert engine.handle(ProviderChunk(start.request_id, " again")) == []
    assert engine.handle(ProviderDone(start.request_id)) == []


def test_type_through_a_finished_suggestion_needs_no_request():
    engine, _ = make()
    (start,) = of(engine.handle(Edit("See you ", "", 1)), StartRequest)
    complete(engine, start.request_id, "tomorrow morning.")
    cmds = engine.handle(Edit("See you tom", "", 2))
    assert of(cmds, StartRequest) == [] and of(cmds, CancelRequest) == []
    (f,) = finals(cmds)
    assert (f.version, f.text, f.source) == (2, "orrow morning.", "typethrough")


def test_type_through_while_streaming_keeps_the_request_for_the_new_version():
    engine, _ = make()
    (start,) = of(engine.handle(Edit("See you ", "", 1)), StartRequest)
    engine.handle(ProviderChunk(start.request_id, "tomor"))
    cmds = engine.handle(Edit("See you to", "", 2))
    assert of(cmds, CancelRequest) == [] and of(cmds, StartRequest) == []
    assert ShowSuggestion(2, "mor", final=False, request_id=start.request_id) in cmds
    (f,) = finals(complete(engine, start.request_id, "row."))
    assert (f.version, f.text, f.source) == (2, "morrow.", "model")


def test_typing_ahead_of_an_empty_stream_waits_then_gives_up_when_it_diverges():
    engine, _ = make()
    (start,) = of(engine.handle(Edit("Thanks ", "", 1)), StartRequest)
    assert of(engine.handle(Edit("Thanks f", "", 2)), CancelRequest) == []
    cmds = engine.handle(ProviderChunk(start.request_id, "again"))
    assert CancelRequest(start.request_id, "superseded") in cmds
    assert of(cmds, ShowSuggestion) == []


def test_backspace_and_retype_restore_from_cache_without_a_request():
    engine, _ = make()
    (start,) = of(engine.handle(Edit("Kind regards,", "", 1)), StartRequest)
    complete(engine, start.request_id, " Anna")
    (f,) = finals(engine.handle(Edit("Kind regards", "", 2)))  # backspace
    assert (f.text, f.source) == (", Anna", "cache")  # recalled at once
    cmds = engine.handle(Edit("Kind regards,", "", 3))
    assert of(cmds, StartRequest) == []
    (f,) = finals(cmds)
    assert (f.text, f.source) == (" Anna", "typethrough")


def test_cache_serves_a_suggestion_the_user_has_partly_typed_again():
    engine, _ = make()
    (start,) = of(engine.handle(Edit("Best ", "", 1)), StartRequest)
    complete(engine, start.request_id, "wishes to all")
    engine.handle(Edit("Better ", "", 2))
    cmds = engine.handle(Edit("Best wi", "", 3))
    (f,) = finals(cmds)
    assert (f.text, f.source) == ("shes to all", "cache")


def test_typing_the_whole_suggestion_asks_for_the_next_one():
    engine, _ = make()
    (start,) = of(engine.handle(Edit("One ", "", 1)), StartRequest)
    complete(engine, start.request_id, "two")
    cmds = engine.handle(Edit("One two ", "", 2))
    assert len(of(cmds, StartRequest)) == 1


def test_provider_error_closes_the_version_with_the_error():
    engine, _ = make()
    (start,) = of(engine.handle(Edit("Hi ", "", 1)), StartRequest)
    err = ProviderError(ProviderErrorKind.RATE_LIMITED, "slow down", retry_after=3)
    cmds = engine.handle(ProviderFailed(start.request_id, err))
    (closed,) = of(cmds, Closed)
    assert (closed.version, closed.outcome, closed.error) == (1, "error", err)


def test_dismiss_cancels_and_closes():
    engine, _ = make()
    (start,) = of(engine.handle(Edit("Hi ", "", 1)), StartRequest)
    cmds = engine.handle(Dismiss())
    assert CancelRequest(start.request_id, "client") in cmds
    assert Closed(1, "cancelled", "client") in cmds
    assert engine.next_deadline is None


def test_cursor_move_clears_the_ghost_and_asks_nothing():
    engine, _ = make()
    (start,) = of(engine.handle(Edit("Hi ", "", 1)), StartRequest)
    complete(engine, start.request_id, "there")
    cmds = engine.handle(CursorMoved("H", "i "))
    assert ClearSuggestion() in cmds and of(cmds, StartRequest) == []


def test_no_request_in_the_middle_of_a_line_or_an_empty_document():
    engine, _ = make()
    (f,) = finals(engine.handle(Edit("The ", "quick fox", 1)))
    assert (f.text, f.source) == ("", "none")
    (f,) = finals(engine.handle(Edit("   ", "", 2)))
    assert f.source == "none"


def test_weak_output_is_not_shown():
    engine, _ = make()
    (start,) = of(engine.handle(Edit("I think ", "", 1)), StartRequest)
    (f,) = finals(complete(engine, start.request_id, "that that that that"))
    assert f.text == ""
    assert engine.stats.weak_dropped == 1


def test_accept_counts_telemetry():
    engine, _ = make()
    assert engine.handle(Accept(5)) == []
    assert engine.stats.accepted_chars == 5


def test_versions_must_increase():
    engine, _ = make()
    engine.handle(Edit("a ", "", 5))
    with pytest.raises(ValueError):
        engine.handle(Edit("a b", "", 5))


# -- properties over random sessions ------------------------------------------------------------

WORDS = ["the ", "cat ", "sat", ". ", "on ", "mat", "\n", "a", "b", " "]

actions = st.lists(
    st.one_of(
        st.tuples(st.just("type"), st.sampled_from(WORDS)),
        st.tuples(st.just("backspace"), st.integers(1, 4)),
        st.tuples(st.just("wait"), st.integers(0, 400)),
        st.tuples(st.just("chunk"), st.sampled_from(["the", " cat", "sat ", "\nx", " ", "mat."])),
        st.tuples(st.just("done"), st.booleans()),
        st.tuples(st.just("fail"), st.sampled_from(list(ProviderErrorKind))),
        st.tuples(st.just("dismiss"), st.none()),
        st.tuples(st.just("move"), st.integers(0, 5)),
        st.tuples(st.just("accept"), st.integers(0, 9)),
    ),
    max_size=60,
)


@settings(max_examples=400, deadline=None)
@given(actions)
def test_random_sessions_keep_every_guarantee(steps):
    check_random_session(steps)


@settings(max_examples=400, deadline=None)
@given(actions)
def test_random_sessions_with_prefetch_and_cold_mode_keep_every_guarantee(steps):
    check_random_session(steps, prefetch=True, cold_after=1, cold_pause_ms=300)


def test_backspace_over_a_line_break_does_not_recall_a_two_line_ghost():
    """Found by the random sessions above: "sat", Enter, the model says "the", then a
    backspace over the line break recalled "\nthe", a ghost over two lines."""
    steps = [("type", "the ")] * 4 + [("type", "sat"), ("type", "\n")]
    steps += [("chunk", "the"), ("done", False), ("backspace", 1)]
    check_random_session(steps, prefetch=True, cold_after=1, cold_pause_ms=300)


def check_random_session(steps, **cfg):
    engine, clock = make(**cfg)
    text = ""
    version = 0
    inflight: set[int] = set()
    started: set[int] = set()
    ended: set[int] = set()
    closed: set[int] = set()
    issued: list[int] = []

    def run(cmds):
        for c in cmds:
            if isinstance(c, StartRequest):
                assert not inflight, "two requests in flight"
                assert c.version == version, "a request for a stale version"
                inflight.add(c.request_id)
                started.add(c.request_id)
            elif isinstance(c, CancelRequest):
                assert c.request_id in inflight
                inflight.discard(c.request_id)
                ended.add(c.request_id)
            elif isinstance(c, ShowSuggestion):
                assert c.version == version, f"stale suggestion for {c.version}, now {version}"
                assert c.version not in closed
                assert "\n" not in c.text
                if c.final:
                    closed.add(c.version)
            elif isinstance(c, Closed):
                assert c.version not in closed
                closed.add(c.version)

    for kind, arg in steps:
        if kind == "type":
            text += arg
        elif kind == "backspace":
            text = text[:-arg]
        if kind in ("type", "backspace"):
            version += 1
            issued.append(version)
            run(engine.handle(Edit(text, "", version)))
        elif kind == "wait":
            clock.advance(arg / 1000)
            run(engine.handle(Tick()))
        elif kind == "chunk" and inflight:
            run(engine.handle(ProviderChunk(next(iter(inflight)), arg)))
        elif kind == "done" and inflight:
            rid = next(iter(inflight))
            inflight.discard(rid)
            ended.add(rid)
            run(engine.handle(ProviderDone(rid, truncated=arg)))
        elif kind == "fail" and inflight:
            rid = next(iter(inflight))
            inflight.discard(rid)
            ended.add(rid)
            run(engine.handle(ProviderFailed(rid, ProviderError(arg, "x"))))
        elif kind == "dismiss":
            run(engine.handle(Dismiss()))
        elif kind == "accept":
            run(engine.handle(Accept(arg)))
        elif kind == "move":
            cut = max(0, len(text) - arg)
            run(engine.handle(CursorMoved(text[:cut], text[cut:])))
            text = text[:cut]  # keep typing at the new place: drop what follows for simplicity
            version += 1
            issued.append(version)
            run(engine.handle(Edit(text, "", version)))

    # Finish every request still running, then let time pass: all versions but the last closed.
    for rid in list(inflight):
        inflight.discard(rid)
        ended.add(rid)
        run(engine.handle(ProviderDone(rid)))
    clock.advance(1)
    run(engine.handle(Tick()))
    for rid in list(inflight):
        inflight.discard(rid)
        ended.add(rid)
        run(engine.handle(ProviderDone(rid)))
    assert started <= ended, "a started request never ended"
    assert set(issued[:-1]) <= closed, "an old version never got its terminal command"
    if issued:
        assert engine.open_version is None or engine.open_version == issued[-1]


# -- word-level accept, reuse, prefetch, acceptance --------------------------------------------


def test_word_accept_serves_the_rest_of_the_ghost_at_once_without_a_request():
    """Ctrl+Right: the client inserts the next word, sends ``accept`` then a new ``suggest``."""
    engine, _ = make()
    (start,) = of(engine.handle(Edit("See you ", "", 1)), StartRequest)
    complete(engine, start.request_id, "tomorrow morning at nine.")
    assert engine.handle(Accept(len("tomorrow"))) == []
    cmds = engine.handle(Edit("See you tomorrow", "", 2))
    assert of(cmds, StartRequest) == [] and of(cmds, CancelRequest) == []
    (f,) = finals(cmds)
    assert (f.version, f.text, f.source, f.latency_ms) == (2, " morning at nine.", "typethrough", 0)
    engine.handle(Accept(len(" morning")))
    (f,) = finals(engine.handle(Edit("See you tomorrow morning", "", 3)))
    assert f.text == " at nine."
    assert engine.stats.suggestions_accepted == 1  # one suggestion, taken in two steps


def test_word_accept_of_a_streaming_ghost_keeps_its_request():
    engine, _ = make()
    (start,) = of(engine.handle(Edit("See you ", "", 1)), StartRequest)
    engine.handle(ProviderChunk(start.request_id, "tomorrow morn"))
    engine.handle(Accept(len("tomorrow")))
    cmds = engine.handle(Edit("See you tomorrow", "", 2))
    assert of(cmds, StartRequest) == [] and of(cmds, CancelRequest) == []
    assert ShowSuggestion(2, " morn", final=False, request_id=start.request_id) in cmds
    (f,) = finals(complete(engine, start.request_id, "ing."))
    assert (f.version, f.text) == (2, " morning.")


def ask(engine, clock, prefix, version):
    """An edit, and the tick its debounce asks for: the request it starts."""
    cmds = engine.handle(Edit(prefix, "", version))
    if engine.next_deadline is not None:
        clock.now = engine.next_deadline
        cmds += engine.handle(Tick())
    (start,) = of(cmds, StartRequest)
    return start


def test_backspacing_past_a_suggestions_start_shows_it_again_at_once():
    engine, clock = make(recall_back_chars=3)
    start = ask(engine, clock, "The quar", 1)
    clock_done = complete(engine, start.request_id, "terly report")
    assert finals(clock_done)[0].text == "terly report"
    cmds = engine.handle(Edit("The qua", "", 2))
    assert of(cmds, StartRequest) == []
    (f,) = finals(cmds)
    assert (f.text, f.source) == ("rterly report", "cache")
    assert engine.stats.shown_recalled == 1
    (f,) = finals(engine.handle(Edit("The q", "", 3)))
    assert (f.text, f.source) == ("uarterly report", "cache")
    # Further back than recall_back_chars: nothing to show at once.
    assert finals(engine.handle(Edit("The ", "", 4))) == []
    assert engine.stats.shown_recalled == 2


def test_a_request_kept_over_a_typo_is_shown_once_the_typo_is_backspaced():
    engine, clock = make(debounce_min_ms=100, debounce_max_ms=150, keep_request_over_typo=True)
    clock.advance(1)
    engine.handle(Edit("Dear te", "", 1))
    clock.now = engine.next_deadline
    (start,) = of(engine.handle(Tick()), StartRequest)
    engine.handle(ProviderChunk(start.request_id, "am, thanks"))
    cmds = engine.handle(Edit("Dear tex", "", 2))  # a typo: the stream no longer fits
    assert of(cmds, CancelRequest) == [] and of(cmds, ShowSuggestion) == []
    cmds = engine.handle(Edit("Dear te", "", 3))  # backspaced before the debounce ran out
    assert of(cmds, StartRequest) == [] and of(cmds, CancelRequest) == []
    assert ShowSuggestion(3, "am, thanks", final=False, request_id=start.request_id) in cmds
    assert engine.next_deadline is None
    (f,) = finals(complete(engine, start.request_id, " for all."))
    assert (f.version, f.text) == (3, "am, thanks for all.")


def test_a_kept_request_that_finishes_during_the_debounce_neither_shows_nor_closes():
    engine, clock = make(debounce_min_ms=100, debounce_max_ms=150, keep_request_over_typo=True)
    clock.advance(1)
    engine.handle(Edit("Dear te", "", 1))
    clock.now = engine.next_deadline
    (start,) = of(engine.handle(Tick()), StartRequest)
    engine.handle(ProviderChunk(start.request_id, "am"))
    engine.handle(Edit("Dear tex", "", 2))
    assert engine.handle(ProviderDone(start.request_id)) == []  # does not fit: v2 stays open
    assert complete(engine, start.request_id, "x") == []  # a late one for a finished request
    assert engine.open_version == 2
    clock.now = engine.next_deadline
    (new,) = of(engine.handle(Tick()), StartRequest)
    assert (new.version, new.prefix) == (2, "Dear tex")


def test_restated_fragment_is_trimmed_and_short_or_echoed_output_dropped():
    engine, clock = make()
    start = ask(engine, clock, "The quar", 1)
    assert engine.handle(ProviderChunk(start.request_id, "qua")) == []  # may restate "quar"
    cmds = complete(engine, start.request_id, "rterly report")
    assert ShowSuggestion(1, "terly report", final=False, request_id=start.request_id) in cmds
    (f,) = finals(cmds)
    assert f.text == "terly report"
    (start,) = of(engine.handle(Edit("It is ", "", 2)), StartRequest)
    (f,) = finals(complete(engine, start.request_id, "ok"))
    assert f.text == ""
    (start,) = of(engine.handle(Edit("We met the board. ", "", 3)), StartRequest)
    (f,) = finals(complete(engine, start.request_id, "the board."))
    assert f.text == ""
    assert engine.stats.weak_dropped == 2


def _show(engine, prefix, text, version):
    (start,) = of(engine.handle(Edit(prefix, "", version)), StartRequest)
    return start, complete(engine, start.request_id, text)


def test_prefetch_asks_for_what_follows_the_shown_suggestion():
    engine, _ = make(prefetch=True)
    start, cmds = _show(engine, "Dear team, ", "thanks for the report.", 1)
    (f,) = finals(cmds)
    (pre,) = of(cmds, StartRequest)
    assert pre.prefetch and pre.prefix == "Dear team, thanks for the report."
    assert engine.stats.prefetches_started == 1 and engine.stats.requests_started == 1
    # Streaming while the user still reads the ghost: nothing shown.
    assert engine.handle(ProviderChunk(pre.request_id, " It")) == []
    # Tab: the prefetch (still streaming) serves the new version at once.
    engine.handle(Accept(len(f.text)))
    cmds = engine.handle(Edit("Dear team, thanks for the report.", "", 2))
    assert of(cmds, StartRequest) == [] and of(cmds, CancelRequest) == []
    assert ShowSuggestion(2, " It", final=False, request_id=pre.request_id) in cmds
    cmds = complete(engine, pre.request_id, " reads well.")
    (f2,) = finals(cmds)
    assert (f2.version, f2.text, f2.source) == (2, " It reads well.", "prefetch")
    assert engine.stats.shown_prefetch == 1
    # ... which prefetches in turn.
    (pre2,) = of(cmds, StartRequest)
    assert pre2.prefetch and pre2.prefix.endswith("It reads well.")


def test_a_finished_prefetch_waits_in_the_cache_for_the_accept():
    engine, _ = make(prefetch=True)
    _, cmds = _show(engine, "Dear team, ", "thanks for the report.", 1)
    (pre,) = of(cmds, StartRequest)
    assert complete(engine, pre.request_id, " It reads well.") == []
    # Typing the suggestion through keeps it; reaching its end shows the prefetched one.
    (f,) = finals(engine.handle(Edit("Dear team, thanks", "", 2)))
    assert f.source == "typethrough"
    cmds = engine.handle(Edit("Dear team, thanks for the report.", "", 3))
    assert of(cmds, StartRequest) == []
    (f,) = finals(cmds)
    assert (f.text, f.source) == (" It reads well.", "cache")


def test_prefetch_survives_type_through_and_is_cancelled_when_the_user_goes_elsewhere():
    engine, _ = make(prefetch=True)
    _, cmds = _show(engine, "Dear team, ", "thanks for the report.", 1)
    (pre,) = of(cmds, StartRequest)
    cmds = engine.handle(Edit("Dear team, thanks for", "", 2))
    assert of(cmds, CancelRequest) == []
    cmds = engine.handle(Edit("Dear team, thanks for your", "", 3))
    assert CancelRequest(pre.request_id, "superseded") in cmds
    assert engine.stats.prefetches_cancelled == 1
    # A late chunk of it is never shown.
    assert engine.handle(ProviderChunk(pre.request_id, " It")) == []


def test_prefetch_is_off_by_default():
    engine, _ = make()
    _, cmds = _show(engine, "Dear team, ", "thanks for the report.", 1)
    assert of(cmds, StartRequest) == []


def test_rejections_make_the_engine_wait_for_a_pause_and_an_accept_brings_it_back():
    engine, clock = make(cold_after=2, cold_pause_ms=400)
    version = 0

    def reject(prefix, text):
        nonlocal version
        version += 1
        _show(engine, prefix, text, version)
        version += 1
        engine.handle(Edit(prefix + "zz ", "", version))  # typed something else

    assert engine.debounce_ms("Hello ") == 0
    reject("One ", "two three")
    assert not engine.cold
    clock.advance(1)
    reject("Four ", "five six")
    assert engine.cold and engine.stats.suggestions_rejected >= 2
    assert engine.debounce_ms("Hello ") == 400
    # A word boundary now waits for the pause instead of asking at once.
    version += 1
    cmds = engine.handle(Edit("Seven ", "", version))
    assert of(cmds, StartRequest) == []
    clock.now = engine.next_deadline
    (start,) = of(engine.handle(Tick()), StartRequest)
    complete(engine, start.request_id, "eight nine")
    engine.handle(Accept(5))
    assert not engine.cold and engine.debounce_ms("Hello ") == 0


def test_dismiss_is_a_rejection_and_typing_a_ghost_to_its_end_is_an_accept():
    engine, _ = make()
    _show(engine, "One ", "two three", 1)
    engine.handle(Dismiss())
    assert engine.stats.suggestions_rejected == 1
    _show(engine, "Four ", "five six", 2)
    engine.handle(Edit("Four five", "", 3))
    engine.handle(Edit("Four five six", "", 4))
    assert engine.stats.suggestions_accepted == 1
