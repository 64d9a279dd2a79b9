"""The ``assistant`` command as a user runs it: a real subprocess."""

import os
import subprocess
import sys

import orjson
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*args, stdin="", env_extra=None, timeout=120):
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    env["PYTHONPATH"] = ROOT
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "assistant", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=ROOT,
    )


@pytest.mark.parametrize(
    "sub", ["suggest", "serve", "edit", "review", "review-bench", "bench", "usage"]
)
def test_every_subcommand_has_help(sub):
    out = run(sub, "--help")
    assert out.returncode == 0, out.stderr
    assert f"usage: assistant {sub}" in out.stdout


def test_top_level_help_lists_the_subcommands():
    out = run("--help")
    assert out.returncode == 0
    for sub in ("suggest", "serve", "edit", "review", "bench"):
        assert sub in out.stdout


def test_suggest_works_offline_with_no_key():
    doc = (
        "The garden was quiet in the morning. The garden was full of roses. "
        "In the morning the garden was"
    )
    out = run(
        "suggest", "--offline", "--json", stdin=doc, env_extra={"ASSISTANT_OFFLINE": "statistical"}
    )
    assert out.returncode == 0, out.stderr
    result = orjson.loads(out.stdout)
    assert result["source"] == "offline" and result["cost_usd"] == 0.0
    assert "\n" not in result["text"]


def test_suggest_completes_a_word_from_the_document():
    out = run(
        "suggest",
        "--offline",
        stdin="Photosynthesis matters. Plants use photosynth",
        env_extra={"ASSISTANT_OFFLINE": "statistical"},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("esis")


def test_unknown_subcommand_is_a_clear_error():
    out = run("frobnicate")
    assert out.returncode == 2 and "invalid choice" in out.stderr


@pytest.mark.local_model
@pytest.mark.skipif(
    not __import__("assistant.providers.local", fromlist=["available"]).available(),
    reason="xllamacpp / Gemma weights missing (the local extra)",
)
def test_suggest_waits_for_the_local_model_and_completes_the_word():
    out = run(
        "suggest",
        "--json",
        stdin="Thank you for your email. I will get back to you as soon as poss",
        env_extra={"ASSISTANT_OFFLINE": "auto"},
    )
    assert out.returncode == 0, out.stderr
    result = orjson.loads(out.stdout)
    assert (result["source"], result["provider"]) == ("offline", "local")
    assert result["text"].startswith("ible"), result
    assert "loading the local model" in out.stderr  # the wait is said, on stderr


def test_usage_reads_the_ledger_and_serve_refuses_a_short_jwt_secret(tmp_path):
    from server.ledger import Row, SqlStore

    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    store = SqlStore(url)
    rows = [
        Row(f"p-{i}", 1_800_000_000.0 + i, "2027-01-15", w, "c1", "claude-haiku-5-5",
            "suggestion", 100, 0, 0, 10, 0.000015, False, False)
        for i, w in enumerate(["ann", "ann", "ben"])
    ]  # fmt: skip
    store.write(rows, {("ann", "2027-01-15"): 42})
    store.close()
    env = {"ASSISTANT_DATABASE_URL": url, "ASSISTANT_CONFIG": str(tmp_path / "none.toml")}
    out = run("usage", "--since", "2027-01-01", "--json", env_extra=env)
    assert out.returncode == 0, out.stderr
    assert orjson.loads(out.stdout) == {
        "writers": [
            {"writer": "ann", "requests": 2, "cost_usd": 0.00003, "accepted_chars": 42},
            {"writer": "ben", "requests": 1, "cost_usd": 0.000015, "accepted_chars": 0},
        ]
    }
    out = run("usage", "--writer", "ben", "--since", "2027-01-01", env_extra=env)
    assert out.returncode == 0 and "ben" in out.stdout and "ann" not in out.stdout
    out = run("usage", "--since", "2099-01-01", env_extra=env)
    assert "no requests recorded" in out.stdout
    out = run("usage", "--since", "last week", env_extra=env)
    assert out.returncode == 2 and "since must be a date" in out.stderr
    out = run("serve", "--port", "0", env_extra=env | {"ASSISTANT_JWT_SECRET": "too-short"})
    assert out.returncode == 2 and "at least 32 bytes" in out.stderr
    out = run("serve", "--port", "0", env_extra=env | {"ASSISTANT_DATABASE_URL": "mysql://db/x"})
    assert out.returncode == 2 and "must be sqlite:///PATH or postgresql://" in out.stderr
