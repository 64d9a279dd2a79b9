"""Typing traces: realistic pace per typist, corrections, and the passage rebuilt exactly."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

import assistant
from assistant.bench.traces import (
    COMMON_BIGRAMS,
    TYPISTS,
    Keystroke,
    Trace,
    dumps,
    generate,
    generate_all,
    load_passages,
    load_traces,
    write_all,
)

# Target mean inter-key interval bands (ms), pauses and corrections included. Dhakal et al. 2018:
# ~52 WPM (~230 ms) on average; fast 80-100 WPM; slow 25-30 WPM.
BANDS = {"slow": (380.0, 520.0), "average": (200.0, 265.0), "fast": (115.0, 155.0)}


def correction_runs(trace: Trace) -> int:
    runs, prev = 0, None
    for e in trace.events:
        runs += e.kind == "backspace" and prev != "backspace"
        prev = e.kind
    return runs


@pytest.fixture(scope="module")
def saved() -> list[Trace]:
    return load_traces()


def test_every_typist_types_every_passage(saved):
    names = {t.name for t in saved}
    assert names == {f"{typ}-{p}" for typ in TYPISTS for p in load_passages()}


def test_saved_traces_rebuild_their_passage(saved):
    passages = load_passages()
    for t in saved:
        assert t.final_text == passages[t.passage]
        assert t.replay() == t.final_text
        assert list(t.documents())[-1] == t.final_text


def test_times_start_at_zero_and_never_go_back(saved):
    for t in saved:
        assert t.events[0].t_ms == 0
        assert all(g >= 0 for g in t.intervals_ms())


@pytest.mark.parametrize("typist", list(TYPISTS))
def test_mean_interval_is_in_the_typists_band(saved, typist):
    lo, hi = BANDS[typist]
    for t in (t for t in saved if t.typist == typist):
        assert lo <= t.mean_iki_ms <= hi, (t.name, t.mean_iki_ms)


def test_typists_are_ordered_by_pace(saved):
    def mean(typ):
        return statistics.mean(t.mean_iki_ms for t in saved if t.typist == typ)

    assert mean("fast") < mean("average") < mean("slow")


def test_intervals_are_right_skewed_with_long_pauses(saved):
    for typist in TYPISTS:
        gaps = [g for t in saved if t.typist == typist for g in t.intervals_ms()]
        # lognormal-like: mean above median, and some thinking pauses of a second or more
        assert statistics.mean(gaps) > statistics.median(gaps)
        assert any(g >= 1000 for g in gaps)
        assert max(gaps) <= 4000 + 20 * TYPISTS[typist].mean_iki_ms


def test_sentence_starts_are_slower_than_letters_inside_words(saved):
    for t in saved:
        inside, sentence = [], []
        doc = ""
        for prev, e in zip(t.events, t.events[1:], strict=False):
            doc = prev.apply(doc)
            if e.kind != "type":
                continue
            gap = e.t_ms - prev.t_ms
            if doc.endswith((". ", "? ")):
                sentence.append(gap)
            elif doc[-1:].isalpha() and e.text.isalpha():
                inside.append(gap)
        if len(sentence) >= 3:
            assert statistics.median(sentence) > 2 * statistics.median(inside), t.name


def test_common_bigrams_are_typed_faster():
    trace = generate(load_passages()["prose"] * 3, "average", seed=7, passage="long")
    common, other = [], []
    doc = ""
    for prev, e in zip(trace.events, trace.events[1:], strict=False):
        doc = prev.apply(doc)
        if e.kind == "type" and doc[-1:].isalpha() and e.text.isalpha():
            pair = (doc[-1] + e.text).lower()
            (common if pair in COMMON_BIGRAMS else other).append(e.t_ms - prev.t_ms)
    assert statistics.median(common) < statistics.median(other)


def test_correction_rate_is_a_few_percent_of_words():
    runs = words = 0
    for seed in range(6):
        for t in generate_all(seed):
            runs += correction_runs(t)
            words += len(t.final_text.split())
    assert 0.02 <= runs / words <= 0.05


def test_corrections_exist_in_the_saved_traces(saved):
    for typist in TYPISTS:
        assert sum(correction_runs(t) for t in saved if t.typist == typist) >= 2


def test_generation_is_seeded(tmp_path):
    text = load_passages()["email"]
    assert generate(text, "fast", 3, "email") == generate(text, "fast", 3, "email")
    assert generate(text, "fast", 3, "email") != generate(text, "fast", 4, "email")


def test_regenerating_writes_identical_files(tmp_path):
    write_all(tmp_path)
    shipped_dir = Path(assistant.__file__).parent / "data" / "traces"
    shipped = {p.name: p.read_bytes() for p in shipped_dir.glob("*.json")}
    fresh = {p.name: p.read_bytes() for p in tmp_path.glob("*.json")}
    assert fresh == shipped
    assert all(dumps(t).encode() == shipped[f"{t.name}.json"] for t in load_traces())


def test_window_starts_from_the_document_so_far(saved):
    t = saved[0]
    before, part = t.window(100, 50)
    assert part[0].t_ms == 0 and len(part) == 50
    doc = before
    for e in part:
        doc = e.apply(doc)
    assert doc == list(t.documents())[149]


def test_keystroke_json_round_trip():
    for k in (Keystroke(5, "type", "\n"), Keystroke(9, "backspace")):
        assert Keystroke.from_json(k.to_json()) == k
