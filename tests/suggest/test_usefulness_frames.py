"""Counting what a writer gets from the frames a connection carries."""

from __future__ import annotations

from assistant.suggest.usefulness_frames import FrameUsefulness


def test_a_ghost_accepted_word_by_word_is_one_accepted_suggestion():
    m = FrameUsefulness()
    m.suggest(0.0, 1, "See you ")
    m.frame(0.1, {"type": "delta", "id": 1, "text": "tomorrow"})
    m.frame(0.2, {"type": "done", "id": 1, "text": "tomorrow morning."})
    m.accept(1.0, len("tomorrow"))
    m.suggest(1.0, 2, "See you tomorrow")
    m.frame(1.01, {"type": "done", "id": 2, "text": " morning.", "source": "typethrough"})
    m.accept(1.5, len(" morning."))
    m.suggest(1.5, 3, "See you tomorrow morning.")
    m.frame(1.6, {"type": "done", "id": 3, "text": ""})
    c = m.finish(2.0)
    assert (c.suggestions, c.shown, c.accepted, c.rejected) == (1, 1, 1, 0)
    assert c.accepted_chars == len("tomorrow morning.") and c.accept_keys == 2
    assert c.chars_saved == len("tomorrow morning.") - 2
    assert c.typed_keys == 1  # the suggests that accepts made are not keys


def test_typing_away_from_a_ghost_rejects_it_and_a_pause_times_the_next_one():
    m = FrameUsefulness()
    m.suggest(0.0, 1, "Dear ")
    m.frame(0.3, {"type": "done", "id": 1, "text": "Sam,"})
    m.suggest(1.0, 2, "Dear J")  # typed away
    m.frame(1.05, {"type": "delta", "id": 2, "text": "ohn,"})
    m.frame(1.1, {"type": "done", "id": 2, "text": "ohn,"})
    m.suggest(5.0, 3, "Dear Jo")  # typed into it after a pause
    m.frame(5.001, {"type": "done", "id": 3, "text": "hn,"})
    m.frame(5.002, {"type": "done", "id": 1, "text": "stale"})  # not the newest: ignored
    c = m.finish(9.0)
    assert (c.suggestions, c.shown, c.accepted, c.rejected) == (2, 2, 0, 2)
    assert c.pauses == 3 and c.pauses_with_suggestion == 3
    assert [round(ms) for ms in c.pause_to_visible_ms] == [300, 50, 0]


def test_the_ghost_typed_into_keeps_its_rest_on_screen():
    m = FrameUsefulness()
    m.suggest(0.0, 1, "See you ")
    m.frame(0.1, {"type": "done", "id": 1, "text": "tomorrow"})
    m.suggest(0.2, 2, "See you to")  # two characters of it typed
    assert m.tracker.ghost_text == "morrow"
    m.suggest(0.3, 3, "See you tomx")  # typed away from it
    assert m.tracker.ghost_text == ""
    m.suggest(0.4, 4, "Other text")  # a different text before the cursor
    assert m.tracker.ghost_text == ""
    assert m.counts.suggestions == 1
