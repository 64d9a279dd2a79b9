"""What an attacker with no token, or one writer with a token, can do to everyone else (issue 21),
each attack against a real server on 127.0.0.1 with another client measuring its pings.

Run with ``-s`` for the figures docs/reliability.md quotes (memory growth, the other client's
ping p50/p99, sockets held).
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from assistant.config import Settings
from server.runner import ServerHandle
from tests.serve_process import start_serve, stop_process

from . import attacks as a
from .conftest import open_client, ws_kwargs

TOKEN = "tok-attacks-0123456789"


def settings(**over) -> Settings:
    base = dict(token=TOKEN, offline="statistical", debounce_min_ms=1.0, debounce_max_ms=2.0)
    base.update(over)
    return Settings(**base)


async def http_get(url: str, headers: dict | None = None) -> tuple[int, dict, str]:
    def get() -> tuple[int, dict, str]:
        req = urllib.request.Request(url, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, dict(resp.headers), resp.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read().decode()

    return await asyncio.to_thread(get)


# ----------------------------------------------------------------------- half-sent headers


def test_the_default_header_timeout_drops_half_sent_headers_within_20_s():
    assert 0 < Settings().header_timeout_s <= 20


async def test_half_sent_upgrade_headers_are_dropped_and_others_still_get_in():
    async with ServerHandle(settings(header_timeout_s=1.0)) as srv:
        socks = []
        for _ in range(a_few := 40):
            sock = a.raw_socket(srv.port)
            sock.sendall(b"GET /v1/ws?token=x HTTP/1.1\r\nHost: 127.0")  # and nothing more
            socks.append(sock)
        start = time.monotonic()
        closed = await asyncio.gather(*(asyncio.to_thread(a.closed_within, s, 8) for s in socks))
        held_s = time.monotonic() - start
        for sock in socks:
            sock.close()
        print(f"\nhalf-sent headers: {sum(closed)}/{a_few} dropped after {held_s:.1f} s")
        assert all(closed)
        status, _, _ = await http_get(srv.http_url + "/healthz")
        assert status == 200
        client = await open_client(srv.ws_url, TOKEN)
        await client.ping()
        await client.ws.close()


async def test_a_keep_alive_socket_that_starts_a_second_request_and_stalls_is_dropped():
    async with ServerHandle(settings(header_timeout_s=1.0)) as srv:
        sock = a.raw_socket(srv.port)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /healthz HTTP/1.1\r\n")
        assert await asyncio.to_thread(a.closed_within, sock, 8)
        sock.close()


async def test_one_address_cannot_hold_every_socket():
    async with ServerHandle(settings(max_sockets_per_ip=5, header_timeout_s=30)) as srv:
        held = [a.raw_socket(srv.port) for _ in range(5)]
        for sock in held:
            sock.sendall(b"GET / HTTP/1.1\r\n")
        extra = a.raw_socket(srv.port)
        extra.settimeout(5)
        assert (await asyncio.to_thread(extra.recv, 4096)).startswith(b"HTTP/1.1 503")
        extra.close()
        # Another address (127.0.0.2 is loopback too) still gets in.
        other = a.raw_socket(srv.port, source="127.0.0.2")
        other.settimeout(5)
        other.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert (await asyncio.to_thread(other.recv, 4096)).startswith(b"HTTP/1.1 200")
        for sock in [*held, other]:
            sock.close()


async def test_one_address_cannot_take_every_websocket_slot():
    async with ServerHandle(settings(max_connections=10, max_connections_per_ip=2)) as srv:
        first = [await open_client(srv.ws_url, TOKEN) for _ in range(2)]
        with pytest.raises(InvalidStatus) as info:
            async with connect(srv.ws_url, **ws_kwargs(TOKEN)):
                pass
        assert info.value.response.status_code == 503
        other = await open_client(srv.ws_url, TOKEN, local_addr=("127.0.0.2", 0))
        await other.ping()
        await first[0].ws.close()
        # A slot given back can be taken again.
        for _ in range(50):
            try:
                again = await open_client(srv.ws_url, TOKEN)
                break
            except InvalidStatus:
                await asyncio.sleep(0.02)
        else:
            pytest.fail("the slot was never given back")
        for c in (first[1], other, again):
            await c.ws.close()


# ------------------------------------------------------------------------------ idle sockets


async def test_a_websocket_that_sends_nothing_is_closed_and_a_pinging_one_is_not():
    # (the header timeout, shorter still, no longer applies once a socket is a WebSocket)
    async with ServerHandle(settings(idle_timeout_s=1.0, header_timeout_s=0.3)) as srv:
        silent = await asyncio.to_thread(a.upgraded_socket, srv.port, TOKEN)
        pinging = await open_client(srv.ws_url, TOKEN)
        stop = asyncio.Event()

        async def keep_pinging():
            while not stop.is_set():
                await pinging.ws.ping()
                await asyncio.sleep(0.2)

        pinger = asyncio.create_task(keep_pinging())
        start = time.monotonic()
        assert await asyncio.to_thread(a.closed_within, silent, 8)
        assert time.monotonic() - start < 5
        assert time.monotonic() - start > 0.5
        silent.close()
        await asyncio.sleep(0.5)  # the pinging one outlives the silent one's timeout
        stop.set()
        await pinger
        await pinging.ping()
        await pinging.ws.close()


# ------------------------------------------------------------------------------- ping flood


async def _flood_figures(tmp_path, frame: bytes, seconds: float, *args: str, env=None):
    """Flood ``frame`` from one socket at a real ``assistant serve`` while another client pings:
    (RSS growth in bytes, the other client's pings, whether the flooder was closed)."""
    proc, ws_url, _ = await start_serve(tmp_path, "--workers", "1", *args, token=TOKEN, env=env)
    try:
        port = int(ws_url.split(":")[2].split("/")[0])
        other = await open_client(ws_url, TOKEN)
        await other.ping()
        flooder = await asyncio.to_thread(a.upgraded_socket, port, TOKEN)
        async with a.Measured(proc.pid, other) as measured:
            started = time.monotonic()
            sent = await asyncio.to_thread(a.flood, flooder, frame, seconds)
            closed = await asyncio.to_thread(a.closed_within, flooder, 2)
            # The other client keeps measuring for the whole attack, closed early or not.
            await asyncio.sleep(max(0.0, seconds - (time.monotonic() - started)))
        flooder.close()
        await other.ping()
        await other.ws.close()
        return measured.growth, measured.pings, closed, sent
    finally:
        await stop_process(proc)


async def test_a_ping_flood_without_reading_is_bounded_and_others_stay_fast(tmp_path):
    growth, pings, closed, sent = await _flood_figures(tmp_path, a.masked_frame(0x9), 8.0)
    print(
        f"\nping flood: {sent / 1e6:.1f} MB sent, worker +{growth / 2**20:.1f} MB, "
        f"other client {pings.summary()}, flooder closed: {closed}"
    )
    assert closed
    assert growth <= 64 * 2**20
    assert pings.failures == 0 and pings.p99 <= 200


async def test_an_unsolicited_pong_flood_is_charged_too(tmp_path):
    growth, pings, closed, sent = await _flood_figures(tmp_path, a.masked_frame(0xA), 4.0)
    print(f"\npong flood: worker +{growth / 2**20:.1f} MB, {pings.summary()}, closed: {closed}")
    assert closed
    assert growth <= 64 * 2**20 and pings.p99 <= 200


async def test_pings_within_the_budget_are_answered():
    async with ServerHandle(settings()) as srv:
        client = await open_client(srv.ws_url, TOKEN)
        for _ in range(20):
            await asyncio.wait_for(await client.ws.ping(b"x"), 5)
        await client.ping()
        await client.ws.close()


# ------------------------------------------------------------------------- accept.chars


async def test_accept_naming_a_ping_with_2_to_the_64_chars_counts_nothing():
    async with ServerHandle(settings()) as srv:
        client = await open_client(srv.ws_url, TOKEN)
        pong = await client.ping()
        await client.send({"type": "accept", "id": pong["id"], "chars": 18446744073709551615})
        # A real suggestion, accepted twice over: only what was shown counts.
        sid = await client.suggest("The quick brown fox jumps over the lazy")
        done, _ = await client.terminal(sid)
        shown = len(done.get("text", ""))
        await client.send({"type": "accept", "id": sid, "chars": 10**9})
        await client.send({"type": "accept", "id": sid, "chars": 10**9})
        await client.ping()
        _, _, metrics = await http_get(srv.http_url + "/metrics")
        await client.ws.close()
    accepted = _metric(metrics, "assistant_accepted_chars_total")
    assert accepted == shown
    assert _metric(metrics, "assistant_saved_chars_total") <= shown


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


# --------------------------------------------------------------------------- invalid UTF-8


async def test_invalid_utf8_in_a_text_frame_is_one_log_line_and_a_1007(server_logs):
    async with ServerHandle(settings()) as srv:
        sock = await asyncio.to_thread(a.upgraded_socket, srv.port, TOKEN)
        sock.sendall(a.masked_frame(0x1, b'{"type":"ping","id":1,"x":"\xff\xfe"}'))
        assert await asyncio.to_thread(a.closed_within, sock, 5)
        sock.close()
        other = await open_client(srv.ws_url, TOKEN)
        await other.ping()
        await other.ws.close()
    lines = [ln for ln in server_logs.lines if "UTF-8" in ln or "Traceback" in ln]
    assert len(lines) == 1, server_logs.text
    assert "Traceback" not in server_logs.text


# ------------------------------------------------------------------------------- the pages


async def test_the_page_and_its_files_carry_csp_nosniff_and_no_framing():
    async with ServerHandle(settings()) as srv:
        for path in ("/", "/static/editor.js", "/healthz"):
            status, headers, _ = await http_get(srv.http_url + path)
            assert status == 200, path
            low = {k.lower(): v for k, v in headers.items()}
            assert low["x-content-type-options"] == "nosniff"
            assert low["x-frame-options"] == "DENY"
            csp = low["content-security-policy"]
            assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
            assert f"ws://127.0.0.1:{srv.port}" in csp


async def test_a_demo_page_admits_styles_by_a_nonce_new_each_response_and_no_inline_script():
    """CodeMirror writes its own style element: the demo page hands it the response's nonce,
    which the policy admits for styles only, and never the same twice."""
    async with ServerHandle(settings()) as srv:
        nonces = []
        for _ in range(2):
            status, headers, body = await http_get(srv.http_url + "/demo/codemirror")
            assert status == 200
            csp = {k.lower(): v for k, v in headers.items()}["content-security-policy"]
            style = next(d for d in csp.split(";") if d.strip().startswith("style-src"))
            nonce = style.split("'nonce-", 1)[1].split("'", 1)[0]
            assert f'<meta name="csp-nonce" content="{nonce}">' in body
            script = next(d for d in csp.split(";") if d.strip().startswith("script-src"))
            assert script.strip() == "script-src 'self'"
            nonces.append(nonce)
        assert nonces[0] != nonces[1] and len(nonces[0]) >= 16


async def test_a_dns_rebinding_host_cannot_read_the_pages_or_metrics_but_healthz_answers():
    async with ServerHandle(settings()) as srv:
        evil = {"Host": f"evil.example:{srv.port}"}
        for path in ("/", "/metrics", "/static/editor.js"):
            status, _, _ = await http_get(srv.http_url + path, evil)
            assert status == 421, path
        for host in (f"localhost:{srv.port}", f"127.0.0.1:{srv.port}", f"[::1]:{srv.port}"):
            status, _, _ = await http_get(srv.http_url + "/", {"Host": host})
            assert status == 200, host
        status, _, body = await http_get(srv.http_url + "/healthz", evil)
        assert status == 200 and "connections" in body  # no metrics token: /metrics says it too
    hosts = settings(allowed_origins=("https://editor.example.org",))
    async with ServerHandle(hosts) as srv:
        ok = {"Host": "editor.example.org"}
        assert (await http_get(srv.http_url + "/", ok))[0] == 200


async def test_metrics_need_the_metrics_token_when_one_is_set():
    async with ServerHandle(settings(metrics_token="m-secret-42")) as srv:
        status, _, body = await http_get(srv.http_url + "/metrics")
        assert status == 401 and "assistant_" not in body
        bad = {"Authorization": "Bearer m-secret-4"}
        assert (await http_get(srv.http_url + "/metrics", bad))[0] == 401
        good = {"Authorization": "Bearer m-secret-42"}
        status, _, body = await http_get(srv.http_url + "/metrics", good)
        assert status == 200 and "assistant_frames_total" in body
        status, _, body = await http_get(srv.http_url + "/healthz")
        assert status == 200 and "connections" not in body and "cost" not in body


# -------------------------------------------------------------------------- offline reviews

LONG_DOC = ("Teh  cat sat on teh mat . It it was was a good day,and  the dog barked .  " * 3000)[
    :199_000
]


async def test_a_review_with_more_findings_than_the_outbox_holds_is_capped_with_a_note():
    async with ServerHandle(settings()) as srv:
        client = await open_client(srv.ws_url, TOKEN)
        rid = client.new_id()
        await client.send({"type": "review", "id": rid, "text": LONG_DOC})
        done, before = await client.recv_until(
            lambda m: m.get("id") == rid and m["type"] in ("review_done", "error"), 60
        )
        assert done["type"] == "review_done", done
        findings = [m for m in before if m["type"] == "finding"]
        assert len(findings) == done["findings"] == Settings().max_review_findings
        assert "more findings not shown" in done["note"]
        await client.ping()  # the connection is still open
        await client.ws.close()


async def test_offline_reviews_run_off_the_event_loop(tmp_path):
    """Ten connections reviewing a 199k-character document back to back while another client
    pings: its p99 stays under 200 ms (504 ms p50 when the rules ran on the loop)."""
    proc, ws_url, _ = await start_serve(tmp_path, "--workers", "1", token=TOKEN)
    try:
        other = await open_client(ws_url, TOKEN)
        reviewers = [await open_client(ws_url, TOKEN) for _ in range(10)]
        stop = asyncio.Event()
        done_reviews = 0

        async def review_loop(client):
            nonlocal done_reviews
            while not stop.is_set():
                rid = client.new_id()
                await client.send({"type": "review", "id": rid, "text": LONG_DOC})
                end, _ = await client.recv_until(
                    lambda m, rid=rid: m.get("id") == rid and m["type"] in ("review_done", "error"),
                    60,
                )
                done_reviews += end["type"] == "review_done"
                client.seen.clear()

        loops = [asyncio.create_task(review_loop(c)) for c in reviewers]
        pinger = asyncio.create_task(a.ping_while(other, stop))
        await asyncio.sleep(6.0)  # the attack's length, not a synchronisation
        stop.set()
        pings = await pinger
        await asyncio.gather(*loops)
        print(f"\noffline reviews x10: {done_reviews} done, other client {pings.summary()}")
        assert done_reviews >= 10
        assert pings.failures == 0 and pings.p99 <= 200
        for c in [other, *reviewers]:
            await c.ws.close()
    finally:
        await stop_process(proc)


async def test_one_documents_offline_review_cpu_time_is_bounded():
    from assistant.providers.base import ProviderError, ProviderErrorKind
    from assistant.review.rules import CPU_BURST_S, OfflineReviewer

    now = [0.0]
    reviewer = OfflineReviewer(settings(), clock=lambda: now[0])
    try:
        reviews = 0
        with pytest.raises(ProviderError) as info:
            while reviews < 1000:
                async for _ in reviewer.review(LONG_DOC, document="greedy"):
                    pass
                reviews += 1
        assert info.value.kind is ProviderErrorKind.RATE_LIMITED
        assert 1 <= reviews <= CPU_BURST_S / 0.01  # each took well over 10 ms of CPU
        other = [ev async for ev in reviewer.review("Teh end.", document="another")]
        assert other[-1].findings == 1  # another connection still gets its reviews
        now[0] += 60  # and the greedy one, once its budget has refilled
        again = [ev async for ev in reviewer.review("Teh end.", document="greedy")]
        assert again[-1].findings == 1
    finally:
        await reviewer.aclose()


# ------------------------------------------------------------------------ warm and memory


def _words_doc(seed: int, chars: int) -> str:
    import random

    rng = random.Random(seed)
    letters = "abcdefghijklmnop"
    words = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 9))) for _ in range(5000)]
    out, size = [], 0
    while size < chars:
        word = rng.choice(words)
        out.append(word)
        size += len(word) + 1
    return " ".join(out)[:chars] + " "


