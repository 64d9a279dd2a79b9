"""AnthropicProvider and the shared streaming/error helpers, driven through the real SDK against
the Anthropic emulator (no mocks of the SDK)."""

from __future__ import annotations

import asyncio
import contextlib

import anthropic
import httpx2
import pytest

from assistant.config import Settings
from assistant.emulator import Emulator, EmulatorConfig, Fault
from assistant.providers.anthropic import (
    AnthropicProvider,
    make_client,
    map_error,
    parse_retry_after,
    stream_messages,
)
from assistant.providers.base import (
    CompletionRequest,
    Final,
    ProviderError,
    ProviderErrorKind,
    TextChunk,
)

KEY = "sk-ant-test-emulator-key-0123456789"
LONG_TEXT = (
    " and then the committee agreed to postpone the vote until every member had read the"
    " full report, which ran to more than two hundred pages of dense tables and footnotes"
)


@contextlib.asynccontextmanager
async def running(**cfg):
    cfg.setdefault("profile", "instant")
    cfg.setdefault("api_key", KEY)
    async with Emulator(EmulatorConfig(**cfg)) as emu:
        yield emu


def settings_for(emu, **changes) -> Settings:
    base = Settings(
        api_key=KEY, base_url=emu.base_url, suggest_timeout_s=10.0
    )  # generous: CI is loaded
    return base.with_(**changes) if changes else base


async def collect(agen) -> tuple[str, Final]:
    parts: list[str] = []
    final = None
    async for ev in agen:
        if isinstance(ev, TextChunk):
            parts.append(ev.text)
        else:
            assert final is None, "more than one Final"
            final = ev
    assert final is not None, "no Final"
    return "".join(parts), final


async def failure(agen) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        await collect(agen)
    return info.value


def doc(n_chars: int) -> str:
    words = "every morning the river carried small boats past the old mill and the bakery".split()
    out, i = [], 0
    while sum(len(w) + 1 for w in out) < n_chars:
        out.append(words[i % len(words)])
        i += 1
    return " ".join(out)[:n_chars]


# -- streaming ---------------------------------------------------------------------------------


async def test_streams_text_then_one_final_with_usage():
    async with running(canned_text=" jumps over the lazy dog.") as emu:
        provider = AnthropicProvider(settings_for(emu))
        try:
            text, final = await collect(
                provider.stream(CompletionRequest("The quick brown fox", " Then it slept."))
            )
        finally:
            await provider.aclose()
        assert text == " jumps over the lazy dog."
        assert final.source == "model" and final.provider == "anthropic"
        assert final.model == provider.model
        assert final.usage.input_tokens > 0 and final.usage.output_tokens > 0
        assert not final.usage.estimated
        rec = emu.requests[-1]
        assert rec.stream and rec.model == provider.model
        assert rec.max_tokens == provider.rules.tokens(24)  # in the model's own tokens
        assert rec.status == 200 and rec.completed
        assert final.usage.output_tokens == rec.usage["output_tokens"]


async def test_single_line_cut_at_newline_and_connection_kept():
    async with running(
        canned_text=" the end of this line\nand a second line that must not show"
    ) as emu:
        provider = AnthropicProvider(settings_for(emu))
        try:
            text, final = await collect(provider.stream(CompletionRequest("Here is")))
            assert text == " the end of this line"
            assert final.stop_reason == "stop_sequence"
            assert not final.usage.estimated  # drained to the end: exact usage
            await collect(provider.stream(CompletionRequest("Here is more")))
            assert emu.connections_opened == 1  # the drained connection was reused
        finally:
            await provider.aclose()


async def test_stop_sequence_ends_the_stream():
    async with running(canned_text=" ok</text_after_cursor> leaked markup") as emu:
        provider = AnthropicProvider(settings_for(emu))
        try:
            text, final = await collect(provider.stream(CompletionRequest("Say", " after")))
        finally:
            await provider.aclose()
        assert text == " ok"
        assert final.stop_reason == "stop_sequence"
        assert "</text_after_cursor>" in emu.requests[-1].body["stop_sequences"]


async def test_multiline_text_through_shared_stream_helper():
    """The review module streams long, multi-line answers through the same helper."""
    async with running(canned_text="line one\nline two\n") as emu:
        client = make_client(settings_for(emu), timeout=5.0, connect_timeout=1.0)
        try:
            params = {
                "model": "claude-sonnet-4-6",
                "max_tokens": 200,
                "messages": [{"role": "user", "content": "review this"}],
            }
            text, final = await collect(stream_messages(client, params))
        finally:
            await client.close()
        assert text == "line one\nline two\n"
        assert final.model == "claude-sonnet-4-6"


# -- prompt caching ----------------------------------------------------------------------------


