"""The review core: incremental findings parsing, quote validation, applying findings, the
offline rules, Sonnet through the real SDK against the emulator, and ``assistant review``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assistant.config import Settings
from assistant.emulator import Emulator, EmulatorConfig, EmulatorThread, Fault
from assistant.providers.base import ProviderError, ProviderErrorKind
from assistant.review.factory import make_reviewer
from assistant.review.findings import (
    Finding,
    FindingLocator,
    FindingsScanner,
    ReviewDelta,
    ReviewDone,
    StaleFinding,
    apply_finding,
    rebase_finding,
)
from assistant.review.rules import OfflineReviewer, rule_findings
from assistant.review.tiered import TieredReviewer

ROOT = Path(__file__).resolve().parents[2]
DOC = "I recieve teh letter  today. so i think it occured and and we are done.\n"


async def collect(reviewer, text):
    events = []
    async for ev in reviewer.review(text):
        events.append(ev)
    return events


# --- incremental parsing ---------------------------------------------------------------------

finding_dicts = st.fixed_dictionaries(
    {
        "quote": st.text(min_size=1, max_size=20),
        "problem": st.text(max_size=30),
        "replacement": st.text(max_size=20),
        "severity": st.sampled_from(["high", "medium", "low"]),
    }
)


@settings(max_examples=150, deadline=None)
@given(
    findings=st.lists(finding_dicts, max_size=6),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=30),
    indent=st.sampled_from([None, 2]),
    preamble=st.sampled_from(["", "```json\n", "Here are the findings:\n"]),
)
def test_scanner_yields_every_finding_whatever_the_chunk_boundaries(
    findings, cuts, indent, preamble
):
    doc = preamble + json.dumps({"findings": findings}, indent=indent, ensure_ascii=False)
    points = sorted({c % (len(doc) + 1) for c in cuts})
    chunks = [doc[a:b] for a, b in zip([0, *points], [*points, len(doc)], strict=True)]
    scanner = FindingsScanner()
    got = []
    for chunk in chunks:
        got.extend(scanner.feed(chunk))
    assert got == findings
    assert scanner.saw_root


def test_scanner_emits_each_finding_as_soon_as_its_object_closes():
    scanner = FindingsScanner()
    assert scanner.feed('{"findings": [{"quote": "a}", "problem": "x\\"}"') == []
    got = scanner.feed(', "replacement": "b", "severity": "low"}')
    assert got == [{"quote": "a}", "problem": 'x"}', "replacement": "b", "severity": "low"}]
    assert scanner.feed(', {"quote": "c"') == []


def test_scanner_ignores_a_truncated_object():
    scanner = FindingsScanner()
    got = scanner.feed(
        '{"findings":[{"quote":"a","problem":"p","replacement":"b","severity":"low"},{"quo'
    )
    assert len(got) == 1


# --- validation ------------------------------------------------------------------------------


def test_locator_drops_quotes_that_are_not_in_the_text():
    loc = FindingLocator("the cat sat")
    assert (
        loc.locate({"quote": "dog", "problem": "", "replacement": "x", "severity": "low"}) is None
    )
    f = loc.locate({"quote": "cat", "problem": "p", "replacement": "cow", "severity": "LOW"})
    assert f is not None and (f.start, f.end, f.severity, f.index) == (4, 7, "low", 0)
    assert loc.locate({"quote": "", "replacement": "x"}) is None
    assert loc.locate({"quote": 3, "replacement": "x"}) is None
    assert loc.dropped == 3


def test_locator_points_repeated_quotes_at_successive_occurrences():
    loc = FindingLocator("teh cat and teh dog")
    a = loc.locate({"quote": "teh", "problem": "", "replacement": "the", "severity": "high"})
    b = loc.locate({"quote": "teh", "problem": "", "replacement": "the", "severity": "high"})
    assert (a.start, b.start) == (0, 12)
    assert b.index == 1


# --- apply -----------------------------------------------------------------------------------


def _finding(text: str, quote: str, replacement: str) -> Finding:
    start = text.index(quote)
    return Finding(0, quote, "p", replacement, "low", start, start + len(quote))


def test_apply_replaces_the_quoted_span():
    text = "I recieve mail."
    assert apply_finding(text, _finding(text, "recieve", "receive")) == "I receive mail."


def test_apply_relocates_a_unique_quote_that_moved():
    text = "I recieve mail."
    f = _finding(text, "recieve", "receive")
    moved = "Today " + text
    assert apply_finding(moved, f) == "Today I receive mail."


def test_apply_refuses_a_quote_that_is_gone():
    text = "I recieve mail."
    f = _finding(text, "recieve", "receive")
    with pytest.raises(StaleFinding, match="no longer contains"):
        apply_finding("I got mail.", f)


def test_apply_refuses_an_ambiguous_moved_quote():
    text = "teh end"
    f = _finding(text, "teh", "the")
    with pytest.raises(StaleFinding, match="more than once"):
        apply_finding("so teh and teh end", f)


@given(
    st.text(max_size=40), st.text(min_size=1, max_size=8), st.text(max_size=8), st.text(max_size=40)
)
def test_apply_never_loses_text_around_the_quote(before, quote, replacement, after):
    text = before + quote + after
    f = Finding(0, quote, "p", replacement, "low", len(before), len(before) + len(quote))
    assert apply_finding(text, f) == before + replacement + after


def test_rebase_shifts_later_findings_and_drops_overlapping_ones():
    f = Finding(0, "abc", "p", "x", "low", 10, 13)
    assert rebase_finding(f, 0, 2, 5).start == 13
    assert rebase_finding(f, 20, 22, 0) == f
    assert rebase_finding(f, 11, 12, 3) is None


# --- offline rules ---------------------------------------------------------------------------


def test_rules_find_the_mechanical_problems():
    found = {(f["quote"], f["replacement"]) for f in rule_findings(DOC)}
    assert ("recieve", "receive") in found
    assert ("teh", "the") in found
    assert ("letter  today.", "letter today.") in found
    assert ("so i think", "so I think") in found
    assert ("occured", "occurred") in found
    assert ("and and", "and") in found


def test_rules_flag_a_long_sentence_as_low_severity():
    long = " ".join(["word"] * 45) + "."
    found = [f for f in rule_findings("Short one. " + long) if "Long sentence" in f["problem"]]
    assert len(found) == 1 and found[0]["severity"] == "low"
    assert found[0]["quote"] == long


def test_rules_leave_clean_text_alone():
    assert rule_findings("I think this is fine. It is, isn't it? I'm sure.") == []


async def test_offline_reviewer_streams_findings_then_done():
    events = await collect(OfflineReviewer(), DOC)
    findings = [e for e in events if isinstance(e, Finding)]
    done = events[-1]
    assert isinstance(done, ReviewDone)
    assert done.findings == len(findings) >= 6
    assert done.cost_usd == 0 and done.model == "offline-rules"
    assert [f.index for f in findings] == list(range(len(findings)))
    for f in findings:
        assert DOC[f.start : f.end] == f.quote


def test_make_reviewer_picks_by_key():
    assert isinstance(make_reviewer(Settings()), OfflineReviewer)
    assert isinstance(make_reviewer(Settings(api_key="k")), TieredReviewer)


# --- Sonnet alone against the emulator ------------------------------------------------------------


async def test_anthropic_reviewer_streams_findings_from_structured_output():
    async with Emulator(EmulatorConfig(profile="fast")) as emu:
        reviewer = TieredReviewer(
            Settings(api_key="test", base_url=emu.base_url, review_tier="sonnet")
        )
        try:
            events = await collect(reviewer, DOC)
        finally:
            await reviewer.aclose()
        body = emu.requests[0].body
    assert body["model"] == "claude-sonnet-5-5"
    assert body["output_config"]["format"]["type"] == "json_schema"
    # Sonnet 5.5 thinks by default and refuses "disabled": its up-front thinking is turned off
    assert body["thinking"] == {"type": "between_tools"}
    assert body["stream"] is True
    findings = [e for e in events if isinstance(e, Finding)]
    quotes = {f.quote for f in findings}
    assert {"recieve", "teh", "occured"} <= quotes
    for f in findings:
        assert DOC[f.start : f.end] == f.quote
    # Findings come while the text is still streaming, not all after it.
    first = events.index(findings[0])
    assert any(isinstance(e, ReviewDelta) for e in events[first + 1 :])
    done = events[-1]
    assert isinstance(done, ReviewDone)
    assert done.findings == len(findings)
    assert done.usage.output_tokens > 0 and done.cost_usd > 0


async def test_anthropic_reviewer_maps_api_errors():
    async with Emulator(EmulatorConfig(profile="instant")) as emu:
        emu.inject(Fault("auth"))
        reviewer = TieredReviewer(
            Settings(api_key="test", base_url=emu.base_url, review_tier="sonnet")
        )
        try:
            with pytest.raises(ProviderError) as info:
                await collect(reviewer, DOC)
        finally:
            await reviewer.aclose()
    assert info.value.kind == ProviderErrorKind.AUTH


async def test_anthropic_reviewer_keeps_findings_seen_before_a_mid_stream_error():
    async with Emulator(EmulatorConfig(profile="instant")) as emu:
        emu.inject(Fault("error_mid_stream", after_tokens=60))
        reviewer = TieredReviewer(
            Settings(api_key="test", base_url=emu.base_url, review_tier="sonnet")
        )
        events = []
        try:
            with pytest.raises(ProviderError) as info:
                async for ev in reviewer.review(DOC):
                    events.append(ev)
        finally:
            await reviewer.aclose()
    assert info.value.kind == ProviderErrorKind.OVERLOADED
    assert any(isinstance(e, Finding) for e in events)


# --- assistant review ------------------------------------------------------------------------


def _run_cli(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    env["PYTHONPATH"] = str(ROOT)
    env["ASSISTANT_CONFIG"] = "/nonexistent/config.toml"
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "assistant", "review", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=ROOT,
    )


def test_review_cli_offline_prints_findings_and_summary(tmp_path):
    path = tmp_path / "draft.md"
    path.write_text(DOC)
    proc = _run_cli(str(path))
    assert proc.returncode == 0, proc.stderr
    assert "recieve" in proc.stdout and "receive" in proc.stdout
    assert "findings" in proc.stdout.splitlines()[-1]
    assert "$0.0000" in proc.stdout


def test_review_cli_json_with_the_emulator(tmp_path):
    path = tmp_path / "draft.md"
    path.write_text(DOC)
    proc = _run_cli(
        str(path), "--json", "--emulator", env_extra={"ASSISTANT_EMULATOR_PROFILE": "fast"}
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    # Tiered by default: Haiku read it all; with only surface problems, Sonnet was not needed.
    assert out["model"] == "claude-haiku-5-5"
    assert [(t["tier"], t["status"]) for t in out["tiers"]] == [
        ("haiku", "ok"),
        ("sonnet", "skipped"),
    ]
    assert out["cost_usd"] > 0
    assert out["cost_usd"] == pytest.approx(sum(t["cost_usd"] for t in out["tiers"]))
    assert out["usage"]["output_tokens"] > 0
    quotes = {f["quote"] for f in out["findings"]}
    assert {"recieve", "teh"} <= quotes
    for f in out["findings"]:
        assert DOC[f["start"] : f["end"]] == f["quote"]
        assert f["tier"] == "haiku" and f["confirmed"] is False and f["confidence"] >= 0.8


def test_review_cli_tier_sonnet_json_says_who_found_what(tmp_path):
    path = tmp_path / "draft.md"
    path.write_text(DOC)
    proc = _run_cli(
        str(path),
        "--json",
        "--emulator",
        "--tier",
        "sonnet",
        env_extra={"ASSISTANT_EMULATOR_PROFILE": "fast"},
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["model"] == "claude-sonnet-5-5"
    assert [t["tier"] for t in out["tiers"]] == ["sonnet"]
    assert out["findings"] and all(
        f["tier"] == "sonnet" and f["confirmed"] is True for f in out["findings"]
    )


def test_review_cli_missing_file_exits_2(tmp_path):
    proc = _run_cli(str(tmp_path / "nope.md"))
    assert proc.returncode == 2
    assert "nope.md" in proc.stderr


def test_review_cli_error_exits_1_with_a_message(tmp_path):
    path = tmp_path / "draft.md"
    path.write_text(DOC)
    # The API refuses the key: reported in one line, not a traceback.
    with EmulatorThread(EmulatorConfig(api_key="the-right-key")) as emu:
        proc = _run_cli(
            str(path),
            env_extra={"ANTHROPIC_API_KEY": "a-wrong-key", "ANTHROPIC_BASE_URL": emu.base_url},
        )
    assert proc.returncode == 1
    assert "auth" in proc.stderr.lower()
    assert "a-wrong-key" not in proc.stderr
    assert "Traceback" not in proc.stderr


def test_review_cli_over_a_running_server(tmp_path):
    from server.runner import ServerThread

    path = tmp_path / "draft.md"
    path.write_text(DOC)
    settings = Settings(token="cli-test-token", offline="statistical")
    with ServerThread(settings) as srv:
        proc = _run_cli(str(path), "--json", "--server", srv.ws_url, "--token", srv.token)
        refused = _run_cli(str(path), "--server", srv.ws_url, "--token", "not-this-token-42")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["model"] == "offline-rules"
    assert {"recieve", "teh"} <= {f["quote"] for f in out["findings"]}
    assert refused.returncode == 1
    assert "Traceback" not in refused.stderr
    # Said as bench --server says it, not as "InvalidStatus: server rejected WebSocket …".
    assert "the server refused the connection (HTTP 403): wrong token" in refused.stderr
    assert "not-this-token-42" not in refused.stderr


def test_review_cli_says_when_it_cannot_reach_the_server(tmp_path):
    import socket

    path = tmp_path / "draft.md"
    path.write_text(DOC)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once it is closed
    gone = _run_cli(str(path), "--server", f"ws://127.0.0.1:{port}")
    assert gone.returncode == 1 and "Traceback" not in gone.stderr
    assert f"assistant review: cannot reach ws://127.0.0.1:{port}/v1/ws:" in gone.stderr


def test_review_bench_cli_reports_the_three_routes(tmp_path):
    corpus = ROOT / "tests" / "data" / "review_corpus"
    names = ["email-budget.txt", "notes-recipe.md"]
    labels = json.loads((corpus / "labels.json").read_text())["labels"]
    (tmp_path / "labels.json").write_text(
        json.dumps({"labels": [x for x in labels if x["document"] in names]})
    )
    for name in names:
        (tmp_path / name).write_text((corpus / name).read_text())
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    env.update(PYTHONPATH=str(ROOT), ASSISTANT_CONFIG="/nonexistent/config.toml")
    out = tmp_path / "rb.json"
    proc = subprocess.run(
        [sys.executable, "-m", "assistant", "review-bench", "--corpus", str(tmp_path)]
        + ["--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Modelled rates (emulator), not measured ones." in proc.stdout
    for row in ("| Sonnet only |", "| Haiku only |", "| tiered |"):
        assert proc.stdout.count(row) == 2  # the recall table and the cache table
    report = json.loads(out.read_text())
    assert set(report["routes"]) == {"sonnet", "haiku", "auto"}
    assert report["routes"]["auto"]["cost_usd"] < report["routes"]["sonnet"]["cost_usd"]
    assert {c["ok"] for c in report["checks"]} <= {True, False}
