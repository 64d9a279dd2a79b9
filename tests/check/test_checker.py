"""The sentence checker, sans I/O: finished sentences, the speller's precision, the cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.check import spelling
from assistant.check.checker import SentenceChecker
from assistant.check.offline import offline_findings
from assistant.check.sentences import finished_sentences

CORPUS = Path(__file__).resolve().parents[1] / "data" / "review_corpus"


@pytest.fixture(scope="module")
def speller():
    return spelling.speller()


def test_a_sentence_is_finished_once_the_writer_moves_on_pauses_or_leaves_the_paragraph():
    text = "One done. Two typing"
    assert [s.text for s in finished_sentences(text, len(text), 0.0)] == ["One done."]
    text = "One done. Two done."
    assert [s.text for s in finished_sentences(text, len(text), 0.0)] == ["One done."]
    assert len(finished_sentences(text, len(text), 1.0)) == 2  # the pause
    text = "A heading\nNext"
    assert [s.text for s in finished_sentences(text, len(text), 0.0)] == ["A heading"]


@pytest.mark.parametrize(
    ("sentence", "fixes"),
    [
        ("I definately agree.", {"definately": "definitely"}),
        ("Wich one is it?", {"Wich": "Which"}),  # a letter left out beats a commoner word
        ("We met untill noon.", {"untill": "until"}),
        ("It was innacurate.", {"innacurate": "inaccurate"}),  # two edits, a long word
        ("Kowalczyk met Ines in Sintra.", {}),  # names are not ours to spell
        ("Ines said it was fine.", {}),  # a known name first: not "Lines"
        ("Goverment is slow.", {"Goverment": "Government"}),
        (
            "It occured to us to accomodate them.",
            {"occured": "occurred", "accomodate": "accommodate"},
        ),
        ("The offsite was silted up, wincing at the zest.", {}),  # rare but right
        ("She said it was very very good.", {}),  # doubled on purpose
        ("Put it on the the table.", {" the": ""}),
    ],
)
def test_offline_findings_flag_misspellings_and_doubled_words_only(speller, sentence, fixes):
    found = offline_findings(sentence, speller)
    assert {sentence[f.start : f.end]: f.replacement for f in found} == fixes


RARE_BUT_RIGHT = (
    "refactored dequeued tokenizer overfitting webhook preprocessing misconfigured unsubscribed "
    "geolocation hyperparameters microservices autoscaling chatbot kubectl nginx postgres yaml "
    "async regex repo configs datasets onboarding upskilling timeboxed standup backlog grafana "
    "subtasks reran untested unmerged deduplicate lockfile sourdough focaccia ciabatta gnocchi "
    "tzatziki hummus quinoa kombucha theses zest wincing offsite silted"
).split()
COMMON_SLIPS = {
    "thier": "their", "becuase": "because", "wiht": "with", "taht": "that", "adn": "and",
    "hte": "the", "recieve": "receive", "occured": "occurred", "seperate": "separate",
    "tommorrow": "tomorrow", "goverment": "government", "enviroment": "environment",
    "neccessary": "necessary", "wierd": "weird", "freind": "friend", "beleive": "believe",
    "begining": "beginning", "existance": "existence", "untill": "until", "probaly": "probably",
    "realy": "really", "finaly": "finally", "sucessful": "successful", "dissapear": "disappear",
    "embarass": "embarrass", "writting": "writing", "recomend": "recommend", "teh": "the",
    "knowlege": "knowledge", "lenght": "length", "jsut": "just",
}  # fmt: skip


def test_rare_but_right_words_are_never_flagged(speller):
    assert {w: speller.correct(w) for w in RARE_BUT_RIGHT if speller.correct(w)} == {}


def test_common_slips_get_their_fix(speller):
    got = {w: (c.replacement if (c := speller.correct(w)) else None) for w in COMMON_SLIPS}
    assert got == COMMON_SLIPS


def test_the_speller_flags_no_correct_word_of_the_review_corpus(speller):
    """Precision over recall: every spelling finding on the labelled corpus is a labelled
    misspelling with its labelled replacement."""
    labels = json.loads((CORPUS / "labels.json").read_text())["labels"]
    flagged = right = 0
    for path in sorted(CORPUS.iterdir()):
        if path.suffix == ".json":
            continue
        text = path.read_text()
        mine = [lab for lab in labels if lab["document"] == path.name]
        for s in finished_sentences(text, len(text) + 1, 10.0):
            for f in offline_findings(s.text, speller):
                if f.category != "spelling":
                    continue
                flagged += 1
                quote = s.text[f.start : f.end]
                assert any(
                    quote in lab["quote"] and f.replacement in lab["replacement"] for lab in mine
                ), (path.name, quote, f.replacement)
                right += 1
    assert flagged == right >= 32


def test_an_unchanged_sentence_is_checked_once_and_an_edited_one_again(speller):
    checker = SentenceChecker(lambda: speller)
    text = "Teh cat sat. The dog ran. "
    assert [s.text for s in checker.due(text, len(text), 0.0)] == ["Teh cat sat.", "The dog ran."]
    assert checker.due(text + "More", len(text) + 4, 0.0) == []
    moved = "Some new start. " + text
    assert [s.text for s in checker.due(moved, len(moved), 0.0)] == ["Some new start."]
    assert checker.checked == 3
    edited = "The cat sat. The dog ran. "
    assert [s.text for s in checker.due(edited, len(edited), 0.0)] == ["The cat sat."]
    assert checker.findings("The cat sat.") == ()
    assert checker.findings("Teh cat sat.")[0].replacement == "The"


def test_nothing_is_due_while_the_speller_loads():
    checker = SentenceChecker(lambda: None)
    assert checker.due("Teh cat sat. ", 13, 5.0) == []
    assert checker.checked == 0


def test_the_model_is_asked_only_after_a_pause_and_once_per_sentence(speller):
    checker = SentenceChecker(lambda: speller)
    text = "One thing. Two things. "
    assert checker.model_due(text, len(text), 0.2) == []  # typing fast: nothing
    asked = checker.model_due(text, len(text), 1.5)
    assert [s.text for s in asked] == ["One thing.", "Two things."]
    assert checker.model_due(text, len(text), 3.0) == []  # in flight: not again
    checker.model_answered("One thing.", ())
    checker.model_failed("Two things.")
    assert checker.model_due(text, len(text), 3.0) == []


def test_sentences_finished_when_the_document_was_opened_are_not_the_models(speller):
    checker = SentenceChecker(lambda: speller)
    text = "Written before. "
    checker.opened(text, len(text))
    text += "Written now. "
    assert [s.text for s in checker.model_due(text, len(text), 2.0)] == ["Written now."]
