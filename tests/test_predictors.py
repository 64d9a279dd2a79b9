"""The emulator's predictors: the oracle's upper bound, the noisy predictor's accuracy and
purity, the user's passage files, and the options every command shares."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.bench.traces import load_passages
from assistant.emulator import Emulator, EmulatorConfig
from assistant.emulator.options import (
    OptionError,
    add_predictor_arguments,
    parse_name_list,
    predictor_choice,
)
from assistant.emulator.predictors import (
    REQUEST_KEY_CHARS,
    NoisyPredictor,
    OracleFileError,
    OraclePredictor,
    load_oracle_file,
    make_predictor,
    parse_passages,
)

PASSAGES = tuple(load_passages().values())
PROSE = load_passages()["prose"]


def first_word(text: str) -> str:
    m = re.match(r"\s*\S+", text)
    return m.group(0) if m else ""


def cut_points(text: str, every: int = 11) -> list[int]:
    """Places in ``text`` to ask at: after a space, mid-word, after punctuation."""
    return list(range(40, len(text) - 40, every))


def first_word_right(pred, text: str, at: int) -> bool:
    got = pred.text(text[:at])
    return bool(got) and text[at:].startswith(first_word(got))


def test_oracle_continues_the_passage():
    oracle = OraclePredictor(PASSAGES)
    for at in cut_points(PROSE, 97):
        assert PROSE[at:].startswith(oracle.text(PROSE[:at]))


@pytest.mark.parametrize("p", [0.0, 0.3, 0.7, 1.0])
def test_noisy_first_word_is_right_about_p_of_the_time(p):
    noisy = NoisyPredictor(PASSAGES, seed=1, accuracy=p)
    points = cut_points(PROSE, 3)
    rate = sum(first_word_right(noisy, PROSE, at) for at in points) / len(points)
    # A wrong completion of a word can still be a prefix of the right word's text once in a
    # while (and P = 0 may luck into one); the rate tracks P within a few points.
    assert abs(rate - p) < 0.08, (p, rate, len(points))


def test_noisy_right_suggestions_stay_right_for_a_few_words_then_diverge():
    noisy = NoisyPredictor(PASSAGES, seed=2, accuracy=1.0)
    right_words = []
    for at in cut_points(PROSE, 5):
        if not PROSE[at - 1].isspace():
            continue
        got = noisy.text(PROSE[:at])
        words = re.findall(r"\s*\S+", got)
        n = 0
        while n < len(words) and PROSE[at:].startswith("".join(words[: n + 1])):
            n += 1
        right_words.append(n)
        assert n >= 1
    mean = sum(right_words) / len(right_words)
    assert 2.0 <= mean <= 5.0, mean  # about three with the 0.85 decay
    assert min(right_words) == 1 and max(right_words) >= 5


def test_noisy_is_a_pure_function_of_seed_and_request():
    a = NoisyPredictor(PASSAGES, seed=5, accuracy=0.3)
    b = NoisyPredictor(PASSAGES, seed=5, accuracy=0.3)
    c = NoisyPredictor(PASSAGES, seed=6, accuracy=0.3)
    texts = [PROSE[:at] for at in cut_points(PROSE, 37)]
    assert [a.text(t) for t in texts] == [b.text(t) for t in texts]
    assert [a.text(t) for t in texts] == [a.text(t) for t in texts]  # asked again: same answer
    assert [a.text(t) for t in texts] != [c.text(t) for t in texts]


def test_noisy_draws_depend_on_the_text_near_the_cursor_not_on_far_context():
    """A prompt that sends less of a long document meets the same draws, so a before/after
    comparison of the context window compares the same lucky guesses."""
    a = NoisyPredictor(PASSAGES, seed=5, accuracy=0.3)
    far = ("An unrelated opening paragraph about something else entirely. " * 80) + "\n\n"
    texts = [PROSE[:at] for at in cut_points(PROSE, 37)]
    window = far[-REQUEST_KEY_CHARS:]  # any window that keeps this much before the cursor
    assert [a.text(far + t) for t in texts] == [a.text(window + t) for t in texts]
    near = [a.text(t + " and") for t in texts]
    assert near != [a.text(t[:-1] + "X and") for t in texts]  # the last characters still count


def test_noisy_wrong_suggestions_read_as_prose_and_differ_from_the_writer():
    noisy = NoisyPredictor(PASSAGES, seed=3, accuracy=0.0)
    for at in cut_points(PROSE, 41):
        got = noisy.text(PROSE[:at])
        assert got.strip() and len(got.split()) >= 4
        assert not PROSE[at:].startswith(first_word(got))


def test_unknown_text_gets_plausible_prose_from_every_predictor():
    for name in ("oracle", "noisy"):
        pred = make_predictor(name, PASSAGES, accuracy=1.0)
        assert pred.text("Completely unrelated words zzqx ").strip()


def test_bad_predictor_options_are_refused():
    with pytest.raises(ValueError, match="unknown predictor"):
        make_predictor("psychic", PASSAGES)
    with pytest.raises(ValueError, match="between 0 and 1"):
        NoisyPredictor(PASSAGES, accuracy=1.5)


# -- passage files ------------------------------------------------------------------------------


def test_a_text_file_splits_into_passages_at_blank_lines(tmp_path):
    f = tmp_path / "mine.txt"
    f.write_bytes(b"\xef\xbb\xbfFirst para\r\nstill first.\r\n\r\n  \r\nSecond para.\n\n\n")
    assert load_oracle_file(f) == ("First para\nstill first.", "Second para.")
    assert parse_passages("one\n\t\ntwo") == ("one", "two")


@pytest.mark.parametrize(
    "content, problem",
    [
        (None, "does not exist"),
        (b"", "is empty"),
        (b"\n \n\t\n", "is empty"),
        (b"PK\x03\x04\x00\x00binary", "looks binary"),
        (b"caf\xe9 latin-1", "not UTF-8"),
    ],
)
def test_unusable_files_get_a_clear_error(tmp_path, content, problem):
    f = tmp_path / "x.txt"
    if content is not None:
        f.write_bytes(content)
    with pytest.raises(OracleFileError, match=problem):
        load_oracle_file(f)
    with pytest.raises(OracleFileError, match="directory"):
        load_oracle_file(tmp_path)


async def test_the_emulator_predicts_from_a_users_file(tmp_path):
    """Any text the user gives: the noisy predictor at P = 1 continues it, at P = 0 it never
    does, through the real SDK."""
    from anthropic import AsyncAnthropic

    text = "The harbour master counted the boats twice before he let anyone leave the quay."
    f = tmp_path / "notes.txt"
    f.write_text("Unrelated first passage.\n\n" + text + "\n", encoding="utf-8")
    passages = load_oracle_file(f)
    asked = "The harbour master counted the "
    for p, expect_right in ((1.0, True), (0.0, False)):
        cfg = EmulatorConfig(oracle_texts=passages, predictor="noisy", accuracy=p)
        async with Emulator(cfg) as emu:
            client = AsyncAnthropic(api_key="k", base_url=emu.base_url, max_retries=0)
            msg = await client.messages.create(
                model="claude-haiku-4-5",
                max_tokens=20,
                messages=[
                    {
                        "role": "user",
                        "content": f"<text_before_cursor>{asked}</text_before_cursor>",
                    }
                ],
            )
            await client.close()
        got = msg.content[0].text
        assert text[len(asked) :].startswith(first_word(got)) is expect_right, got


# -- the shared options -------------------------------------------------------------------------


def parse(argv, **kw):
    parser = argparse.ArgumentParser()
    add_predictor_arguments(parser, **kw)
    return parser.parse_args(argv)


def test_options_give_the_predictor_accuracy_and_passages(tmp_path):
    f = tmp_path / "p.txt"
    f.write_text("a passage\n\nanother one\n")
    choice = predictor_choice(
        parse(
            [
                "--emulator-predictor",
                "noisy",
                "--emulator-accuracy",
                "0.5",
                "--emulator-oracle",
                str(f),
            ]
        )
    )
    assert choice.predictors == ("noisy",) and choice.accuracy == 0.5
    assert choice.passages == ("a passage", "another one")
    default = predictor_choice(parse([]))
    assert default.predictors == ("oracle",) and default.passages == PASSAGES


def test_option_errors_say_what_to_fix(tmp_path):
    with pytest.raises(SystemExit):
        parse(["--emulator-accuracy", "1.2"])
    with pytest.raises(OptionError, match="does not exist"):
        predictor_choice(parse(["--emulator-oracle", str(tmp_path / "nope.txt")]))
    many = parse(["--predictors", "noisy,oracle,bogus"], many=True)
    with pytest.raises(OptionError, match="unknown predictor bogus"):
        predictor_choice(many)
    assert parse_name_list("local, noisy", ("noisy", "oracle", "local"), "x") == ("noisy", "local")


# -- the local predictor's plumbing, with a stand-in for the model --------------------------------


class SlowModel:
    """Writes a fixed continuation after ``seconds``; counts calls and cancellations."""

    model = "stand-in"

    def __init__(self, seconds: float, text: str = " and the rest"):
        self.seconds, self.text = seconds, text
        self.calls = self.cancelled = 0

    async def stream(self, request):
        import asyncio

        from assistant.pricing import Usage
        from assistant.providers.base import Final, TextChunk

        self.calls += 1
        try:
            await asyncio.sleep(self.seconds)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        yield TextChunk(self.text)
        yield Final(usage=Usage(), model=self.model, source="offline")


async def ask(emu, before: str, wait_s: float | None = None) -> str:
    from anthropic import AsyncAnthropic

    client = AsyncAnthropic(api_key="k", base_url=emu.base_url, max_retries=0, timeout=wait_s)
    try:
        msg = await client.messages.create(
            model="claude-haiku-4-5",
            max_tokens=16,
            messages=[
                {"role": "user", "content": f"<text_before_cursor>{before}</text_before_cursor>"}
            ],
        )
        return msg.content[0].text
    finally:
        await client.close()


async def test_local_text_is_memoised_and_the_profile_hides_its_generation_time():
    from assistant.emulator import LatencyProfile
    from assistant.emulator.predictors import LocalPredictor

    model = SlowModel(0.1)
    profile = LatencyProfile(600.0, 600.0, 0.0, 0.0)
    async with Emulator(EmulatorConfig(profile=profile, predictor=LocalPredictor(model))) as emu:
        assert await ask(emu, "Fish") == " and the rest"
        assert await ask(emu, "Fish") == " and the rest"  # the same request: the same answer
        assert model.calls == 1
        # The model's 100 ms ran inside the profile's 600 ms time to first token.
        assert emu.predictor_overruns == 0
        rec = emu.requests[0]
        assert rec.first_token_at - rec.started >= 0.59
        assert emu.config.describe() == "local (stand-in)"
    slow = SlowModel(0.5)
    profile = LatencyProfile(50.0, 50.0, 0.0, 0.0)
    async with Emulator(EmulatorConfig(profile=profile, predictor=LocalPredictor(slow))) as emu:
        assert await ask(emu, "Fish") == " and the rest"
        assert emu.predictor_overruns == 1  # slower than the profile: counted, and reported


async def test_local_generation_stops_when_the_client_leaves():
    import asyncio

    from anthropic import APITimeoutError

    from assistant.emulator.predictors import LocalPredictor

    model = SlowModel(30.0)
    async with Emulator(EmulatorConfig(predictor=LocalPredictor(model))) as emu:
        with pytest.raises(APITimeoutError):
            await ask(emu, "Fish", wait_s=0.3)
        for _ in range(100):
            if model.cancelled:
                break
            await asyncio.sleep(0.02)
        assert model.cancelled == 1
        assert emu.requests[-1].client_disconnected


def test_python_m_assistant_emulator_refuses_a_bad_file_and_accepts_the_long_spellings(tmp_path):
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-m", "assistant.emulator", "--emulator-predictor", "noisy"]
        + ["--emulator-oracle", str(tmp_path / "missing.txt")],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr
