"""Who may connect, and that secrets never leave: token, Origin, frame-rate and connection caps."""

from __future__ import annotations

import asyncio
import logging

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from assistant.emulator import Fault
from server.logs import JsonLineFormatter
from server.runner import ServerHandle

from .conftest import API_KEY, TOKEN, Client, client, emulator, make_settings


async def _refused(url: str, **kwargs) -> int:
    with pytest.raises(InvalidStatus) as info:
        async with connect(url, open_timeout=10, **kwargs):
            pass
    return info.value.response.status_code


async def test_missing_or_wrong_token_is_refused_before_accept(offline_server):
    srv = offline_server
    assert await _refused(srv.ws_url) == 403
    assert await _refused(srv.ws_url, additional_headers={"Authorization": "Bearer nope"}) == 403
    assert await _refused(srv.ws_url + "?token=nope") == 403
    assert await _refused(srv.ws_url, subprotocols=["assistant.v1", "assistant.v1.nope"]) == 403
    assert await _refused(srv.ws_url + "?token=") == 403


async def test_each_of_the_three_token_ways_is_accepted(offline_server):
    srv = offline_server
    async with client(srv) as c:  # Authorization: Bearer
        assert (await c.ping())["type"] == "pong"
    async with connect(f"{srv.ws_url}?token={srv.token}") as ws:
        c = Client(ws)
        assert (await c.recv())["type"] == "ready"
    async with connect(
        srv.ws_url, subprotocols=["assistant.v1", f"assistant.v1.{srv.token}"]
    ) as ws:
        assert ws.subprotocol == "assistant.v1"
        c = Client(ws)
        assert (await c.recv())["type"] == "ready"


async def test_foreign_origin_is_refused_and_own_or_allowed_origins_are_accepted():
    settings = make_settings(allowed_origins=("https://editor.example.org",))
    async with ServerHandle(settings) as srv:
        auth = {"Authorization": f"Bearer {srv.token}"}
        for origin in ("http://evil.example", f"http://evil.example:{srv.port}", "null"):
            assert await _refused(srv.ws_url, origin=origin, additional_headers=auth) == 403
        for origin in (
            f"http://127.0.0.1:{srv.port}",
            f"http://localhost:{srv.port}",
            "https://editor.example.org",
        ):
            async with client(srv, origin=origin) as c:
                assert (await c.ping())["type"] == "pong"


async def test_token_and_api_key_never_appear_in_logs_or_frames(caplog):
    caplog.set_level(logging.DEBUG)  # every line the server can write, per-request ones too
    async with emulator(canned_text=" the report") as emu:
        emu.inject(Fault("auth"))
        async with ServerHandle(make_settings(emu)) as srv:
            assert srv.token == TOKEN
            await _refused(srv.ws_url + "?token=wrong-" + TOKEN[:8])
            async with connect(f"{srv.ws_url}?token={TOKEN}") as ws:
                c = Client(ws)
                await c.recv()
                # A 401 from "Anthropic" parks the primary: status frame plus an offline answer.
                await c.terminal(await c.suggest("Please send me "))
                await c.send("{broken")
                await c.recv()
                await c.ping()
    frames = orjson.dumps(c.seen).decode()
    assert any(f["type"] == "status" and f["state"] == "auth_failed" for f in c.seen)
    assert API_KEY not in frames and TOKEN not in frames
    formatter = JsonLineFormatter()
    # Everything the server process logs (its SDK and HTTP stack included), not the test client.
    records = [r for r in caplog.records if not r.name.startswith("websockets.client")]
    lines = [formatter.format(r) for r in records]
    text = "\n".join(lines) + "\n".join(r.getMessage() for r in records)
    assert any('"event":"connection_open"' in line for line in lines)
    assert any('"event":"connection_close"' in line for line in lines)
    assert any('"event":"connection_refused"' in line for line in lines)
    assert any('"event":"suggest_request"' in line for line in lines)
    assert TOKEN not in text and TOKEN[:8] not in text
    assert API_KEY not in text


async def test_frame_rate_cap_answers_rate_limited_and_keeps_the_connection():
    async with ServerHandle(make_settings(max_frames_per_second=5)) as srv, client(srv) as c:
        ids = [c.new_id() for _ in range(30)]
        for fid in ids:
            await c.send({"type": "ping", "id": fid})
        replies = [await c.recv() for _ in ids]
        pongs = [r for r in replies if r["type"] == "pong"]
        limited = [r for r in replies if r["type"] == "error"]
        assert 5 <= len(pongs) <= 10
        assert len(limited) == 30 - len(pongs)
        assert all(r["code"] == "rate_limited" and r["id"] in ids for r in limited)
        # The bucket refills: the connection answers again (retry until it does).
        for _ in range(50):
            fid = c.new_id()
            await c.send({"type": "ping", "id": fid})
            if (await c.recv())["type"] == "pong":
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("never answered again")


async def test_connection_cap_closes_the_extra_connection_with_1013():
    async with ServerHandle(make_settings(max_connections=2)) as srv:
        async with client(srv) as a, client(srv) as b:
            headers = {"Authorization": f"Bearer {srv.token}"}
            async with connect(srv.ws_url, additional_headers=headers) as ws:
                with pytest.raises(ConnectionClosed) as info:
                    await asyncio.wait_for(ws.recv(), 10)
                assert info.value.rcvd is not None and info.value.rcvd.code == 1013
            assert (await a.ping())["type"] == "pong"
            assert (await b.ping())["type"] == "pong"
        # Slots are given back when connections close.
        async with client(srv) as c1, client(srv) as c2:
            assert (await c1.ping())["type"] == (await c2.ping())["type"] == "pong"
