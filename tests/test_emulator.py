"""The Anthropic emulator, driven by the real ``anthropic`` SDK through ``base_url``."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
from pathlib import Path

import anthropic
import httpx2
import pytest

from assistant.emulator import (
    PROFILES,
    Emulator,
    EmulatorConfig,
    EmulatorThread,
    Fault,
    LatencyProfile,
    tokenize,
)

MODEL = "claude-haiku-4-5"
ROOT = Path(__file__).resolve().parents[1]
PASSAGE = (
    "The committee met on Tuesday to discuss the budget. After a long debate, "
    "the members agreed to postpone the vote until the auditors had finished their report."
)
LONG_TEXT = " ".join(f"word{i % 97}" for i in range(400))  # ~800 tokens of canned reply


def suggestion(before: str, after: str = "") -> list[dict]:
    return [
        {
            "role": "user",
            "content": f"<text_before_cursor>{before}</text_before_cursor>"
            f"<text_after_cursor>{after}</text_after_cursor>",
        }
    ]


def client(emu: Emulator, **kw) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(api_key="test", base_url=emu.base_url, max_retries=0, **kw)


async def test_stream_events_parse_into_typed_objects_with_final_usage():
    async with Emulator(EmulatorConfig(canned_text="Hello there, friend.")) as emu:
        c = client(emu)
        async with c.messages.stream(
            model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "Say hi"}]
        ) as stream:
            texts = [t async for t in stream.text_stream]
            final = await stream.get_final_message()
        assert "".join(texts) == "Hello there, friend."
        assert final.stop_reason == "end_turn"
        assert final.usage.output_tokens == len(tokenize("Hello there, friend."))
        assert final.usage.input_tokens == 2
        assert final.usage.cache_read_input_tokens == 0

        raw = await c.messages.create(
            model=MODEL,
            max_tokens=50,
            stream=True,
            messages=[{"role": "user", "content": "Say hi"}],
            extra_body={"temperature": 0.2},
        )
        types = [event.type async for event in raw]
        assert types[:2] == ["message_start", "content_block_start"]
        assert types[-3:] == ["content_block_stop", "message_delta", "message_stop"]
        assert set(types[2:-3]) == {"content_block_delta"}
        rec = emu.requests[-1]
        assert rec.body["temperature"] == 0.2
        assert rec.completed and rec.stream and rec.status == 200
        assert rec.headers["authorization"] == "Bearer test"
        assert rec.headers["anthropic-version"]


async def test_whole_response_and_count_tokens_agree_on_input():
    async with Emulator(EmulatorConfig(canned_text="Fine.")) as emu:
        c = client(emu)
        messages = [{"role": "user", "content": "one two three four five six"}]
        system = "You are terse."
        msg = await c.messages.create(model=MODEL, max_tokens=20, system=system, messages=messages)
        assert msg.content[0].text == "Fine."
        assert msg.stop_reason == "end_turn" and msg.role == "assistant"
        counted = await c.messages.count_tokens(model=MODEL, system=system, messages=messages)
        assert counted.input_tokens == msg.usage.input_tokens == 10  # "terse." is two pieces
        assert emu.requests[-1].path == "/v1/messages/count_tokens"


async def test_stop_sequence_and_max_tokens_end_the_reply():
    async with Emulator(EmulatorConfig(canned_text="alpha beta\ngamma delta")) as emu:
        c = client(emu)
        msg = await c.messages.create(
            model=MODEL, max_tokens=50, stop_sequences=["\n"], messages=suggestion("x")
        )
        assert msg.content[0].text == "alpha beta"
        assert (msg.stop_reason, msg.stop_sequence) == ("stop_sequence", "\n")
        async with c.messages.stream(model=MODEL, max_tokens=2, messages=suggestion("x")) as s:
            final = await s.get_final_message()
        assert final.content[0].text == "alpha beta"
        assert final.stop_reason == "max_tokens" and final.usage.output_tokens == 2


def _cached_body(prefix_words: int) -> dict:
    doc = " ".join(f"w{i % 50}" for i in range(prefix_words))
    return {
        "system": [
            {"type": "text", "text": "You complete text."},
            {"type": "text", "text": doc, "cache_control": {"type": "ephemeral"}},
        ],
        "messages": suggestion("Then we"),
    }


async def test_prompt_cache_creates_then_reads_above_minimum_and_expires():
    now = [1000.0]
    async with Emulator(EmulatorConfig(clock=lambda: now[0])) as emu:
        c = client(emu)
        body = _cached_body(5000)
        first = await c.messages.create(model=MODEL, max_tokens=5, **body)
        second = await c.messages.create(model=MODEL, max_tokens=5, **body)
        counted = await c.messages.count_tokens(model=MODEL, **body)
        prefix = first.usage.cache_creation_input_tokens
        assert prefix >= 4096 and first.usage.cache_read_input_tokens == 0
        assert second.usage.cache_read_input_tokens == prefix
        assert second.usage.cache_creation_input_tokens == 0
        assert (
            second.usage.input_tokens == first.usage.input_tokens == counted.input_tokens - prefix
        )
        now[0] += 301  # past the 5-minute TTL
        third = await c.messages.create(model=MODEL, max_tokens=5, **body)
        assert third.usage.cache_creation_input_tokens == prefix
        assert third.usage.cache_read_input_tokens == 0


@pytest.mark.filterwarnings("ignore:The model 'claude-sonnet-4-5' is deprecated")
async def test_prompt_below_model_minimum_is_silently_not_cached():
    async with Emulator() as emu:
        c = client(emu)
        body = _cached_body(3000)  # >= sonnet-4-5's 1024 but < haiku's 4096
        for _ in range(2):
            msg = await c.messages.create(model=MODEL, max_tokens=5, **body)
            assert msg.usage.cache_creation_input_tokens == 0
            assert msg.usage.cache_read_input_tokens == 0
        sonnet = [
            await c.messages.create(model="claude-sonnet-4-5", max_tokens=5, **body)
            for _ in range(2)
        ]
        assert sonnet[0].usage.cache_creation_input_tokens > 1024
        assert (
            sonnet[1].usage.cache_read_input_tokens == sonnet[0].usage.cache_creation_input_tokens
        )


@pytest.mark.parametrize(
    ("fault", "exc_type", "status"),
    [
        (Fault("rate_limit", retry_after=2.0), anthropic.RateLimitError, 429),
        (Fault("overloaded"), anthropic.OverloadedError, 529),
        (Fault("server_error"), anthropic.InternalServerError, 500),
        (Fault("auth"), anthropic.AuthenticationError, 401),
    ],
)
async def test_status_faults_map_to_sdk_exceptions(fault, exc_type, status):
    async with Emulator() as emu:
        c = client(emu)
        emu.inject(fault, count=1)
        for stream in (True, False):
            if stream:
                with pytest.raises(exc_type) as info:
                    await c.messages.create(
                        model=MODEL, max_tokens=5, stream=True, messages=suggestion("a")
                    )
            else:
                msg = await c.messages.create(model=MODEL, max_tokens=5, messages=suggestion("a"))
                assert msg.stop_reason  # the fault was used up by the first request
                continue
            err = info.value
            assert err.status_code == status
            assert err.request_id == emu.requests[0].request_id
            assert isinstance(err.body, dict) and err.body["type"] == "error"
            if fault.kind == "rate_limit":
                assert err.response.headers["retry-after"] == "2"
        assert [r.status for r in emu.requests] == [status, 200]
        assert emu.requests[0].fault == fault.kind and emu.requests[1].fault is None
        assert emu.connections_opened == 1  # errors keep the connection alive
    assert issubclass(anthropic.OverloadedError, anthropic.InternalServerError)


async def test_rate_limit_without_retry_after_has_no_header_and_model_filter_applies():
    async with Emulator() as emu:
        c = client(emu)
        emu.inject(Fault("rate_limit"), count=2, match_model="claude-sonnet-4-6")
        ok = await c.messages.create(model=MODEL, max_tokens=3, messages=suggestion("a"))
        assert ok.stop_reason
        for _ in range(2):
            with pytest.raises(anthropic.RateLimitError) as info:
                await c.messages.create(
                    model="claude-sonnet-4-6", max_tokens=3, messages=suggestion("a")
                )
            assert "retry-after" not in info.value.response.headers
        await c.messages.create(model="claude-sonnet-4-6", max_tokens=3, messages=suggestion("a"))


async def test_api_key_is_checked_when_configured():
    async with Emulator(EmulatorConfig(api_key="sk-right")) as emu:
        with pytest.raises(anthropic.AuthenticationError):
            await client(emu).messages.create(model=MODEL, max_tokens=3, messages=suggestion("a"))
        good = anthropic.AsyncAnthropic(api_key="sk-right", base_url=emu.base_url, max_retries=0)
        assert (await good.messages.create(model=MODEL, max_tokens=3, messages=suggestion("a"))).id
        async with httpx2.AsyncClient(base_url=emu.base_url) as raw:
            body = {"model": MODEL, "max_tokens": 3, "messages": suggestion("a")}
            r = await raw.post("/v1/messages", json=body, headers={"x-api-key": "sk-right"})
            assert r.status_code == 200 and r.json()["type"] == "message"
            r = await raw.post("/v1/messages", json=body, headers={"x-api-key": "sk-wrong"})
            assert r.status_code == 401
            assert r.json()["error"]["type"] == "authentication_error"
            assert r.headers["request-id"].startswith("req_")


async def test_error_event_mid_stream_raises_api_status_error_after_partial_text():
    async with Emulator(EmulatorConfig(canned_text=LONG_TEXT)) as emu:
        c = client(emu)
        emu.inject(Fault("error_mid_stream", after_tokens=3))
        got: list[str] = []
        with pytest.raises(anthropic.APIStatusError) as info:
            async with c.messages.stream(
                model=MODEL, max_tokens=100, messages=suggestion("a")
            ) as s:
                async for text in s.text_stream:
                    got.append(text)
        assert info.value.type == "overloaded_error"
        assert "".join(got) == "".join(tokenize(LONG_TEXT)[:3])
        rec = emu.requests[0]
        assert rec.tokens_sent == 3 and not rec.completed and not rec.client_disconnected
        assert (await c.messages.create(model=MODEL, max_tokens=3, messages=suggestion("a"))).id


@pytest.mark.parametrize("after_tokens", [0, 2])
async def test_hang_until_client_timeout_records_the_disconnect(after_tokens):
    async with Emulator(EmulatorConfig(canned_text=LONG_TEXT)) as emu:
        c = client(emu, timeout=0.4)
        emu.inject(Fault("hang", after_tokens=after_tokens))
        # Before the headers the SDK wraps the timeout; during the body it surfaces raw.
        with pytest.raises((anthropic.APITimeoutError, httpx2.TimeoutException)):
            stream = await c.messages.create(
                model=MODEL, max_tokens=100, stream=True, messages=suggestion("a")
            )
            async for _ in stream:
                pass
        rec = await emu.wait_for_request_end(emu.requests[0], timeout=5.0)
        assert rec.client_disconnected and not rec.completed
        assert rec.tokens_sent == after_tokens


async def test_hang_request_is_visible_on_arrival_before_it_ends():
    async with Emulator() as emu:
        emu.inject(Fault("hang"))
        task = asyncio.create_task(
            client(emu).messages.create(model=MODEL, max_tokens=3, messages=suggestion("a"))
        )
        rec = await emu.wait_for_request(1, timeout=5.0)
        assert rec.ended is None and rec.fault == "hang"
        task.cancel()
        rec = await emu.wait_for_request_end(rec, timeout=5.0)
        assert rec.client_disconnected


async def test_stop_ends_hanging_requests_promptly():
    emu = await Emulator().start()
    emu.inject(Fault("hang"), count=2)
    c = client(emu)
    calls = [
        asyncio.create_task(c.messages.create(model=MODEL, max_tokens=3, messages=suggestion("a")))
        for _ in range(2)
    ]
    await emu.wait_for_request(2)
    await asyncio.wait_for(emu.stop(), 5.0)
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(r, anthropic.APIConnectionError) for r in results)
    assert all(r.ended is not None and not r.client_disconnected for r in emu.requests)


@pytest.mark.parametrize("after_tokens", [0, 2])
async def test_disconnect_fault_raises_a_connection_error(after_tokens):
    async with Emulator(EmulatorConfig(canned_text=LONG_TEXT)) as emu:
        c = client(emu)
        emu.inject(Fault("disconnect", after_tokens=after_tokens))
        with pytest.raises((anthropic.APIConnectionError, httpx2.TransportError)):
            stream = await c.messages.create(
                model=MODEL, max_tokens=100, stream=True, messages=suggestion("a")
            )
            async for _ in stream:
                pass
        rec = await emu.wait_for_request_end(emu.requests[0])
        assert rec.tokens_sent == after_tokens and not rec.completed
        # The client recovers on a new connection.
        await c.messages.create(model=MODEL, max_tokens=3, messages=suggestion("a"))
        assert emu.connections_opened == 2


async def test_client_that_stops_reading_is_noticed_promptly():
    profile = LatencyProfile(ttft_p50_ms=5, ttft_p95_ms=5, inter_token_ms=20, jitter=0)
    async with Emulator(EmulatorConfig(profile=profile, canned_text=LONG_TEXT)) as emu:
        c = client(emu)
        stream = await c.messages.create(
            model=MODEL, max_tokens=500, stream=True, messages=suggestion("a")
        )
        deltas = 0
        async for event in stream:
            if event.type == "content_block_delta":
                deltas += 1
                if deltas == 3:
                    break
        await stream.close()
        rec = await emu.wait_for_request_end(emu.requests[0], timeout=5.0)
        assert rec.client_disconnected and not rec.completed
        assert 3 <= rec.tokens_sent <= 8
        assert rec.usage["output_tokens"] == rec.tokens_sent


async def test_sequential_requests_reuse_one_connection():
    async with Emulator(EmulatorConfig(profile="fast")) as emu:
        c = client(emu)
        for _ in range(3):
            async with c.messages.stream(model=MODEL, max_tokens=5, messages=suggestion("a")) as s:
                await s.get_final_message()
        await c.messages.create(model=MODEL, max_tokens=5, messages=suggestion("a"))
        assert emu.connections_opened == 1
        assert {r.connection_id for r in emu.requests} == {1}


async def test_a_new_connection_waits_for_its_modelled_setup_and_a_reused_one_does_not():
    """``connect_ms`` models the TCP + TLS handshake a real client pays on a new connection:
    the first response on a connection waits that long, the next one on it does not."""
    setup_ms = 300
    async with Emulator(EmulatorConfig(profile="instant", connect_ms=setup_ms)) as emu:
        c = client(emu)
        took = []
        for _ in range(2):
            t0 = asyncio.get_running_loop().time()
            await c.messages.create(model=MODEL, max_tokens=5, messages=suggestion("a"))
            took.append((asyncio.get_running_loop().time() - t0) * 1000)
        assert emu.connections_opened == 1
    assert took[0] >= setup_ms
    assert took[1] < took[0] - setup_ms / 2  # (the same connection: no setup again)


def test_haiku_ttft_quantiles_match_the_profile():
    rng = random.Random(0)
    samples = sorted(PROFILES["haiku"].sample_ttft_ms(rng) for _ in range(20000))
    p50, p95 = samples[len(samples) // 2], samples[int(len(samples) * 0.95)]
    assert 250 <= p50 <= 350
    assert 650 <= p95 <= 950
    gaps = [PROFILES["haiku"].sample_inter_token_ms(rng) for _ in range(1000)]
    assert 7 <= sum(gaps) / len(gaps) <= 9


async def test_slow_fault_and_time_scale_set_the_pace():
    cfg = EmulatorConfig(canned_text="one two three four five six", time_scale=0.5)
    async with Emulator(cfg) as emu:
        c = client(emu)
        emu.inject(Fault("slow", delay_ms=80))
        async with c.messages.stream(model=MODEL, max_tokens=10, messages=suggestion("a")) as s:
            await s.get_final_message()
        rec = emu.requests[0]
        # 5 gaps of 80 ms * 0.5
        assert 0.18 <= rec.ended - rec.first_token_at <= 2.0


async def test_derived_text_continues_the_oracle_passage():
    async with Emulator(EmulatorConfig(oracle_texts=[PASSAGE])) as emu:
        c = client(emu)
        msg = await c.messages.create(
            model=MODEL, max_tokens=8, messages=suggestion("Yesterday the committee met on Tues")
        )
        assert msg.content[0].text.startswith("day to discuss the budget.")
        msg = await c.messages.create(
            model=MODEL, max_tokens=6, messages=suggestion("After a long debate, ")
        )
        assert msg.content[0].text == "the members agreed to"


async def test_derived_text_without_oracle_is_deterministic_and_finishes_words():
    async with Emulator(EmulatorConfig(seed=3)) as emu:
        c = client(emu)
        texts = [
            (
                await c.messages.create(
                    model=MODEL, max_tokens=12, messages=suggestion("We will meet tomor")
                )
            )
            .content[0]
            .text
            for _ in range(2)
        ]
        assert texts[0] == texts[1]
        assert texts[0].startswith("row ")
        after_space = await c.messages.create(
            model=MODEL, max_tokens=12, messages=suggestion("We will meet ")
        )
        assert not after_space.content[0].text[0].isspace()


async def test_review_returns_json_findings_quoting_the_document():
    document = (
        "I think teh plan is is good.  We will recieve it soon\n"
        "and i hope it works.   \n"
        "It definately occured to me. Then teh end."
    )
    async with Emulator(EmulatorConfig(profile="fast")) as emu:
        c = client(emu)
        async with c.messages.stream(
            model="claude-sonnet-4-6",
            max_tokens=4000,
            system="You review documents.",
            messages=[{"role": "user", "content": f"<document>{document}</document>"}],
            output_config={"format": {"type": "json_schema", "schema": {"type": "object"}}},
        ) as s:
            final = await s.get_final_message()
        assert emu.requests[0].tokens_sent > 5  # streamed in pieces
        findings = json.loads(final.content[0].text)["findings"]
        quotes = [f["quote"] for f in findings]
        for f in findings:
            assert f["quote"] in document
            assert f["severity"] in {"high", "medium", "low"}
            assert f["problem"] and isinstance(f["replacement"], str)
        assert all(document.count(q) == 1 for q in quotes)  # unique, so it can be located
        fixes = {f["quote"]: f["replacement"] for f in findings}
        assert fixes["teh plan"] == "the plan"  # widened: "teh" alone occurs twice
        assert fixes["is is"] == "is"
        assert fixes["recieve"] == "receive"
        assert fixes["definately"] == "definitely" and fixes["occured"] == "occurred"
        assert fixes["good.  We"] == "good. We"
        assert fixes["and i hope"] == "and I hope"
        assert fixes["works.   "] == "works."


async def test_admin_endpoints_inject_list_and_reset():
    async with Emulator() as emu:
        c = client(emu)
        async with httpx2.AsyncClient(base_url=emu.base_url) as admin:
            r = await admin.post(
                "/_emulator/faults", json={"kind": "rate_limit", "count": 2, "retry_after": 1}
            )
            assert r.status_code == 200
            for _ in range(2):
                with pytest.raises(anthropic.RateLimitError):
                    await c.messages.create(model=MODEL, max_tokens=3, messages=suggestion("a"))
            await c.messages.create(model=MODEL, max_tokens=3, messages=suggestion("a"))
            listed = (await admin.get("/_emulator/requests")).json()
            assert [r["status"] for r in listed] == [429, 429, 200]
            assert "body" not in listed[0] and "headers" not in listed[0]
            bad = await admin.post("/_emulator/faults", json={"kind": "nonsense"})
            assert bad.status_code == 400
            assert (await admin.post("/_emulator/reset")).status_code == 200
            assert (await admin.get("/_emulator/requests")).json() == []
        assert emu.requests == []


async def test_bad_requests_get_errors_and_the_server_survives():
    async with Emulator() as emu:
        reader, writer = await asyncio.open_connection(emu.host, emu.port)
        writer.write(b"GARBAGE\r\n\r\n")
        await writer.drain()
        reply = await asyncio.wait_for(reader.read(), 5.0)
        assert reply.startswith(b"HTTP/1.1 400")
        writer.close()
        async with httpx2.AsyncClient(base_url=emu.base_url) as raw:
            r = await raw.post("/v1/messages", content=b"{not json")
            assert r.status_code == 400
            assert r.json()["error"]["type"] == "invalid_request_error"
            r = await raw.post("/v1/messages", json={"model": MODEL, "messages": []})
            assert r.status_code == 400
            r = await raw.post("/v1/nothing", json={})
            assert r.status_code == 404
        c = client(emu)
        with pytest.raises(anthropic.BadRequestError):
            await c.messages.create(model=MODEL, max_tokens=0, messages=suggestion("a"))
        assert (await c.messages.create(model=MODEL, max_tokens=3, messages=suggestion("a"))).id


def test_emulator_thread_serves_the_sync_client():
    with EmulatorThread(EmulatorConfig(canned_text="sync ok")) as emu:
        c = anthropic.Anthropic(api_key="test", base_url=emu.base_url, max_retries=0)
        emu.inject(Fault("overloaded"))
        with pytest.raises(anthropic.OverloadedError):
            c.messages.create(model=MODEL, max_tokens=5, messages=suggestion("a"))
        with c.messages.stream(model=MODEL, max_tokens=5, messages=suggestion("a")) as s:
            assert s.get_final_text() == "sync ok"
        rec = emu.wait_for_request_end(emu.wait_for_request(2))
        assert rec.completed and emu.connections_opened == 1
        emu.reset()
        assert emu.requests == []


async def test_many_concurrent_streams_each_on_its_own_connection():
    """Hundreds of simultaneous streams (raw sockets: the SDK's own cost is not under test)."""
    profile = LatencyProfile(ttft_p50_ms=20, ttft_p95_ms=60, inter_token_ms=2, jitter=0.5)
    async with Emulator(EmulatorConfig(profile=profile, seed=1)) as emu:

        async def one(i: int) -> bytes:
            body = json.dumps(
                {"model": MODEL, "max_tokens": 12, "stream": True, "messages": suggestion(f"N{i}")}
            ).encode()
            reader, writer = await asyncio.open_connection(emu.host, emu.port)
            writer.write(
                b"POST /v1/messages HTTP/1.1\r\nhost: emu\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(body), body)
            )
            data = b""
            while not data.endswith(b"\r\n0\r\n\r\n"):
                more = await reader.read(65536)
                assert more, "connection closed mid-stream"
                data += more
            writer.close()
            return data

        replies = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(300))), 30)
        assert all(b"event: message_stop" in r for r in replies)
        assert emu.connections_opened == 300
        assert all(r.completed and r.tokens_sent > 0 for r in emu.requests)


def test_cli_prints_its_url_and_serves():
    proc = subprocess.Popen(
        [sys.executable, "-m", "assistant.emulator", "--port", "0", "--profile", "instant"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("EMULATOR http://127.0.0.1:")
        url = line.split()[1]
        c = anthropic.Anthropic(api_key="test", base_url=url, max_retries=0)
        assert c.messages.create(model=MODEL, max_tokens=3, messages=suggestion("a")).content
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
