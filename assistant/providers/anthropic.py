"""The Anthropic tier: Claude Haiku through the official SDK, streamed, no SDK retries.

Retries are the tiering layer's job (it falls back to the offline tier instead of making the
user wait), so the client is built with ``max_retries=0`` and tight timeouts. Every SDK and
transport failure leaves this module as a :class:`ProviderError` with a typed kind
(:func:`map_error`). :func:`stream_messages` is the one place that turns an SDK event stream into
``TextChunk``/``Final`` events; the review module uses it too. It reads text from content blocks
by their type, never by position: a model that thinks (Haiku 5.5 and Sonnet 5.5 by default)
starts its reply with a thinking block, whose text must never reach the user.
"""

from __future__ import annotations

import contextlib
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import anthropic
import httpx2
import orjson

from ..config import Settings
from ..pricing import ModelRules, Usage, default_catalog, estimate_tokens
from . import http2_cancel
from .admission import LagGate
from .base import CompletionRequest, Final, ProviderError, ProviderErrorKind, StreamEvent, TextChunk
from .prompts import build_suggest_params

PROVIDER_NAME = "anthropic"
KEEPALIVE_EXPIRY_S = 30.0
# Suggestions spread over several SDK clients of POOL_CONNECTIONS each (see ClientShards), at
# most MAX_IN_FLIGHT at once per process.
POOL_CONNECTIONS = 16
MAX_IN_FLIGHT = 256
# A suggestion that waited this long for the gate goes to the offline tier instead: with Haiku's
# ~0.3 s to a first token on top, the model would answer well after the writer's pause. (1 s
# was measured against it: at 1,000 typists a model answer's p99 was 1.6-1.7 s against 0.67 s,
# and fewer of them came, the slots going to requests gone stale while they waited;
# docs/reliability.md.)
GATE_WAIT_S = 0.3

# `error.type` in an error body (HTTP or a mid-stream `event: error`) -> our kind.
_ERROR_TYPES = {
    "rate_limit_error": ProviderErrorKind.RATE_LIMITED,
    "overloaded_error": ProviderErrorKind.OVERLOADED,
    "authentication_error": ProviderErrorKind.AUTH,
    "permission_error": ProviderErrorKind.AUTH,
    "invalid_request_error": ProviderErrorKind.BAD_REQUEST,
    "not_found_error": ProviderErrorKind.BAD_REQUEST,
    "request_too_large": ProviderErrorKind.BAD_REQUEST,
    "api_error": ProviderErrorKind.INTERNAL,
    "timeout_error": ProviderErrorKind.TIMEOUT,
}
_STATUS = {
    429: ProviderErrorKind.RATE_LIMITED,
    529: ProviderErrorKind.OVERLOADED,
    401: ProviderErrorKind.AUTH,
    403: ProviderErrorKind.AUTH,
    400: ProviderErrorKind.BAD_REQUEST,
    404: ProviderErrorKind.BAD_REQUEST,
    413: ProviderErrorKind.BAD_REQUEST,
    422: ProviderErrorKind.BAD_REQUEST,
    408: ProviderErrorKind.TIMEOUT,
    504: ProviderErrorKind.TIMEOUT,
}


def make_client(
    settings: Settings,
    *,
    timeout: float,
    connect_timeout: float,
    max_retries: int = 0,
    connections: int = 100,
    keepalive: int = 20,
    verify: ssl.SSLContext | None = None,
) -> anthropic.AsyncAnthropic:
    """An SDK client with our timeouts and a keep-alive pool (one warm connection serves a user).

    HTTP/2 when the server offers it by ALPN (the API does; HTTP/1.1 otherwise): a cancelled
    suggestion then resets one stream instead of closing the connection (``http2_cancel``), so
    the next request does not pay a TCP + TLS handshake. ``verify`` defaults to a context
    trusting ``settings.ca_file`` when set, else the system's CAs.
    """
    http2_cancel.install()
    if verify is None:
        verify = trust(settings)
    http_client = anthropic.DefaultAsyncHttpxClient(
        http2=True,
        timeout=httpx2.Timeout(timeout, connect=connect_timeout),
        limits=httpx2.Limits(
            max_connections=connections,
            max_keepalive_connections=keepalive,
            keepalive_expiry=KEEPALIVE_EXPIRY_S,
        ),
        verify=verify,
    )
    return anthropic.AsyncAnthropic(
        api_key=settings.api_key,
        base_url=settings.base_url,
        timeout=httpx2.Timeout(timeout, connect=connect_timeout),
        max_retries=max_retries,
        http_client=http_client,
    )