async def test_long_document_writes_then_reads_the_cache():
    document = doc(40_000)
    async with running(canned_text=" mill.") as emu:
        provider = AnthropicProvider(settings_for(emu))
        try:
            _, first = await collect(provider.stream(CompletionRequest(document)))
            _, second = await collect(provider.stream(CompletionRequest(document + " t")))
            _, third = await collect(provider.stream(CompletionRequest(document + " th")))
        finally:
            await provider.aclose()
        # the system prompt and the last 6-8 KB of the document (its window), not all 40 KB
        assert 2_000 < first.usage.cache_creation_input_tokens < 3_500
        assert first.usage.cache_read_input_tokens == 0
        assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
        assert second.usage.cache_creation_input_tokens == 0
        assert third.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
        # the uncached remainder is small: only the live tail and the instructions
        assert second.usage.input_tokens < 1500


async def test_new_document_reads_the_cached_system_prompt():
    """The system prompt (instructions and worked examples) is over Haiku 5.5's 512-token
    minimum on its own, so even a new document's requests are mostly cache reads."""
    async with running(canned_text=" mill.") as emu:
        provider = AnthropicProvider(settings_for(emu))
        try:
            finals = []
            for prefix in ("A short note about", "A short note about t"):
                finals.append((await collect(provider.stream(CompletionRequest(prefix))))[1])
        finally:
            await provider.aclose()
        first, second = (f.usage for f in finals)
        assert first.cache_creation_input_tokens >= 512 and first.cache_read_input_tokens == 0
        assert second.cache_read_input_tokens == first.cache_creation_input_tokens
        assert second.cache_creation_input_tokens == 0
        assert second.input_tokens < second.cache_read_input_tokens / 10


# -- failures ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault, kind, status, retry_after",
    [
        (Fault("rate_limit", retry_after=2.0), ProviderErrorKind.RATE_LIMITED, 429, 2.0),
        (Fault("rate_limit"), ProviderErrorKind.RATE_LIMITED, 429, None),
        (Fault("overloaded"), ProviderErrorKind.OVERLOADED, 529, None),
        (Fault("server_error"), ProviderErrorKind.INTERNAL, 500, None),
        (Fault("auth"), ProviderErrorKind.AUTH, 401, None),
    ],
    ids=["429-retry-after", "429", "529", "500", "401"],
)
async def test_http_errors_map_to_kinds(fault, kind, status, retry_after):
    async with running(canned_text=" fine") as emu:
        provider = AnthropicProvider(settings_for(emu))
        try:
            emu.inject(fault, count=1)
            err = await failure(provider.stream(CompletionRequest("Hello")))
            assert err.kind == kind
            assert err.status == status
            assert err.retry_after == retry_after
            assert err.partial_text == ""
            assert KEY not in str(err) and KEY not in repr(err)
            # the fault was one-shot: the next request succeeds
            text, _ = await collect(provider.stream(CompletionRequest("Hello")))
            assert text == " fine"
        finally:
            await provider.aclose()


async def test_wrong_key_is_auth():
    async with running(canned_text=" fine") as emu:
        provider = AnthropicProvider(settings_for(emu, api_key="sk-ant-wrong"))
        try:
            err = await failure(provider.stream(CompletionRequest("Hello")))
        finally:
            await provider.aclose()
        assert err.kind == ProviderErrorKind.AUTH
        assert "sk-ant-wrong" not in str(err)


async def test_error_mid_stream_keeps_partial_text():
    async with running(canned_text=LONG_TEXT) as emu:
        provider = AnthropicProvider(settings_for(emu))
        try:
            emu.inject(Fault("error_mid_stream", after_tokens=3), count=1)
            err = await failure(provider.stream(CompletionRequest("Hello")))
        finally:
            await provider.aclose()
        assert err.kind in {ProviderErrorKind.OVERLOADED, ProviderErrorKind.INTERNAL}
        assert err.transient
        assert err.partial_text and LONG_TEXT.startswith(err.partial_text)


async def test_hang_before_first_token_is_timeout():
    async with running(canned_text=" fine") as emu:
        provider = AnthropicProvider(settings_for(emu, suggest_timeout_s=0.4))
        try:
            emu.inject(Fault("hang"), count=1)
            err = await asyncio.wait_for(failure(provider.stream(CompletionRequest("Hi"))), 10)
        finally:
            await provider.aclose()
        assert err.kind == ProviderErrorKind.TIMEOUT


async def test_hang_mid_stream_is_timeout():
    async with running(canned_text=LONG_TEXT) as emu:
        provider = AnthropicProvider(settings_for(emu, suggest_timeout_s=0.4))
        try:
            emu.inject(Fault("hang", after_tokens=2), count=1)
            err = await asyncio.wait_for(failure(provider.stream(CompletionRequest("Hi"))), 10)
        finally:
            await provider.aclose()
        assert err.kind == ProviderErrorKind.TIMEOUT
        assert err.partial_text


