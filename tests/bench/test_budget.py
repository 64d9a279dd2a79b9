"""The budget of ``assistant bench --server``: parsed with clear errors, each line held or missed
(an unmeasured figure misses), JUnit XML a CI system can read; the remote typists are the
built-in bench's; the endpoint and TLS context a ``wss://`` run uses."""

from __future__ import annotations

import ssl
from xml.etree import ElementTree as ET

import pytest

from assistant.bench.budget import BudgetError, check, junit_xml, parse_budget
from assistant.bench.remote import (
    RemotePlan,
    describe,
    jobs_for,
    peak_keys_per_second,
)
from assistant.bench.suggestions import BenchPlan, pick_traces, trace_window
from assistant.endpoint import (
    client_ssl_context,
    describe_connect_error,
    endpoint_problem,
    ws_endpoint,
)

REPORT = {
    "pause_to_visible_ms": {"n": 40, "p50": 210.0, "p95": 640.0, "p99": 900.0},
    "key_to_visible_ms": {"n": 300, "p50": 1.0, "p95": 400.0, "p99": 700.0},
    "visible_at_pause_share": 0.72,
    "acceptance_rate": 0.6,
    "saved_share": 0.3,
    "errors": 0,
    "disconnects": 1,
    "violation_count": 0,
    "cost_per_typing_hour_usd": 0.14,
}


def test_a_budget_holds_or_misses_each_line():
    lines = parse_budget("pause_p50=300, pause_p95=600,pauses_shown=0.9,errors=0,disconnects=0")
    outcomes = {o.line.metric.name: o for o in check(lines, REPORT)}
    assert outcomes["pause_p50"].held  # 210 <= 300
    assert not outcomes["pause_p95"].held  # 640 > 600
    assert not outcomes["pauses_shown"].held  # a share is a lower bound: 0.72 < 0.9
    assert outcomes["errors"].held
    assert not outcomes["disconnects"].held
    assert outcomes["pause_p95"].text.startswith("MISSED  pause_p95 <= 600 ms")
    assert "measured 640 ms" in outcomes["pause_p95"].text
    assert outcomes["pause_p50"].text.startswith("held    pause_p50 <= 300 ms")


def test_a_figure_that_was_not_measured_misses_its_line():
    (outcome,) = check(parse_budget("pause_p99=5000"), {"pause_to_visible_ms": {"n": 0}})
    assert outcome.measured is None and not outcome.held
    assert "not measured" in outcome.text


@pytest.mark.parametrize(
    "text, says",
    [
        ("pause_p42=3", "unknown budget 'pause_p42'; choose from pause_p50"),
        ("pause_p50", "has no value"),
        ("pause_p50=fast", "is not a number"),
        ("pause_p50=-1", "0 or more"),
        ("pause_p50=nan", "finite"),
        ("pauses_shown=90", "between 0 and 1"),
        ("errors=0,errors=1", "given twice"),
        (" , ", "empty budget"),
    ],
)
def test_a_bad_budget_says_what_is_wrong(text, says):
    with pytest.raises(BudgetError, match=None) as info:
        parse_budget(text)
    assert says in str(info.value)


def test_junit_xml_has_a_case_per_line_and_a_failure_per_miss():
    outcomes = check(parse_budget("pause_p50=300,pause_p95=600"), REPORT)
    root = ET.fromstring(junit_xml(outcomes, suite="assistant bench --server", seconds=12.0))
    suite = root.find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("2", "1", "0")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["pause_p50 <= 300 ms", "pause_p95 <= 600 ms"]
    assert cases[0].find("failure") is None
    assert "measured 640 ms" in cases[1].find("failure").get("message")

    error = ET.fromstring(junit_xml([], suite="s", seconds=0, error="HTTP 403")).find("testsuite")
    assert error.get("errors") == "1" and error.find("testcase/error").get("message") == "HTTP 403"


def test_the_remote_typists_type_the_built_in_benchs_traces():
    plan = RemotePlan(url="ws://h:1/v1/ws", token="t", window_s=20.0)
    jobs = jobs_for(plan)
    builtin = pick_traces(BenchPlan(window_s=20.0))
    assert [j.name for j in jobs] == [t.name for t in builtin]
    assert [j.events for j in jobs] == [trace_window(t, 20.0) for t in builtin]
    assert [j.target for j in jobs] == [t.final_text for t in builtin]

    more = jobs_for(RemotePlan(url="ws://h:1/v1/ws", token="t", typists=26, rate=2.0))
    assert len(more) == 26 and more[12].name == more[0].name + "#2"
    assert more[-1].start_s == pytest.approx(12.5)  # 2 a second: the 26th after 12.5 s

    text = "One two three. Four five."
    own = jobs_for(RemotePlan(url="ws://h:1", token="t", typists=3, passages=(text,)))
    assert [j.name for j in own] == ["slow-file1", "average-file1", "fast-file1"]
    assert {j.target for j in own} == {text}


def test_a_token_in_the_address_is_never_printed():
    plan = RemotePlan(url="wss://h/v1/ws?token=s3cret-token", token="s3cret-token")
    assert plan.shown_url == "wss://h/v1/ws"
    assert "s3cret" not in describe(plan, jobs_for(plan))


def test_the_summary_says_how_much_will_be_sent():
    plan = RemotePlan(url="wss://h/v1/ws", token="t", typists=30, rate=5.0, window_s=10.0)
    jobs = jobs_for(plan)
    text = describe(plan, jobs)
    keys = sum(len(j.events) for j in jobs)
    assert "30 typists will connect to wss://h/v1/ws" in text
    assert "at most 5 new connections a second" in text
    assert f"{keys:,} keystrokes" in text and "billed to its API key" in text
    assert 0 < peak_keys_per_second(jobs) <= keys


def test_endpoints_and_their_tls_context(tmp_path):
    assert ws_endpoint("127.0.0.1:8765") == "ws://127.0.0.1:8765/v1/ws"
    assert ws_endpoint("https://bench.example/") == "wss://bench.example/v1/ws"
    assert ws_endpoint("ws://h:1?token=t") == ws_endpoint("ws://h:1/?token=t")
    assert ws_endpoint("ws://h:1?token=t") == "ws://h:1/v1/ws?token=t"
    assert ws_endpoint("ws://h:1/v1/ws?token=t") == "ws://h:1/v1/ws?token=t"
    assert endpoint_problem("https://bench.example") == ""
    assert "scheme must be" in endpoint_problem("ftp://h:1")
    assert "port" in endpoint_problem("ws://h:notaport")
    assert "names no host" in endpoint_problem("ws://:8765")
    assert client_ssl_context("ws://h:1") is None
    context = client_ssl_context("https://h")
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_connect_errors_are_sentences_an_operator_can_act_on():
    refused = describe_connect_error(ConnectionRefusedError(111, "Connection refused"), "ws://h:1")
    assert refused == "cannot reach ws://h:1: Connection refused"
    assert "no answer" not in describe_connect_error(TimeoutError(), "ws://h:1")
    assert "connect timeout" in describe_connect_error(TimeoutError(), "ws://h:1")