def trust(settings: Settings) -> ssl.SSLContext:
    """The TLS context for the API: ``settings.ca_file`` when set, else the system's CAs."""
    return ssl.create_default_context(cafile=settings.ca_file)


def parse_retry_after(headers: Any) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (seconds); None when absent or a date."""
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            value = float(raw) / scale
        except (TypeError, ValueError):
            continue
        if value >= 0:
            return value
    return None


def _redact(message: str, secret: str | None) -> str:
    if secret and secret in message:
        message = message.replace(secret, "[redacted]")
    return message


def _status_error_message(exc: anthropic.APIStatusError) -> str:
    text = exc.api_message or ""
    kind = exc.type or ""
    status = exc.status_code
    parts = [f"HTTP {status}" if status and status != 200 else "stream error"]
    if kind:
        parts.append(str(kind))
    if text:
        parts.append(text)
    return ": ".join(parts)


def map_error(exc: BaseException, *, secret: str | None = None) -> ProviderError:
    """Turn any SDK or transport failure into a :class:`ProviderError` (never leaks the key)."""
    if isinstance(exc, ProviderError):
        return exc
    kind: ProviderErrorKind
    retry_after: float | None = None
    status: int | None = None
    if isinstance(exc, anthropic.APIStatusError):
        status = exc.status_code
        err_type = exc.type if isinstance(exc.type, str) else None
        if status == 200 or status is None:
            # A mid-stream `event: error` on an HTTP 200 response: only the body says what it was.
            kind = _ERROR_TYPES.get(err_type or "", ProviderErrorKind.INTERNAL)
            status = None
        elif status in _STATUS:
            kind = _STATUS[status]
        elif err_type in _ERROR_TYPES and status >= 500:
            kind = _ERROR_TYPES[err_type]
        elif status >= 500:
            kind = ProviderErrorKind.INTERNAL
        else:
            kind = ProviderErrorKind.BAD_REQUEST
        try:
            retry_after = parse_retry_after(exc.response.headers)
        except Exception:
            retry_after = None
        message = _status_error_message(exc)
    elif isinstance(exc, anthropic.APITimeoutError | httpx2.TimeoutException | TimeoutError):
        kind = ProviderErrorKind.TIMEOUT
        message = f"timed out ({type(exc).__name__})"
    elif isinstance(
        exc,
        anthropic.APIConnectionError
        | httpx2.TransportError
        | httpx2.StreamError
        | ConnectionError
        | OSError,
    ):
        kind = ProviderErrorKind.NETWORK
        cause = exc.__cause__ or exc
        message = f"network error ({type(cause).__name__}: {cause})"
    elif isinstance(exc, anthropic.APIResponseValidationError):
        kind = ProviderErrorKind.INTERNAL
        message = "unexpected response shape"
    else:
        kind = ProviderErrorKind.INTERNAL
        message = f"{type(exc).__name__}: {exc}"
    return ProviderError(
        kind=kind, message=_redact(message, secret), retry_after=retry_after, status=status
    )


def _usage_from(start: Any, delta: Any) -> Usage:
    """Usage from message_start's usage, updated by message_delta's (cumulative) counts."""

    def pick(name: str) -> int:
        for src in (delta, start):
            value = src.get(name) if isinstance(src, dict) else None
            if value is not None:
                return int(value)
        return 0

    return Usage(
        input_tokens=pick("input_tokens"),
        output_tokens=pick("output_tokens"),
        cache_creation_input_tokens=pick("cache_creation_input_tokens"),
        cache_read_input_tokens=pick("cache_read_input_tokens"),
    )


async def stream_messages(
    client: anthropic.AsyncAnthropic,
    params: dict,
    *,
    deadline: float | None = None,
    provider: str = PROVIDER_NAME,
    meter: dict | None = None,
) -> AsyncIterator[StreamEvent]:
    """Stream one Messages request: ``TextChunk`` per delta of a text block, then one ``Final``.

    Thinking (and any other non-text) blocks are skipped; their tokens still show in the usage.

    The SDK sends the request, and raises for an HTTP error status as usual; the event stream is
    read from the raw response (``with_streaming_response``) and parsed here, because the SDK's
    SSE decoder and a model object per event were about a third of the server's CPU per
    suggestion (docs/performance.md).

    Raises :class:`ProviderError` (with ``partial_text``) on any failure. ``deadline`` is a
    ``time.monotonic()`` instant after which the stream is abandoned as a TIMEOUT. Closing this
    generator, or cancelling the task consuming it, closes the HTTP stream at once.
    ``meter["usage"]`` gets the request's usage as ``message_start`` reports it (what its
    input cost, known before the reply: a request cut short is billed for it), and
    ``meter["http2"]`` whether the reply came over HTTP/2 (closing it early then resets one
    stream; over HTTP/1.1 it closes the connection).
    """
    secret = getattr(client, "api_key", None)
    model = str(params.get("model", ""))
    parts: list[str] = []
    try:
        async with client.messages.with_streaming_response.create(
            **params, stream=True
        ) as response:
            if meter is not None:
                meter["http2"] = response.http_response.http_version == "HTTP/2"
            start_usage = None
            delta_usage = None
            stop_reason = None
            text_blocks: set[int] = set()
            async for event in _sse_events(response.http_response):
                etype = event.get("type")
                if etype == "content_block_delta":
                    delta = event.get("delta") or {}
                    text = delta.get("text")
                    if (
                        event.get("index") in text_blocks
                        and delta.get("type") == "text_delta"
                        and text
                    ):
                        parts.append(text)
                        yield TextChunk(text)
                elif etype == "message_start":
                    message = event.get("message") or {}
                    start_usage = message.get("usage")
                    model = message.get("model") or model
                    if meter is not None:
                        meter["usage"] = _usage_from(start_usage, None)
                elif etype == "content_block_start":
                    if (event.get("content_block") or {}).get("type") == "text":
                        text_blocks.add(event.get("index"))
                elif etype == "message_delta":
                    delta_usage = event.get("usage")
                    stop_reason = (event.get("delta") or {}).get("stop_reason")
                    stop_text = _kept_of_stop((event.get("delta") or {}).get("stop_sequence"))
                    if stop_reason == "stop_sequence" and stop_text:
                        parts.append(stop_text)
                        yield TextChunk(stop_text)
                elif etype == "error":
                    raise _stream_error(event)
                if deadline is not None and time.monotonic() > deadline:
                    # The API is answering (an event just came): the request was too slow to
                    # be of use (a long reply, or this process's loop running late under
                    # load), not an outage, so it opens no backoff window for every writer.
                    raise ProviderError(
                        ProviderErrorKind.TIMEOUT, "suggestion deadline passed", local=True
                    )
        yield Final(
            usage=_usage_from(start_usage, delta_usage),
            model=model,
            source="model",
            stop_reason=stop_reason,
            provider=provider,
        )
    except ProviderError as err:
        err.partial_text = "".join(parts)
        raise
    except Exception as exc:
        err = map_error(exc, secret=secret)
        err.partial_text = "".join(parts)
        raise err from exc


def _kept_of_stop(stop_sequence: object) -> str:
    """The text of a stop sequence that ends in whitespace (a sentence stop such as ". "):
    the model wrote it, and only the whitespace marks where to stop, so the text is kept."""
    if not isinstance(stop_sequence, str) or stop_sequence == stop_sequence.rstrip():
        return ""
    return stop_sequence.rstrip()


async def _sse_events(response: httpx2.Response) -> AsyncIterator[dict]:
    """The JSON ``data`` of each server-sent event, in order (``ping``s and events without
    data skipped). An event is the lines up to a blank line; an ``error`` event's data carries
    ``"type": "error"`` like the API's."""
    buffer = b""
    async for chunk in response.aiter_bytes():
        buffer += chunk
        if b"\r" in buffer:
            # A "\r" at the end may be half of a "\r\n" whose "\n" is in the next chunk: it
            # waits for it, or two line breaks would be read where there is one.
            held = b"\r" if buffer.endswith(b"\r") else b""
            body = buffer[: len(buffer) - len(held)]
            buffer = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n") + held
        *blocks, buffer = buffer.split(b"\n\n")
        for block in blocks:
            data = _sse_data(block)
            if data is not None:
                yield data
    if buffer.strip():
        data = _sse_data(buffer.rstrip(b"\r"))
        if data is not None:
            yield data


