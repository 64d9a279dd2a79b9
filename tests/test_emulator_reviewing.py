"""The emulator's modelled reviewing: seeded, nested per model, edits applied, context needed."""

from __future__ import annotations

import json

from assistant.bench.reviews import load_corpus
from assistant.emulator.reviewing import apply_edits, review_reply
from assistant.review.requests import FINDINGS_SCHEMA, TRIAGE_SCHEMA, VERIFY_SCHEMA

CORPUS = load_corpus()


def body(model, user, schema=FINDINGS_SCHEMA):
    return {
        "model": model,
        "messages": [{"role": "user", "content": user}],
        "output_config": {"format": {"type": "json_schema", "schema": schema}},
    }


def quotes(reply: str, key="findings") -> set[str]:
    return {f["quote"] for f in json.loads(reply)[key]}


def test_same_request_same_answer_and_the_seed_changes_it():
    text = CORPUS.documents["prose-city.txt"]
    b = body("claude-haiku-5-5", f"<document>{text}</document>", TRIAGE_SCHEMA)
    one = review_reply(b, labels=CORPUS.labels, seed=0)
    assert one == review_reply(b, labels=CORPUS.labels, seed=0)
    answers = {review_reply(b, labels=CORPUS.labels, seed=s) for s in range(8)}
    assert len(answers) > 1


def test_what_haiku_finds_sonnet_finds_too():
    for name, text in CORPUS.documents.items():
        user = f"<document>{text}</document>"
        labelled = {label["quote"] for label in CORPUS.labels_of(name)}
        haiku = quotes(review_reply(body("claude-haiku-5-5", user), labels=CORPUS.labels))
        sonnet = quotes(review_reply(body("claude-sonnet-5-5", user), labels=CORPUS.labels))
        assert haiku & labelled <= sonnet & labelled, name


def test_a_contradiction_is_only_seen_with_the_statement_it_contradicts():
    sentence = (
        "The summary table says contractors at $84,000, which is what they will look at first."
    )
    evidence = "The team asked for $48,000 for contractors."
    for passages, expected in (([sentence], False), ([evidence, sentence], True)):
        user = "".join(f"<passage>{p}</passage>" for p in passages)
        user += "<findings>[]</findings><shown>[]</shown>"
        reply = review_reply(body("claude-sonnet-5-5", user, VERIFY_SCHEMA), labels=CORPUS.labels)
        assert ("contractors at $84,000" in quotes(reply)) is expected


def test_edits_are_applied_to_the_base_before_reviewing():
    base = "We recieve teh letter today."
    edits = [{"at": base.index("teh"), "old": "teh", "new": "the"}]
    assert apply_edits(base, edits) == "We recieve the letter today."
    assert apply_edits(base, [{"at": 0, "old": "nope", "new": "x"}]) == base  # a wrong edit
    user = f"<document>{base}</document><edits>{json.dumps(edits)}</edits>"
    found = quotes(review_reply(body("claude-haiku-5-5", user)))
    assert "recieve" in found and "teh" not in found


def test_without_labels_the_old_review_shape_is_kept():
    reply = json.loads(review_reply(body("claude-sonnet-5-5", "<document>teh end</document>", {})))
    assert reply == {
        "findings": [
            {
                "quote": "teh",
                "problem": '"teh" is misspelled.',
                "replacement": "the",
                "severity": "high",
            }
        ]
    }
