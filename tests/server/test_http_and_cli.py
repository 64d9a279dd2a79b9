"""/healthz, /metrics, the web editor route, ServerThread, and `assistant serve` as a process."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import httpx2
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from server.runner import ServerHandle, ServerThread
from tests.serve_process import start_serve

from .conftest import TOKEN, client, emulator, make_settings

ROOT = Path(__file__).resolve().parents[2]


async def test_healthz_and_metrics_report_provider_traffic_and_cost():
    async with emulator(canned_text=" the quarterly report") as emu:
        async with ServerHandle(make_settings(emu)) as srv:
            async with client(srv) as c:
                done = await c.terminal(await c.suggest("Please send me "))
                await c.send("{oops")
                await c.recv()
                async with httpx2.AsyncClient() as http:
                    health = (await http.get(srv.http_url + "/healthz")).json()
                    metrics = (await http.get(srv.http_url + "/metrics")).text
                    index = await http.get(srv.http_url + "/")
            assert health == {
                "ok": True,
                "provider": "anthropic",
                "model": "claude-haiku-5-5",
                "state": "ok",
                "active": "anthropic",
                "review": True,
                "connections": 1,
            }
            assert index.status_code == 200 and "text/html" in index.headers["content-type"]
            lines = metrics.splitlines()

            def value(prefix: str) -> float:
                (line,) = [x for x in lines if x.startswith(prefix)]
                return float(line.rsplit(" ", 1)[1])

            assert value('assistant_suggestion_latency_seconds_count{source="model"}') == 1
            assert value('assistant_suggestions_total{source="model"}') == 1
            assert value('assistant_provider_requests_total{kind="suggest"}') == 1
            assert value('assistant_errors_total{code="bad_request"}') == 1
            assert (
                value('assistant_tokens_total{kind="input",model="claude-haiku-5-5"}')
                == done["usage"]["input_tokens"]
            )
            cost = value('assistant_cost_usd_total{model="claude-haiku-5-5"}')
            assert abs(cost - done["cost_usd"]) < 1e-12
            assert value("assistant_open_connections ") == 1
            assert value('assistant_frames_total{direction="in"}') == 2
            assert value('assistant_frames_total{direction="out"}') >= 3
            assert "assistant_rate_limit_events_total" in metrics


def test_server_thread_serves_synchronous_callers():
    with ServerThread(make_settings()) as srv:
        assert srv.ws_url == f"ws://127.0.0.1:{srv.port}/v1/ws"
        assert srv.token == TOKEN

        async def talk() -> dict:
            async with connect(
                srv.ws_url, subprotocols=["assistant.v1", f"assistant.v1.{TOKEN}"]
            ) as ws:
                await ws.recv()
                await ws.send('{"type":"ping","id":1}')
                return orjson.loads(await ws.recv())

        assert asyncio.run(talk()) == {"type": "pong", "id": 1}
        assert srv.call(asyncio.sleep(0, result=5)) == 5


async def test_assistant_serve_prints_urls_serves_and_exits_0_on_sigterm(tmp_path):
    proc, ws_url, text = await start_serve(
        tmp_path, "--allow-origin", "https://x.example", token="env-token-abcdef123456"
    )
    try:
        out = text.splitlines()
        editor = next(x for x in out if x.startswith("web editor:")).split()[-1]
        assert editor.startswith("http://127.0.0.1:") and editor.endswith(
            "/#token=env-token-abcdef123456"
        )
        port = int(ws_url.split(":")[2].split("/")[0])
        assert port > 0 and "provider: offline" in text
        async with connect(
            ws_url,
            additional_headers={"Authorization": "Bearer env-token-abcdef123456"},
            origin="https://x.example",
        ) as ws:
            ready = orjson.loads(await ws.recv())
            assert ready["type"] == "ready" and ready["provider"] == "offline"
            await ws.send('{"type":"ping","id":1}')
            assert orjson.loads(await ws.recv()) == {"type": "pong", "id": 1}
            proc.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as info:
                await asyncio.wait_for(ws.recv(), 30)
            assert info.value.rcvd is not None and info.value.rcvd.code == 1001
            code = await asyncio.wait_for(proc.wait(), 30)
        assert code == 0
        err = (await proc.stderr.read()).decode()
        events = [orjson.loads(x)["event"] for x in err.splitlines() if x.startswith("{")]
        assert "connection_open" in events and "server_stop" in events
        assert "env-token-abcdef123456" not in err
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