def _sse_data(block: bytes) -> dict | None:
    event, data = b"", []
    for line in block.split(b"\n"):
        if line.startswith(b"data:"):
            data.append(line[6:] if line[5:6] == b" " else line[5:])
        elif line.startswith(b"event:"):
            event = line[6:].strip()
    if not data or event == b"ping":
        return None
    try:
        value = orjson.loads(b"\n".join(data))
    except orjson.JSONDecodeError:
        raise ProviderError(ProviderErrorKind.INTERNAL, "unexpected response shape") from None
    if not isinstance(value, dict):
        raise ProviderError(ProviderErrorKind.INTERNAL, "unexpected response shape")
    if event == b"error" and value.get("type") != "error":
        value = {"type": "error", "error": value.get("error", value)}
    return value


def _stream_error(event: dict) -> ProviderError:
    """A mid-stream ``event: error`` (HTTP 200): only the body says what it was."""
    error = event.get("error") if isinstance(event.get("error"), dict) else {}
    err_type = str(error.get("type") or "")
    text = str(error.get("message") or "")
    message = ": ".join(p for p in ("stream error", err_type, text) if p)
    return ProviderError(_ERROR_TYPES.get(err_type, ProviderErrorKind.INTERNAL), message)


def billed_so_far(started: Usage, model: str, text: str) -> Usage:
    """What a request cut short after ``message_start`` cost: its input as that event reported
    it (cache writes included, which an estimate can only guess), its output estimated from
    ``text``, what streamed before the cut."""
    factor = (default_catalog().rules(model) or ModelRules()).tokenizer_factor
    output = max(started.output_tokens, estimate_tokens(text, factor))
    return replace(started, output_tokens=output, estimated=True)