async def test_disconnect_mid_stream_is_network():
    async with running(canned_text=LONG_TEXT) as emu:
        provider = AnthropicProvider(settings_for(emu))
        try:
            emu.inject(Fault("disconnect", after_tokens=2), count=1)
            err = await failure(provider.stream(CompletionRequest("Hi")))
        finally:
            await provider.aclose()
        assert err.kind == ProviderErrorKind.NETWORK


async def test_nothing_listening_is_network():
    settings = Settings(api_key=KEY, base_url="http://127.0.0.1:9", suggest_connect_timeout_s=1.0)
    provider = AnthropicProvider(settings)
    try:
        err = await failure(provider.stream(CompletionRequest("Hi")))
    finally:
        await provider.aclose()
    assert err.kind == ProviderErrorKind.NETWORK


def test_map_error_transport_exceptions():
    request = httpx2.Request("POST", "http://127.0.0.1/v1/messages")
    assert map_error(httpx2.ReadTimeout("read", request=request)).kind == ProviderErrorKind.TIMEOUT
    assert map_error(anthropic.APITimeoutError(request)).kind == ProviderErrorKind.TIMEOUT
    assert map_error(httpx2.ConnectError("refused")).kind == ProviderErrorKind.NETWORK
    assert map_error(httpx2.RemoteProtocolError("peer closed")).kind == ProviderErrorKind.NETWORK
    assert (
        map_error(anthropic.APIConnectionError(request=request)).kind == ProviderErrorKind.NETWORK
    )
    leaked = map_error(RuntimeError(f"boom with {KEY}"), secret=KEY)
    assert KEY not in str(leaked)


@pytest.mark.parametrize(
    "status, kind",
    [
        (400, "bad_request"),
        (404, "bad_request"),
        (413, "bad_request"),
        (422, "bad_request"),
        (403, "auth"),
        (502, "internal"),
        (503, "internal"),
        (529, "overloaded"),
    ],
)
def test_map_error_status_codes(status, kind):
    request = httpx2.Request("POST", "http://127.0.0.1/v1/messages")
    response = httpx2.Response(status, request=request, json={"type": "error", "error": {}})
    exc = anthropic.APIStatusError("x", response=response, body=None)
    assert map_error(exc).kind == kind


def test_retry_after_headers():
    assert parse_retry_after(httpx2.Headers({"retry-after": "3"})) == 3.0
    assert parse_retry_after(httpx2.Headers({"retry-after-ms": "1500"})) == 1.5
    assert parse_retry_after(httpx2.Headers({"retry-after": "soon"})) is None
    assert parse_retry_after(httpx2.Headers({})) is None


# -- cancellation and connections --------------------------------------------------------------


async def test_closing_the_generator_closes_the_http_stream():
    async with running(canned_text=LONG_TEXT) as emu:
        provider = AnthropicProvider(settings_for(emu))
        try:
            emu.inject(Fault("slow", delay_ms=100), count=1)
            agen = provider.stream(CompletionRequest("Hi"))
            chunks = [await agen.__anext__(), await agen.__anext__()]
            assert all(isinstance(c, TextChunk) for c in chunks)
            await agen.aclose()
            rec = emu.requests[-1]
            await emu.wait_for_request_end(rec, timeout=5.0)
        finally:
            await provider.aclose()
        assert rec.client_disconnected and not rec.completed
        assert rec.tokens_sent <= 5
        assert len(LONG_TEXT) // 4 >= 40


async def test_cancelling_the_consumer_closes_the_http_stream():
    async with running(canned_text=LONG_TEXT) as emu:
        provider = AnthropicProvider(settings_for(emu))
        got_two = asyncio.Event()

        async def consume():
            n = 0
            async for ev in provider.stream(CompletionRequest("Hi")):
                n += isinstance(ev, TextChunk)
                if n == 2:
                    got_two.set()

        try:
            emu.inject(Fault("slow", delay_ms=100), count=1)
            task = asyncio.create_task(consume())
            await asyncio.wait_for(got_two.wait(), 5)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            rec = emu.requests[-1]
            await emu.wait_for_request_end(rec, timeout=5.0)
        finally:
            await provider.aclose()
        assert rec.client_disconnected and not rec.completed
        assert rec.tokens_sent <= 5


async def test_warm_connection_is_reused():
    async with running(canned_text=" fine") as emu:
        provider = AnthropicProvider(settings_for(emu))
        try:
            await provider.warm("Some text", document_id="doc")
            assert emu.connections_opened == 1
            for prefix in ("a", "ab", "abc"):
                await collect(provider.stream(CompletionRequest(prefix)))
        finally:
            await provider.aclose()
        assert emu.connections_opened == 1


