"""What a writer gets, counted from keys and the ghost on screen (assistant/usefulness.py)."""

from __future__ import annotations

import itertools

from assistant.suggest.usefulness import (
    Usefulness,
    UsefulnessTracker,
    is_continuation,
    per_thousand_saved,
    total,
)


def typed(tr: UsefulnessTracker, t: float, doc: str, ghost: str = "") -> None:
    tr.key(t, "type")
    tr.ghost(t, doc, ghost)


def test_typing_through_a_ghost_keeps_it_one_suggestion():
    assert is_continuation("Hel", "lo there", "Hell", "o there")
    assert is_continuation("Hel", "lo", "Hel", "lo there")  # more streamed in
    assert not is_continuation("Hel", "lo there", "Help", " me")
    assert not is_continuation("Hel", "lo", "He", "llo")  # a backspace: a new suggestion
    tr = UsefulnessTracker()
    tr.ghost(0.0, "Hel", "lo there")
    for i, doc in enumerate(("Hell", "Hello", "Hello "), 1):
        typed(tr, i * 0.2, doc, "Hello there"[len(doc) :])
    c = tr.finish(1.0)
    assert c.suggestions == 1 and c.shown == 1 and c.rejected == 1 and c.accepted == 0


def test_continuation_is_the_definition_on_whole_texts():
    """``is_continuation`` compares only what follows the old document; it must agree with the
    definition (one of old doc + ghost, new doc + ghost starts with the other) everywhere."""
    words = ["", "a", "b", "ab", "ba", "aa", "aab", "abab"]
    for old_doc, old_ghost, doc, ghost in itertools.product(words, repeat=4):
        old, new = old_doc + old_ghost, doc + ghost
        expected = bool(ghost and old_ghost and doc.startswith(old_doc)) and (
            old.startswith(new) or new.startswith(old)
        )
        assert is_continuation(old_doc, old_ghost, doc, ghost) == expected, (
            old_doc,
            old_ghost,
            doc,
            ghost,
        )


def test_shown_needs_250_ms_on_screen():
    tr = UsefulnessTracker()
    tr.ghost(0.0, "a", " flash")
    typed(tr, 0.1, "ab")  # gone after 100 ms: never shown
    tr.ghost(0.2, "ab", " stays")
    c = tr.finish(0.5)
    assert (c.suggestions, c.shown, c.rejected) == (2, 1, 1)


def test_accepts_whole_and_word_by_word_count_once_and_save_net_of_keys():
    tr = UsefulnessTracker()
    tr.ghost(0.0, "Dear", " Sam, thanks for")
    tr.key(0.3, "accept", 4)  # Ctrl+Right: " Sam,"
    tr.ghost(0.3, "Dear Sam,", " thanks for")
    tr.key(0.45, "accept", 7)  # " thanks"
    tr.ghost(0.45, "Dear Sam, thanks", " for")
    typed(tr, 0.7, "Dear Sam, thanksx")  # the writer went another way
    tr.ghost(1.0, "Dear Sam, thanksx", " yes")
    tr.key(1.4, "accept", 4)  # Tab
    tr.ghost(1.4, "Dear Sam, thanksx yes", "")
    c = tr.finish(2.0)
    assert (c.suggestions, c.shown, c.accepted, c.rejected) == (2, 2, 2, 0)
    assert c.accepted_chars == 15 and c.accept_keys == 3 and c.chars_saved == 12
    assert c.acceptance_rate == 1.0 and c.typed_keys == 1


def test_an_accept_after_ten_seconds_does_not_make_it_accepted():
    tr = UsefulnessTracker()
    tr.ghost(0.0, "x", " late")
    tr.key(11.0, "accept", 5)
    tr.ghost(11.0, "x late", "")
    c = tr.finish(12.0)
    assert (c.shown, c.accepted, c.rejected, c.accepted_chars) == (1, 0, 1, 5)


def test_pause_to_visible_counts_from_the_last_typing_key():
    tr = UsefulnessTracker()
    typed(tr, 0.0, "a")
    typed(tr, 0.1, "ab")  # 100 ms gap: no pause
    tr.ghost(0.35, "ab", " cd")  # 250 ms after the key
    typed(tr, 1.0, "abx")  # the pause ended with a suggestion visible
    typed(tr, 1.5, "abxy")  # a 500 ms pause with nothing on screen: a miss
    typed(tr, 1.6, "abxyz", "")
    tr.ghost(1.6, "abxyz", " w")  # already there when the key landed: 0 ms
    tr.key(1.85, "accept", 2)  # accepting ends a pause even under 300 ms
    tr.ghost(1.85, "abxyz w", "")
    c = tr.finish(1.9)
    assert c.pauses == 3 and c.pauses_with_suggestion == 2
    assert [round(x) for x in c.pause_to_visible_ms] == [250, 0]
    assert round(c.visible_at_pause_share, 3) == 0.667


def test_totals_and_rates():
    a = Usefulness(typed_keys=10, accept_keys=2, shown=4, accepted=1, accepted_chars=12)
    b = Usefulness(typed_keys=5, shown=0, pause_to_visible_ms=[5.0])
    t = total([a, b])
    assert (t.keys, t.shown, t.chars_saved, t.pause_to_visible_ms) == (17, 4, 10, [5.0])
    assert t.acceptance_rate == 0.25 and t.saved_share(100) == 0.1
    assert Usefulness().acceptance_rate == 0.0 and Usefulness().saved_share(0) == 0.0
    assert per_thousand_saved(3, 0) is None and per_thousand_saved(3, 1500) == 2.0


def test_a_planned_pause_counts_whatever_ends_it_and_a_planned_run_never_does():
    """The benchmark's typists know the gap they meant to leave: every strategy is measured at
    the same pauses, even when a ghost made the typist accept sooner or wait longer."""
    tr = UsefulnessTracker()
    tr.key(0.0, "type", pause=True)
    tr.ghost(0.0, "a", "")
    tr.ghost(0.1, "a", " bc")
    tr.key(0.35, "accept", 3)  # 350 ms: a pause they meant to make, ended by the accept
    tr.ghost(0.35, "a bc", "")
    tr.key(0.5, "type", pause=False)  # they meant to type on...
    tr.ghost(0.5, "a bcd", "")
    tr.key(1.5, "type", pause=True)  # ...but a slow ghost held them up: not a pause
    tr.ghost(1.5, "a bcde", "")
    tr.key(1.6, "type")  # the planned pause after 1.5 ended in 100 ms with nothing shown: a miss
    c = tr.finish(1.7)
    assert c.pauses == 2 and c.pauses_with_suggestion == 1
    assert [round(x) for x in c.pause_to_visible_ms] == [100]