def estimated_usage(params: dict, text: str, started: Usage | None = None) -> Usage:
    """What a request probably cost when it ended before the API reported usage, counted with
    the tokenizer factor of the request's model; ``started``: the usage its ``message_start``
    reported, when it came (see :func:`billed_so_far`). Without it, the prompt up to its last
    ``cache_control`` mark is counted as a cache read: a suggestion's prefix is what the previous
    keystroke's request cached, and counting it as uncached input would bill a cancelled call
    ~10x over."""
    model = str(params.get("model", ""))
    if started is not None:
        return billed_so_far(started, model, text)
    rules = default_catalog().rules(model) or ModelRules()
    factor = rules.tokenizer_factor
    system = params.get("system", "")
    blocks = list(system) if isinstance(system, list) else [system]
    for message in params.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else message
        blocks.extend(content if isinstance(content, list) else [content])
    total = cached = 0
    for block in blocks:
        text_of = block.get("text", str(block)) if isinstance(block, dict) else str(block)
        total += estimate_tokens(str(text_of), factor)
        if isinstance(block, dict) and block.get("cache_control"):
            cached = total
    return Usage(
        input_tokens=max(1, total - cached),
        output_tokens=estimate_tokens(text, factor),
        cache_read_input_tokens=cached,
        estimated=True,
    )


class ClientShards:
    """SDK clients with small connection pools, behind one cap on requests in flight.

    The HTTP pool under the SDK scans every connection it holds, and every request queued in it,
    each time a request starts or a response closes (checking each socket with a system call).
    One client with a pool of 100 made that quadratic: a burst of 500 writers' first keystrokes
    held the event loop for hundreds of milliseconds per step. So a request leases the client
    with the fewest requests in flight among clients of ``per_client`` connections; clients are
    made only when the ones before are full (one writer keeps reusing one warm connection).
    Requests pass a :class:`LagGate` first (at most ``max_in_flight``, fewer while the event loop
    runs late), so none ever waits inside a pool.
    """

    def __init__(
        self,
        make: Any,
        *,
        per_client: int = POOL_CONNECTIONS,
        max_in_flight: int = MAX_IN_FLIGHT,
        first: anthropic.AsyncAnthropic | None = None,
    ) -> None:
        self._make = make
        self.per_client = per_client
        self.clients: list[anthropic.AsyncAnthropic] = [first if first is not None else make()]
        self._busy = [0]  # requests in flight per client
        self.gate = LagGate(maximum=max_in_flight)

    @property
    def first(self) -> anthropic.AsyncAnthropic:
        return self.clients[0]

    @property
    def in_flight(self) -> int:
        return self.gate.held

    @contextlib.asynccontextmanager
    async def lease(self, wait_s: float | None = None) -> AsyncIterator[anthropic.AsyncAnthropic]:
        """The least busy client, for one request. Waits at most ``wait_s`` seconds at the gate,
        then a local TIMEOUT (the request falls back; the provider is not blamed)."""
        if not await self.gate.acquire(wait_s):  # not raised from a timeout: no chain to keep
            raise ProviderError(
                ProviderErrorKind.TIMEOUT, "this server is too busy for a model request", local=True
            )
        try:
            busy = self._busy
            i = min(range(len(busy)), key=busy.__getitem__)
            if busy[i] >= self.per_client:
                self.clients.append(self._make())
                busy.append(0)
                i = len(busy) - 1
            busy[i] += 1
            try:
                yield self.clients[i]
            finally:
                busy[i] -= 1
        finally:
            self.gate.release()

    async def aclose(self, *, skip_first: bool = False) -> None:
        await self.gate.aclose()
        for client in self.clients[1 if skip_first else 0 :]:
            with contextlib.suppress(Exception):
                await client.close()


