"""Who gets in, what leaks, and the per-connection caps.

A distinctive fake key (``sk-ant-test-SECRET-123``) and token are used throughout, and every
frame received, every log record (our loggers at DEBUG, uvicorn's at the level the server sets),
/metrics and /healthz are searched for them, including after provider failures whose messages
travel to the client.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.request
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from assistant.config import Settings
from assistant.emulator import Emulator, EmulatorConfig, Fault
from server.runner import ServerHandle
from tests.serve_process import start_serve

from .conftest import Client, open_client, ws_kwargs

SECRET_KEY = "sk-ant-test-SECRET-123"
TOKEN = "tok-SECRET-abcdef-987"
ROOT = Path(__file__).resolve().parents[2]


def sec_settings(base_url: str | None = None, **over) -> Settings:
    base = dict(
        api_key=SECRET_KEY if base_url else None,
        base_url=base_url,
        token=TOKEN,
        suggest_timeout_s=0.5,
        offline="statistical",
        debounce_min_ms=1.0,
        debounce_max_ms=2.0,
    )
    base.update(over)
    return Settings(**base)


async def http_get(url: str) -> str:
    def get() -> str:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.read().decode()

    return await asyncio.to_thread(get)


async def refused_status(url: str, **kw) -> int:
    with pytest.raises(InvalidStatus) as info:
        async with connect(url, **kw):
            pass
    return info.value.response.status_code


async def test_no_token_wrong_token_and_foreign_origin_are_refused_before_accept(server_logs):
    async with ServerHandle(sec_settings()) as srv:
        url = srv.ws_url
        assert await refused_status(url, **ws_kwargs(None)) == 403
        assert await refused_status(url, **ws_kwargs("wrong-token")) == 403
        assert await refused_status(url + "?token=wrong", **ws_kwargs(None)) == 403
        assert await refused_status(url, **ws_kwargs(TOKEN[:-1])) == 403  # a prefix is not it
        assert await refused_status(url, **ws_kwargs("", headers={"Authorization": TOKEN})) == 403
        foreign = ws_kwargs(TOKEN, headers={"Origin": "https://evil.example"})
        assert await refused_status(url, **foreign) == 403
        lookalike = ws_kwargs(TOKEN, headers={"Origin": f"{srv.http_url}.evil.example"})
        assert await refused_status(url, **lookalike) == 403
        # The three documented ways in, and the server's own origin, are admitted.
        for c in [
            await open_client(url, TOKEN),
            await open_client(url + f"?token={TOKEN}", None),
            await open_client(url, None, subprotocols=[f"assistant.v1.{TOKEN}"]),
            await open_client(url, TOKEN, headers={"Origin": srv.http_url}),
        ]:
            await c.ping()
            await c.ws.close()
        metrics = await http_get(srv.http_url + "/metrics")
        assert "connections_refused" in metrics
    assert TOKEN not in server_logs.text


async def test_secrets_never_reach_frames_logs_metrics_or_health(server_logs):
    """Through auth failures, rate limits and errors mid-stream, with the token also sent in
    the query string: neither the API key nor the token appears anywhere observable."""
    async with Emulator(EmulatorConfig(profile="instant", api_key=SECRET_KEY)) as emu:
        async with ServerHandle(sec_settings(emu.base_url)) as srv:
            seen: list[dict] = []
            client = await open_client(srv.ws_url + f"?token={TOKEN}", None, seen)
            for i, fault in enumerate(
                [
                    Fault("rate_limit", retry_after=0.2),
                    Fault("error_mid_stream", after_tokens=2),
                    Fault("server_error"),
                    Fault("auth"),
                ]
            ):
                emu.inject(fault)
                sid = await client.suggest(f"Line {i}: the budget for the")
                await client.terminal(sid)
                if i == 0:
                    await asyncio.sleep(0.25)  # let the 0.2 s window pass before the next fault
            await client.send("not json at all " + SECRET_KEY)  # echoed? must not be
            await client.recv_until(lambda m: m.get("type") == "error")
            await client.ping()
            # A refused attempt with a near-miss token, and a wrong key never logged either.
            with pytest.raises(InvalidStatus):
                async with connect(srv.ws_url + f"?token={TOKEN}x"):
                    pass
            metrics = await http_get(srv.http_url + "/metrics")
            health = await http_get(srv.http_url + "/healthz")
            await client.ws.close()
        assert any(m.get("type") == "status" for m in seen)
    frames = json.dumps(seen)
    for secret in (SECRET_KEY, TOKEN):
        assert secret not in frames
        assert secret not in server_logs.text, [ln for ln in server_logs.lines if secret in ln]
        assert secret not in metrics
        assert secret not in health


async def test_assistant_serve_process_keeps_secrets_out_of_its_logs(tmp_path):
    """The real ``assistant serve`` process: its stderr (JSON logs) never holds the key or the
    token, whatever the clients and the provider do. (Its stdout prints the token on purpose,
    for the user to paste.)"""
    async with Emulator(EmulatorConfig(profile="instant")) as emu:
        proc, ws_url, _ = await start_serve(
            tmp_path,
            "--token",
            TOKEN,
            token=TOKEN,
            env={"ANTHROPIC_API_KEY": SECRET_KEY, "ANTHROPIC_BASE_URL": emu.base_url},
        )
        try:
            with pytest.raises(InvalidStatus):
                async with connect(ws_url + "?token=nope"):
                    pass
            client = await open_client(ws_url + f"?token={TOKEN}", None)
            emu.inject(Fault("auth"))
            sid = await client.suggest("Dear Sam, the")
            await client.terminal(sid)
            await client.send('{"type":"suggest","id":"x"}')
            await client.ping()
            await client.ws.close()
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(proc.communicate(), 20)
    logs = err.decode()
    assert "connection_refused" in logs and "provider_status" in logs, logs[-2000:]
    assert SECRET_KEY not in logs
    assert TOKEN not in logs


async def test_connection_cap_refuses_with_1013_and_frees_the_slot():
    async with ServerHandle(sec_settings(max_connections=3)) as srv:
        clients = [await open_client(srv.ws_url, TOKEN) for _ in range(3)]
        ws = await connect(srv.ws_url, **ws_kwargs(TOKEN))
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 10)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1013
        for c in clients:
            await c.ping()  # the ones inside are unaffected
        await clients[0].ws.close()
        # The slot comes back once the server has seen the close.
        deadline = time.monotonic() + 10
        while True:
            try:
                again = await open_client(srv.ws_url, TOKEN)
                break
            except (ConnectionClosed, AssertionError):
                assert time.monotonic() < deadline, "slot never freed"
                await asyncio.sleep(0.05)
        await again.ping()
        for c in [*clients[1:], again]:
            await c.ws.close()


async def test_frame_rate_cap_answers_the_excess_with_rate_limited_and_stays_usable():
    rate = 20
    async with ServerHandle(sec_settings(max_frames_per_second=rate)) as srv:
        client: Client = await open_client(srv.ws_url, TOKEN)
        ids = [client.new_id() for _ in range(200)]
        start = time.monotonic()
        for i in ids:
            await client.send({"type": "ping", "id": i})
        replies: dict[int, dict] = {}
        while len(replies) < len(ids):
            msg = await client.recv()
            if msg.get("id") in ids:
                replies[msg["id"]] = msg
        elapsed = time.monotonic() - start
        pongs = [m for m in replies.values() if m["type"] == "pong"]
        limited = [m for m in replies.values() if m["type"] == "error"]
        assert all(m["code"] == "rate_limited" for m in limited)
        assert len(pongs) + len(limited) == len(ids)  # every frame answered
        assert len(limited) > 0
        assert len(pongs) <= rate + rate * elapsed + 2, (len(pongs), elapsed)
        await asyncio.sleep(1.0)  # the bucket refills with time: that is what is tested
        await client.ping()
        await client.ws.close()