async def test_warm_never_raises_when_nothing_listens():
    provider = AnthropicProvider(
        Settings(api_key=KEY, base_url="http://127.0.0.1:9", suggest_connect_timeout_s=0.5)
    )
    try:
        await provider.warm()
    finally:
        await provider.aclose()


async def _events_of(chunks: list[bytes]) -> list[dict]:
    from assistant.providers.anthropic import _sse_events

    async def body():
        for c in chunks:
            yield c

    return [e async for e in _sse_events(httpx2.Response(200, content=body()))]


async def test_sse_parser_joins_events_split_across_chunks_and_line_endings():
    raw = (
        b'event: message_start\r\ndata: {"type":"message_start","message":{"usage":{}}}\r\n\r\n'
        b'event: ping\ndata: {"type": "ping"}\n\n'
        b'event: content_block_delta\ndata:{"type":"content_block_delta","index":0}\n\n'
        b'event: message_stop\ndata: {"type":"message_stop"}'
    )
    for size in (1, 7, len(raw)):
        chunks = [raw[i : i + size] for i in range(0, len(raw), size)]
        types = [e["type"] for e in await _events_of(chunks)]
        assert types == ["message_start", "content_block_delta", "message_stop"]


async def test_sse_parser_keeps_an_event_name_when_a_crlf_is_split_across_chunks():
    """A chunk ending in "\r" whose "\n" comes in the next one is one line break, not a blank
    line: the event's name stays with its data."""
    raw = b'event: error\r\ndata: {"error":{"type":"overloaded_error"}}\r\n\r\n'
    for cut in range(1, len(raw)):
        events = await _events_of([raw[:cut], raw[cut:]])
        assert events == [{"type": "error", "error": {"type": "overloaded_error"}}], cut


async def test_sse_parser_refuses_a_body_that_is_not_json_events():
    with pytest.raises(ProviderError) as info:
        await _events_of([b"event: message_start\ndata: <html>\n\n"])
    assert info.value.kind == ProviderErrorKind.INTERNAL


async def test_mid_stream_error_event_keeps_its_kind():
    from assistant.providers.anthropic import _stream_error

    raw = b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    (event,) = await _events_of([raw])
    err = _stream_error(event)
    assert err.kind == ProviderErrorKind.OVERLOADED
    assert err.message == "stream error: overloaded_error: Overloaded"


async def test_client_shards_fill_one_pool_before_opening_another_and_cap_in_flight():
    from assistant.providers.anthropic import ClientShards

    made = []

    def make():
        made.append(make_client(Settings(api_key=KEY), timeout=1, connect_timeout=1))
        return made[-1]

    shards = ClientShards(make, per_client=2, max_in_flight=3)
    try:
        async with shards.lease() as a, shards.lease() as b:
            assert a is b is shards.first  # one writer's requests reuse one warm pool
            async with shards.lease() as c:
                assert c is not a and len(shards.clients) == 2  # made when the first was full
                assert shards.in_flight == 3
                with pytest.raises(ProviderError) as info:
                    async with shards.lease(wait_s=0.05):
                        pass
                assert info.value.kind == ProviderErrorKind.TIMEOUT
        assert shards.in_flight == 0
        async with shards.lease() as d:
            assert d is shards.first
    finally:
        await shards.aclose()
    assert len(made) == 2


@pytest.mark.parametrize("model", ["claude-haiku-5-5", "claude-haiku-4-5"])
def test_the_budget_reserves_for_every_character_the_model_is_sent(model):
    """A writer's spending cap holds only if a suggestion's reservation covers what its request
    carries: the reservation must use the same window of a long document as the prompt (6-8 KB
    on Haiku 5.5, 24 KB on Haiku 4.5), never a narrower one."""
    from assistant.budget import worst_case_cost
    from server.wiring import ProviderSetup

    settings = Settings(api_key=KEY, suggest_model=model)
    provider = AnthropicProvider(settings)
    setup = ProviderSetup(provider=provider, label="anthropic", settings=settings)
    prefix, suffix = doc(60_000), "\n\nThe rest of the report follows. " * 80
    params = provider.params(CompletionRequest(prefix, suffix))
    sent = len(params["system"][0]["text"])
    sent += sum(len(b["text"]) for b in params["messages"][0]["content"])
    max_tokens = params["max_tokens"]
    reserved_model, reserved = setup.suggestion_worst_case(prefix, suffix)
    assert reserved_model == model
    assert reserved >= worst_case_cost(model, sent, max_tokens)
    assert reserved <= worst_case_cost(model, sent + 4_000, max_tokens)  # the window, not 60 KB