async def test_one_writers_documents_evict_its_own_models_not_a_bystanders():
    from assistant.providers.statistical import MAX_WRITER_CHARS, StatisticalProvider

    provider = StatisticalProvider(use_lexicon=False)
    for i in range(5):
        provider.claim(f"b{i}", "bystander")
        await provider.warm(_words_doc(i, 20_000), f"b{i}")
    for i in range(30):
        provider.claim(f"a{i}", "attacker")
        await provider.warm(_words_doc(100 + i, 99_000), f"a{i}")
    held = set(provider._docs)
    assert {f"b{i}" for i in range(5)} <= held
    assert provider._writer_chars["attacker"] <= MAX_WRITER_CHARS
    assert "a29" in held and "a0" not in held
    await provider.aclose()


async def test_warm_frames_from_many_connections_are_bounded_by_writer(tmp_path):
    """One address opens 60 connections and warms each with 99k characters while another
    client pings: the worker grows by at most 64 MB (1.4 GB for 320 before)."""
    proc, ws_url, _ = await start_serve(tmp_path, "--workers", "1", token=TOKEN)
    try:
        other = await open_client(ws_url, TOKEN)
        await other.ping()
        docs = [_words_doc(i, 99_000) for i in range(60)]  # made before the clock starts
        attackers = []
        async with a.Measured(proc.pid, other) as measured:
            for doc in docs:
                c = await open_client(ws_url, TOKEN, local_addr=("127.0.0.2", 0))
                await c.send({"type": "warm", "id": c.new_id(), "prefix": doc})
                attackers.append(c)
            for c in attackers:
                await c.ping(within=30)  # every warm has been read
            await asyncio.sleep(2.0)  # the measuring window goes on while the learning finishes
        growth, pings = measured.growth, measured.pings
        print(f"\nwarm x60 of 99k: worker +{growth / 2**20:.1f} MB, other client {pings.summary()}")
        assert growth <= 64 * 2**20
        assert pings.failures == 0 and pings.p99 <= 200
        for c in [other, *attackers]:
            await c.ws.close()
    finally:
        await stop_process(proc)


