"""``assistant bench --server`` options: a clear usage error (exit 2, nothing sent) for each
mistake, and the built-in bench's options unchanged."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.bench.remote import describe, jobs_for
from assistant.cli import build_parser
from assistant.commands import bench, bench_server
from assistant.commands.bench_server import UsageError, plan_from_args, wants_server
from assistant.emulator.options import OptionError

ROOT = Path(__file__).resolve().parents[2]


def args(*argv: str):
    return build_parser().parse_args(["bench", *argv])


@pytest.mark.parametrize(
    "argv, says",
    [
        (("--budget", "pause_p50=1"), "--budget needs --server URL"),
        (("--server", "ws://h:1", "--token", "t", "--quick"), "--quick applies to the built-in"),
        (("--server", "ws://h:1", "--token", "t", "--accuracy", "0.5"), "--emulator-accuracy"),
        (("--server", "ftp://h:1", "--token", "t"), "the scheme must be ws://"),
        (("--server", "ws://h:1"), "needs the server's token"),
        (("--server", "ws://h:1", "--token", "t", "--typists", "0"), "at least 1"),
        (("--server", "ws://h:1", "--token", "t", "--rate", "0"), "--rate must be more than 0"),
        (("--server", "ws://h:1", "--token", "t", "--cafile", "ca.pem"), "is for a wss://"),
        (("--server", "wss://h:1", "--token", "t", "--cafile", "/nope.pem"), "no such file"),
        (("--server", "ws://h:1", "--token", "t", "--passages", "/nope.txt"), "does not exist"),
        (("--server", "ws://h:1", "--token", "t", "--budget", "p50=1"), "unknown budget"),
        (("--server", "ws://h:1", "--token", "t", "--json", "/nope/r.json"), "does not exist"),
        (("--server", "ws://h:1", "--token", "t", "--lead-in", "-1"), "--lead-in must be 0 or"),
        (("--server", "ws://h:1", "--token", "t", "--lead-out", "-5"), "--lead-out must be 0 or"),
        (
            ("--server", "ws://h:1", "--token", "t", "--lead-in", "200000", "--lead-out", "70000"),
            "come to 270,000 characters",
        ),
    ],
)
def test_each_mistake_is_a_usage_error_that_says_what_to_fix(argv, says, monkeypatch):
    monkeypatch.delenv("ASSISTANT_TOKEN", raising=False)
    with pytest.raises(UsageError) as info:
        plan_from_args(args(*argv))
    assert says in str(info.value)


def test_a_bad_cafile_is_a_usage_error(tmp_path):
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate\n")
    with pytest.raises(UsageError, match="not a PEM CA certificate"):
        plan_from_args(args("--server", "wss://h", "--token", "t", "--cafile", str(bad)))


def test_the_plan_from_good_options(monkeypatch, tmp_path):
    monkeypatch.setenv("ASSISTANT_TOKEN", "from-the-env")
    passages = tmp_path / "mine.txt"
    passages.write_text("First passage here.\n\nSecond one, longer than that.\n")
    plan, lines = plan_from_args(
        args(
            "--server",
            "https://gate.example",
            "--passages",
            str(passages),
            "--budget",
            "pause_p95=900,pauses_shown=0.9",
            "--rate",
            "2",
            "--window",
            "30",
        )
    )
    assert plan.url == "wss://gate.example/v1/ws" and plan.token == "from-the-env"
    assert (plan.typists, plan.rate, plan.window_s) == (12, 2.0, 30.0)
    assert plan.passages == ("First passage here.", "Second one, longer than that.")
    assert [line.text for line in lines] == ["pause_p95 <= 900 ms", "pauses_shown >= 0.9"]
    assert (plan.lead_in_chars, plan.lead_out_chars) == (0, 0)


def test_typists_against_a_server_type_into_an_existing_document(monkeypatch):
    monkeypatch.setenv("ASSISTANT_TOKEN", "t")
    plan, _ = plan_from_args(
        args("--server", "ws://h:1", "--lead-in", "3000", "--lead-out", "500", "--typists", "3")
    )
    assert (plan.lead_in_chars, plan.lead_out_chars) == (3000, 500)
    jobs = jobs_for(plan)
    assert len({j.initial_text for j in jobs}) == 3  # each writer its own document (and cache)
    for job in jobs:
        # The built-in bench's document: 3,000 characters of other passages, then the typing.
        assert 2900 <= len(job.initial_text) <= 3002 and job.initial_text.endswith("\n\n")
        assert job.target.startswith(job.initial_text) and len(job.target) > len(job.initial_text)
        assert job.target[len(job.initial_text) :] not in job.initial_text
        assert job.suffix.startswith("\n\n") and 400 <= len(job.suffix) <= 502
    said = describe(plan, jobs)
    assert "after 3,000 chars of existing text and before 500 more" in said
    assert "each carrying the whole document" in said
    new, _ = plan_from_args(args("--server", "ws://h:1", "--typists", "1"))
    assert [(j.initial_text, j.suffix) for j in jobs_for(new)] == [("", "")]
    assert "into a new document" in describe(new, jobs_for(new))


@pytest.mark.parametrize(
    "argv, says",
    [
        (("--lead-in", "-5"), "--lead-in must be 0 or more characters, not -5"),
        (("--lead-out", "-1"), "--lead-out must be 0 or more characters"),
        (("--lead-in", "262145"), "at most 262,144"),
        (("--window", "0"), "--window must be a number of seconds more than 0"),
        (("--window", "-1"), "--window must be"),
        (("--window", "nan"), "--window must be"),
        (("--window", "inf"), "--window must be"),
        (("--connect-ms", "-1"), "--connect-ms must be 0 or more"),
        (("--connect-ms", "nan"), "--connect-ms must be"),
        (("--typists", "-1"), "--typists must be 0 or more"),
    ],
)
def test_the_built_in_bench_refuses_numbers_it_cannot_run(argv, says):
    # It ran them before: "--window -1" typed nothing, "--lead-in -5" printed "after -5 chars".
    with pytest.raises(OptionError) as info:
        bench.plan_from_args(args("--quick", *argv))
    assert says in str(info.value)


def test_the_built_in_bench_is_unchanged():
    assert not wants_server(args("--quick"))
    assert bench.plan_from_args(args()).load_typists == 200
    assert bench.plan_from_args(args("--typists", "0")).load_typists == 0
    assert wants_server(args("--server", "ws://h:1")) and bench_server.SUITE


def _asked(answer: bytes, tmp_path) -> tuple[int, str]:
    """``assistant bench --server`` with 13 typists at a terminal that answers ``answer``; the
    server address is closed, so a run that goes ahead fails to connect (exit 2, "cannot run")."""
    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "ASSISTANT_"))}
    env.update(PYTHONPATH=str(ROOT), ASSISTANT_CONFIG=str(tmp_path / "none.toml"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "assistant", "bench", "--server", "ws://127.0.0.1:9"]
        + ["--token", "t", "--typists", "13"],
        stdin=follower,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env=env,
    )
    os.close(follower)
    os.write(leader, answer)
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        os.close(leader)
    return proc.returncode, err.decode()


def test_more_than_a_few_typists_are_asked_for_at_a_terminal(tmp_path):
    code, err = _asked(b"n\n", tmp_path)
    assert code == 2 and "13 typists will connect" in err and "Go ahead? [y/N]" in err
    assert "cannot run" not in err  # nothing was sent
    code, err = _asked(b"y\n", tmp_path)
    assert code == 2 and "cannot run against ws://127.0.0.1:9/v1/ws: cannot reach" in err