class AnthropicProvider:
    """Suggestions from Claude (Haiku by default) over one warm keep-alive connection."""

    name = PROVIDER_NAME

    def __init__(
        self,
        settings: Settings,
        *,
        model: str | None = None,
        client: anthropic.AsyncAnthropic | None = None,
    ) -> None:
        self.settings = settings
        self.model = model or settings.suggest_model
        self._own_client = client is None
        verify = trust(settings) if client is None else None  # one context for all clients

        def make() -> anthropic.AsyncAnthropic:
            return make_client(
                settings,
                timeout=settings.suggest_timeout_s,
                connect_timeout=settings.suggest_connect_timeout_s,
                max_retries=0,
                connections=POOL_CONNECTIONS,
                keepalive=POOL_CONNECTIONS,
                verify=verify,
            )

        self.shards = ClientShards(make, first=client)
        self.gate_wait_s = GATE_WAIT_S
        self.client = self.shards.first
        try:
            entry = default_catalog().price(self.model)
            self.rules, model_min = entry.rules, entry.min_cacheable_tokens
        except KeyError:  # a model the catalog does not know yet: plain request, no cache mark
            self.rules, model_min = ModelRules(), 4096
        if settings.prompt_cache_min_tokens is not None:
            self.cache_min_tokens = settings.prompt_cache_min_tokens
        else:
            self.cache_min_tokens = model_min

    def params(self, request: CompletionRequest) -> dict:
        return build_suggest_params(
            request.prefix,
            request.suffix,
            model=self.model,
            max_tokens=request.max_tokens or self.settings.suggest_max_tokens,
            cache_min_tokens=self.cache_min_tokens,
            rules=self.rules,
        )

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        """One line of continuation: the reply is closed at its first newline."""
        deadline = time.monotonic() + self.settings.suggest_timeout_s
        async with self.shards.lease(
            min(self.gate_wait_s, self.settings.suggest_timeout_s)
        ) as client:
            params = self.params(request)  # only for a request that goes out
            async for event in self._stream(client, params, deadline, request.meter):
                yield event

    async def _stream(
        self,
        client: anthropic.AsyncAnthropic,
        params: dict,
        deadline: float,
        meter: dict | None = None,
    ) -> AsyncIterator[StreamEvent]:
        """Text after a newline is never shown. Over HTTP/2 the reply is closed there: that
        resets one stream (the connection stays warm) and the model stops writing, and billing,
        the rest of what nobody sees; its input is billed as ``message_start`` reported it, its
        output estimated from the text that came (``billed_so_far``). Over HTTP/1.1 closing
        would cost the connection (the next call pays a new TCP + TLS handshake), so the rest is
        read and dropped, and the usage is exact."""
        meter = {} if meter is None else meter
        inner = stream_messages(client, params, deadline=deadline, meter=meter)
        shown: list[str] = []
        cut = False
        try:
            async for event in inner:
                if isinstance(event, Final):
                    if cut:
                        event = replace(event, stop_reason="stop_sequence")
                    yield event
                    return
                if cut:
                    continue
                text = event.text
                newline = text.find("\n")
                if newline >= 0:
                    cut = True
                    text = text[:newline]
                if text:
                    shown.append(text)
                    yield TextChunk(text)
                if cut and meter.get("http2"):
                    yield self._line_done(params, shown, meter)
                    return
        except ProviderError:
            if not cut:
                raise
            # The line was complete; only the drain after it failed. Not the user's problem.
            yield self._line_done(params, shown, meter)
        finally:
            await inner.aclose()

    def _line_done(self, params: dict, shown: list[str], meter: dict) -> Final:
        """The end of a reply cut at its newline before the API reported its usage."""
        return Final(
            usage=estimated_usage(params, "".join(shown), meter.get("usage")),
            model=self.model,
            source="model",
            stop_reason="stop_sequence",
            provider=self.name,
        )

    async def warm(self, prefix: str = "", document_id: str = "default") -> None:
        """Open the keep-alive connection before the first keystroke (a free count_tokens call)."""
        try:
            await self.client.messages.count_tokens(
                model=self.model,
                messages=[{"role": "user", "content": prefix[-200:] or "."}],
            )
        except Exception:
            pass

    async def aclose(self) -> None:
        await self.shards.aclose(skip_first=not self._own_client)