# ------------------------------------------------------------------------- open-file limit


def _open_files_limit(pid: int) -> tuple[int, int]:
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return int(soft), int(hard)
    raise AssertionError("no open-file limit")


async def test_serve_raises_its_soft_open_file_limit_to_the_hard_one(tmp_path):
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard <= 256:
        pytest.skip("needs a finite hard open-file limit above 256")

    def low_soft_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))

    proc, _, _ = await start_serve(
        tmp_path, "--workers", "1", token=TOKEN, preexec_fn=low_soft_limit
    )
    try:
        assert _open_files_limit(proc.pid) == (hard, hard)
    finally:
        await stop_process(proc)


# ------------------------------------------------------------------- a pong that cannot go out


async def _until(predicate, within: float) -> bool:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)  # polling a condition, with a deadline
    return True


async def test_a_pong_that_cannot_be_written_closes_the_connection():
    import dataclasses
    import socket

    from server.guard import GuardedWebSocketProtocol

    async with ServerHandle(settings()) as srv:
        guard = srv.server.config.ws_protocol_class.guard
        guard.limits = dataclasses.replace(guard.limits, pong_write_timeout_s=0.5)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", srv.port))
        sock.settimeout(10)
        sock.sendall(a.UPGRADE.format(token=TOKEN, port=srv.port).encode())
        assert (await asyncio.to_thread(sock.recv, 4096)).startswith(b"HTTP/1.1 101")

        def protocol():
            found = [
                c
                for c in srv.server.server_state.connections
                if isinstance(c, GuardedWebSocketProtocol)
            ]
            return found[0] if found else None

        assert await _until(lambda: protocol() is not None, 5)
        server_side = protocol().transport.get_extra_info("socket")
        server_side.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # fills sooner
        review = json.dumps({"type": "review", "id": 5, "text": LONG_DOC}).encode()
        sock.sendall(a.masked_frame_long(0x1, review))  # findings pile up: the client never reads
        assert await _until(lambda: protocol() and not protocol().writable.is_set(), 20)
        proto = protocol()
        sock.sendall(a.masked_frame(0x9, b"are you there"))
        assert await _until(lambda: proto.transport.is_closing(), 5)
        sock.close()
