"""The commands on input a new user gives them (issue 22): a clear message and a non-zero exit,
never a traceback, an invented line or a long run that ends in a crash. Real subprocesses."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

from tests.test_cli import ROOT, run

OFFLINE = {"ASSISTANT_OFFLINE": "statistical"}


def clear_refusal(out, *words: str) -> None:
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert out.stdout == ""
    assert "Traceback" not in out.stderr and "codec" not in out.stderr
    for word in words:
        assert word in out.stderr, out.stderr


@pytest.mark.parametrize("stdin", ["", "   \n\n", "\n"])
def test_suggest_refuses_empty_stdin(stdin):
    clear_refusal(run("suggest", "--offline", stdin=stdin, env_extra=OFFLINE), "empty")


@pytest.mark.parametrize("data", [b"\x7fELF\x02\x01\x01\x00\x00\x00", b"\xff\xfe\xfdabc"])
def test_suggest_refuses_binary_stdin(data):
    out = subprocess.run(
        [sys.executable, "-m", "assistant", "suggest", "--offline"],
        input=data,
        capture_output=True,
        env={"PYTHONPATH": ROOT, "PATH": "/usr/bin:/bin", **OFFLINE},
        cwd=ROOT,
        timeout=120,
    )
    out.stdout, out.stderr = out.stdout.decode(), out.stderr.decode()
    clear_refusal(out, "text")
    assert "llama" not in out.stderr


def test_suggest_refuses_a_closed_stdin():
    out = subprocess.run(
        ["/bin/sh", "-c", f'exec "{sys.executable}" -m assistant suggest --offline <&-'],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": ROOT, "PATH": "/usr/bin:/bin", **OFFLINE},
        cwd=ROOT,
        timeout=120,
    )
    clear_refusal(out, "closed")


def test_suggest_says_when_there_is_no_suggestion():
    out = run("suggest", "--offline", stdin="zzqxv", env_extra=OFFLINE)
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""  # not an unexplained empty line
    assert "no suggestion" in out.stderr
    out = run("suggest", "--offline", "--json", stdin="zzqxv", env_extra=OFFLINE)
    assert orjson.loads(out.stdout)["text"] == ""


def test_review_refuses_a_binary_file_with_a_clear_message(tmp_path):
    for name, data in (("a.md", b"\x7fELF\x02\x01\x00\x00"), ("b.md", b"caf\xe9 au lait")):
        path = tmp_path / name
        path.write_bytes(data)
        out = run("review", str(path), env_extra=OFFLINE)
        clear_refusal(out, "not a text file", str(path))


@pytest.mark.parametrize("option", ["--json", "--markdown"])
def test_bench_refuses_an_unwritable_report_path_before_the_run(tmp_path, option):
    # The whole bench takes minutes; the refusal must come at once (the timeout would fire).
    missing = tmp_path / "missing"  # (not /nonexistent: a root process may have made it)
    out = run("bench", "--quick", option, str(missing / "x.json"), timeout=60)
    clear_refusal(out, str(missing), "does not exist")
    out = run("bench", "--quick", option, str(tmp_path), timeout=60)
    clear_refusal(out, "directory")


@pytest.mark.parametrize(
    "argv, says",
    [(("--window", "-1"), "--window must be"), (("--lead-in", "-5"), "--lead-in must be")],
)
def test_bench_refuses_a_number_it_cannot_run_before_the_run(argv, says):
    # Both ran the whole bench before, typing nothing or reporting "after -5 chars".
    clear_refusal(run("bench", "--quick", *argv, timeout=60), says)


@pytest.mark.parametrize("port", ["70000", "-1"])
def test_serve_refuses_a_port_that_does_not_exist(port):
    # 70000 listened on 4464 and printed that address; -1 failed in the resolver
    # ("Servname not supported for ai_socktype").
    clear_refusal(run("serve", "--port", port, timeout=60), f"not {port}", "0-65535")


@pytest.mark.parametrize(
    "argv",
    [
        ("serve",),
        ("edit", "notes.md"),
        ("review", "README.md"),
        ("suggest", "--offline"),
        ("usage",),
        ("bench", "--quick"),
    ],
)
@pytest.mark.parametrize(
    "toml, says",
    [
        ("bogus = 1\n", "unknown setting(s): bogus"),  # a traceback from every command before
        ("port = \n", "not a readable TOML file"),  # and this one
        ('port = "8080"\n', "port must be a whole number"),  # taken as it came
        ("suggest_max_tokens = 0\n", "suggest_max_tokens must be more than 0"),
    ],
)
def test_every_command_refuses_a_bad_config_file_by_name(tmp_path, argv, toml, says):
    config = tmp_path / "config.toml"
    config.write_text(toml)
    out = run(*argv, stdin="Hello wor", env_extra={"ASSISTANT_CONFIG": str(config)}, timeout=60)
    clear_refusal(out, f"assistant {argv[0]}: {config}: {says}")


@pytest.mark.parametrize(
    "env, says",
    [
        ({"ASSISTANT_OFFLINE": "gpu"}, "ASSISTANT_OFFLINE: offline must be one of"),  # a traceback
        ({"ASSISTANT_SUGGEST_MODEL": "gpt-9"}, "suggest_model 'gpt-9' is not in the model table"),
        ({"ASSISTANT_MODELS": "/dev/null/models.toml"}, "not a usable model table"),  # and this
    ],
)
@pytest.mark.parametrize("argv", [("serve",), ("suggest", "--offline")])
def test_a_bad_setting_in_the_environment_is_a_usage_error(argv, env, says):
    clear_refusal(run(*argv, stdin="Hello wor", env_extra=env, timeout=60), says)


@pytest.mark.parametrize("command", ["edit", "review"])
@pytest.mark.parametrize(
    "url, says",
    [
        ("ftp://x", "the scheme must be ws://, wss://, http:// or https://, not ftp://"),
        ("ws://h:port", "Port could not be cast"),
        ("http://[::1", "Invalid IPv6 URL"),
    ],
)
def test_a_server_address_that_cannot_name_one_is_refused_before_anything_opens(command, url, says):
    # The editor opened and retried for ever; review said "InvalidURI: …" and exited 1.
    clear_refusal(run(command, "README.md", "--server", url, timeout=60), f"--server {url!r}", says)
