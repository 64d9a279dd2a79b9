"""``assistant bench --server`` against ``assistant serve --emulator`` started separately, as an
operator gates a deployment: a budget that holds exits 0, one that is missed exits 1, a refused or
unreachable server exits 2, and a server that goes away mid-run is counted as disconnects (its
typists' figures kept) rather than crashing the bench."""

from __future__ import annotations

import asyncio
import signal
import socket

import httpx2
import pytest

from tests.bench_process import bench_against
from tests.serve_process import start_serve, stop_process

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

TOKEN = "bench-server-token-123456"


async def test_a_budget_that_holds_exits_0_and_one_that_is_missed_exits_1(tmp_path):
    proc, url, _ = await start_serve(tmp_path, "--emulator", "--workers", "1", token=TOKEN)
    try:
        held = await bench_against(
            tmp_path / "held",
            url,
            "--token",
            TOKEN,
            "--window",
            "6",
            "--budget",
            "pause_p95=5000,errors=0,violations=0,disconnects=0",
        )
        assert held.code == 0, held
        # What it will send, said before it starts.
        assert f"12 typists will connect to {url}" in held.err
        r = held.report
        assert r["typists_connected"] == 12 and r["provider"] == "emulator", held
        assert r["pauses"] > 0 and r["pause_to_visible_ms"]["p95"] <= 5000
        assert r["shown"] > 0 and r["accepted"] > 0 and r["chars_saved"] > 0
        # Cost and tokens from the server's done frames (the emulator bills the model's usage).
        assert r["done_by_source"]["model"] == r["model_answers"] > 0
        assert r["tokens"]["input"] > 0 and r["tokens"]["output"] > 0 and r["cost_usd"] > 0
        assert r["errors"] == 0 and r["disconnects"] == 0 and r["violation_count"] == 0
        assert "held    pause_p95 <= 5,000 ms" in held.out
        assert "pause -> visible ms p50/p95/p99" in held.out
        assert r["machine"]["cpus"] and "load average before" in held.out
        suite = held.junit.find("testsuite")
        assert (suite.get("tests"), suite.get("failures")) == ("4", "0")

        missed = await bench_against(
            tmp_path / "missed", url, "--token", TOKEN, "--window", "6", "--budget", "pause_p50=1"
        )
        assert missed.code == 1, missed
        assert "MISSED  pause_p50 <= 1 ms" in missed.out
        assert missed.report["budget"] == [
            {
                "metric": "pause_p50",
                "bound": "max",
                "limit": 1.0,
                "measured": missed.report["pause_to_visible_ms"]["p50"],
                "held": False,
            }
        ]
        assert missed.junit.find("testsuite").get("failures") == "1"

        # Typing into the middle of an existing document: each writer's own 3,000 characters
        # before the cursor and 500 after, sent in every suggest frame and read by the model.
        lead = await bench_against(
            tmp_path / "lead",
            url,
            "--token",
            TOKEN,
            "--typists",
            "2",
            "--window",
            "6",
            "--lead-in",
            "3000",
            "--lead-out",
            "500",
        )
        assert lead.code == 0, lead
        assert "after 3,000 chars of existing text and before 500 more" in lead.out
        assert "each carrying the whole document" in lead.err
        lr = lead.report
        assert (lr["lead_in_chars"], lr["lead_out_chars"]) == (3000, 500)
        assert lr["model_answers"] > 0 and lr["errors"] == 0 and lr["violation_count"] == 0
        assert 0 < lr["chars_written"] < 1000  # what they typed, not the document they found

        def prompt_tokens(report: dict) -> float:
            t = report["tokens"]
            return (t["input"] + t["cache_write"] + t["cache_read"]) / report["model_answers"]

        # ~3,500 more characters in every prompt than a new document's (~875 tokens).
        assert prompt_tokens(lr) > prompt_tokens(r) + 700, (prompt_tokens(lr), prompt_tokens(r))
    finally:
        await stop_process(proc)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once it is closed


async def test_a_refused_or_unreachable_server_exits_2_with_the_reason(tmp_path):
    proc, url, _ = await start_serve(tmp_path, "--emulator", "--workers", "1", token=TOKEN)
    try:
        wrong = await bench_against(tmp_path / "wrong", url, "--token", "not-the-token-at-all")
        assert wrong.code == 2, wrong
        assert "refused the connection (HTTP 403): wrong token" in wrong.err
        assert wrong.junit.find("testsuite/testcase/error") is not None
        assert "error" in wrong.report
        # More typists than a few, no terminal to ask and no --yes: nothing is sent.
        many = await bench_against(tmp_path / "many", url, "--token", TOKEN, "--typists", "40")
        assert many.code == 2 and "add --yes" in many.err, many
    finally:
        await stop_process(proc)
    gone = await bench_against(
        tmp_path / "gone", f"ws://127.0.0.1:{_closed_port()}", "--token", TOKEN
    )
    assert gone.code == 2 and "cannot reach ws://127.0.0.1:" in gone.err, gone


async def _connections(http: httpx2.AsyncClient, url: str) -> int:
    base = url.replace("ws://", "http://").rsplit("/v1/ws", 1)[0]
    return (await http.get(base + "/healthz", timeout=5)).json()["connections"]


async def test_a_server_that_goes_away_mid_run_is_counted_as_disconnects(tmp_path):
    proc, url, _ = await start_serve(tmp_path, "--emulator", "--workers", "1", token=TOKEN)
    try:
        run = asyncio.create_task(
            bench_against(
                tmp_path,
                url,
                "--token",
                TOKEN,
                "--typists",
                "3",
                "--window",
                "60",
                "--budget",
                "disconnects=0",
            )
        )
        async with httpx2.AsyncClient() as http:
            for _ in range(600):  # poll /healthz until every typist is connected (30 s at most)
                if await _connections(http, url) >= 3:
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the typists did not all connect within 30 s")
        proc.send_signal(signal.SIGTERM)  # a rolling restart: drains, closes with 1001
        bench = await asyncio.wait_for(run, 60)
    finally:
        await stop_process(proc)
    assert bench.code == 1, bench
    r = bench.report
    assert r["typists_connected"] == 3 and r["disconnects"] == 3, bench
    assert set(r["closed_by_server"]) == {"1001"}
    assert r["keystrokes"] > 0 and r["violation_count"] == 0
    assert "MISSED  disconnects <= 0  (measured 3)" in bench.out
