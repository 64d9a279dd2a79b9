"""The engine asks again when a better tier becomes free and the user is still paused.

A burst of typing keeps the local model busy; the last keystroke is answered (empty) by the
statistical engine with ``retry_when_free``. That answer is held, and ``TierFree`` asks again
for the same version, so a pause after fast typing still gets the model's suggestion."""

from __future__ import annotations

from assistant.suggest.engine import (
    Closed,
    Edit,
    ProviderChunk,
    ProviderDone,
    StartRequest,
    Tick,
    TierFree,
)
from tests.suggest.test_engine import finals, make, of

TEXT = "Thank you for your email. I will get back to you as soon as "


def stand_in_answers_empty(engine) -> int:
    """Type, get a request, answer it empty from the stand-in tier; returns the request id."""
    (start,) = of(engine.handle(Edit(TEXT, "", 1)), StartRequest)
    out = engine.handle(ProviderDone(start.request_id, source="offline", retry_when_free=True))
    assert not finals(out)  # held open: nothing shown yet, the version is still owed its end
    assert engine.open_version == 1
    return start.request_id


def test_a_freed_tier_is_asked_again_for_the_same_version():
    engine, _ = make()
    first = stand_in_answers_empty(engine)
    (again,) = of(engine.handle(TierFree()), StartRequest)
    assert (again.version, again.prefix) == (1, TEXT) and again.request_id != first
    out = engine.handle(ProviderChunk(again.request_id, "possible."))
    out += engine.handle(ProviderDone(again.request_id, source="offline"))
    (done,) = finals(out)
    assert (done.version, done.text, done.source) == (1, "possible.", "offline")


def test_without_a_free_tier_the_empty_answer_ends_the_version_after_the_wait():
    engine, clock = make(tier_wait_ms=3000)
    stand_in_answers_empty(engine)
    clock.advance(2.9)
    assert engine.handle(Tick()) == []
    clock.advance(0.2)
    (done,) = finals(engine.handle(Tick()))
    assert (done.version, done.text, done.source) == (1, "", "offline")
    assert engine.handle(TierFree()) == []  # nothing held any more


def test_typing_while_held_supersedes_it_and_a_late_tier_free_does_nothing():
    engine, _ = make()
    stand_in_answers_empty(engine)
    out = engine.handle(Edit(TEXT + "p", "", 2))
    assert of(out, Closed)[0].version == 1
    assert [c for c in engine.handle(TierFree()) if isinstance(c, StartRequest)] == []


def test_an_answer_with_text_is_shown_at_once_and_tier_free_is_ignored():
    engine, _ = make()
    (start,) = of(engine.handle(Edit(TEXT, "", 1)), StartRequest)
    out = engine.handle(ProviderChunk(start.request_id, "possible"))
    out += engine.handle(ProviderDone(start.request_id, source="offline", retry_when_free=True))
    assert finals(out)[0].text == "possible"
    assert engine.handle(TierFree()) == []


def test_asks_again_at_most_tier_retries_times():
    engine, _ = make(tier_retries=1)
    stand_in_answers_empty(engine)
    (again,) = of(engine.handle(TierFree()), StartRequest)
    out = engine.handle(ProviderDone(again.request_id, source="offline", retry_when_free=True))
    (done,) = finals(out)  # busy again: no more waiting
    assert (done.version, done.text) == (1, "")
