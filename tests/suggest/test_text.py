"""Shaping model output into a prose suggestion."""

import random

from hypothesis import given
from hypothesis import strategies as st

from assistant.suggest.text import _repeats, finalize, last_words, next_word, visible_prefix


def test_single_line_and_one_space_between_words():
    assert finalize("  the report\nand more", "Send me") == " the report"
    assert finalize("  the report", "Send me ") == "the report"


def test_word_continuation_has_no_leading_space():
    assert finalize("port is ready", "The re") == "port is ready"


def test_stops_at_the_first_sentence_end():
    assert finalize("on Friday. Then we go home", "We meet ") == "on Friday."


def test_token_cap_never_leaves_half_a_word():
    assert finalize("on Friday after lun", "We meet ", truncated=True) == "on Friday after"


def test_suffix_already_there_is_not_repeated():
    assert finalize("ld!", "Hello wor", "!") == "ld"
    assert finalize("the end (see below)", "At ", "(see below)") == "the end"


def test_weak_output_is_dropped():
    assert finalize("   ", "x ") == ""
    assert finalize("very very very good", "It is ") == ""
    assert finalize("the quick brown fox", "I said the quick brown fox") == ""


def test_a_phrase_used_earlier_in_the_document_is_not_an_echo():
    doc = "The garden was full of roses in June. " + "x " * 200 + "By July the garden"
    assert finalize(" was full of roses in June.", doc) == " was full of roses in June."
    # ...but a verbatim copy of the sentence just typed is.
    near = "The garden was full of roses in June. Then the garden"
    assert finalize(" was full of roses in June.", near) == ""


def test_visible_prefix_holds_back_leading_space_until_text_arrives():
    assert visible_prefix(" ", "Hi") == ""
    assert visible_prefix("  there", "Hi") == " there"


def test_next_word():
    assert next_word(" quick brown") == " quick"
    assert next_word("ing, then") == "ing,"


@given(st.text(max_size=40), st.text(max_size=80))
def test_visible_prefix_only_grows_as_text_streams(raw, prefix):
    shown = ""
    for i in range(len(raw) + 1):
        now = visible_prefix(raw[:i], prefix)
        assert now.startswith(shown)
        shown = now
    assert "\n" not in shown


@given(st.text(max_size=60), st.text(max_size=60), st.text(max_size=20), st.booleans())
def test_finalize_is_single_line_and_never_raises(raw, prefix, suffix, truncated):
    out = finalize(raw, prefix, suffix, truncated=truncated)
    assert "\n" not in out and "\r" not in out
    if out:
        assert out.strip()


def test_a_restated_fragment_is_trimmed_and_held_back_while_streaming():
    from assistant.suggest.text import trim_restated_fragment as trim

    assert trim("quarterly report", "The quar") == "terly report"
    assert trim("terly report", "The quar") == "terly report"
    assert trim("quar", "The quar") == ""  # only the fragment again: nothing
    assert trim("and more", "I had a") == "and more"  # one letter: a word of its own
    assert trim("qu", "The quar", complete=False) == ""  # may still become "quar..."
    assert trim("quick", "The quar", complete=False) == "quick"
    assert trim(" report", "The quar") == " report"


def test_too_short_and_echoing_suggestions_are_likely_rejected():
    from assistant.suggest.text import likely_rejected

    assert likely_rejected("ok", "It is ")
    assert likely_rejected(" the board.", "We met the board.")
    assert not likely_rejected(" the budget.", "We met the board.")
    assert not likely_rejected("morning", "Good ")


@given(st.text(alphabet="ab _\n\u00e9\u0661\u2163-", max_size=300))
def test_word_before_matches_a_whole_prefix_search(prefix):
    """The tail search finds the same word as searching the whole prefix, for words longer
    than the first window too."""
    import re

    from assistant.suggest.text import word_before

    m = re.search(r"\w+\Z", prefix)
    assert word_before(prefix) == (m.group(0) if m else "")
    long_word = "x" * 150
    assert word_before("see " + long_word) == long_word


def test_a_suggestion_on_a_new_line_keeps_its_first_word():
    """After a newline there is no fragment before the cursor: the word that ends the line
    above is not one the model restated (a regex anchored at ``$`` matched before the final
    newline and cut "quarterly" to "terly")."""
    from assistant.suggest.text import trim_restated_fragment, word_before

    assert word_before("The quar\n") == ""
    assert trim_restated_fragment("quarterly report", "The quar\n") == "quarterly report"
    assert trim_restated_fragment("quarterly report", "The quar") == "terly report"


def test_last_words_and_repeats_read_a_tail_as_they_would_the_whole_document():
    def repeats_whole(text: str, prefix: str) -> bool:  # the definition, on the whole prefix
        words = text.split()
        if len(words) >= 3 and any(
            words[i] == words[i + 1] == words[i + 2] for i in range(len(words) - 2)
        ):
            return True
        core = text.strip()
        if len(core) < 12:
            return False
        tail = prefix.rstrip()
        return tail.endswith(core) or (len(core) >= 24 and core in tail[-240:])

    rng = random.Random(3)
    pieces = ["a", "bb", "the quarterly report", " ", "  ", "\n", "\n\n  ", "x" * 70, " " * 90]
    for _ in range(3000):
        prefix = "".join(rng.choice(pieces) for _ in range(rng.randrange(0, 40)))
        k = rng.randrange(0, 6)
        assert last_words(prefix, k) == prefix.split()[-k:], (prefix, k)
        start = rng.randrange(0, len(prefix) + 1)
        text = prefix[start : start + rng.randrange(0, 60)] + rng.choice(["", " ", "  "])
        assert _repeats(text, prefix) == repeats_whole(text, prefix), (text, prefix)
