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

import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import anthropic
import httpx2

from ..config import Settings
from ..pricing import ModelRules, Usage, default_catalog, estimate_tokens
from ..prompts import build_suggest_params
from .base import CompletionRequest, Final, ProviderError, ProviderErrorKind, StreamEvent, TextChunk

PROVIDER_NAME = "anthropic"
KEEPALIVE_EXPIRY_S = 30.0

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
    settings: Settings, *, timeout: float, connect_timeout: float, max_retries: int = 0
) -> anthropic.AsyncAnthropic:
    """An SDK client with our timeouts and a keep-alive pool (one warm connection serves a user)."""
    http_client = anthropic.DefaultAsyncHttpxClient(
        timeout=httpx2.Timeout(timeout, connect=connect_timeout),
        limits=httpx2.Limits(
            max_connections=100, max_keepalive_connections=20, keepalive_expiry=KEEPALIVE_EXPIRY_S
        ),
    )
    return anthropic.AsyncAnthropic(
        api_key=settings.api_key,
        base_url=settings.base_url,
        timeout=httpx2.Timeout(timeout, connect=connect_timeout),
        max_retries=max_retries,
        http_client=http_client,
    )


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
            value = getattr(src, name, None) if src is not None else None
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
) -> AsyncIterator[StreamEvent]:
    """Stream one Messages request: ``TextChunk`` per delta of a text block, then one ``Final``.

    Thinking (and any other non-text) blocks are skipped; their tokens still show in the usage.

    Raises :class:`ProviderError` (with ``partial_text``) on any failure. ``deadline`` is a
    ``time.monotonic()`` instant after which the stream is abandoned as a TIMEOUT. Closing this
    generator, or cancelling the task consuming it, closes the HTTP stream at once.
    """
    secret = getattr(client, "api_key", None)
    model = str(params.get("model", ""))
    parts: list[str] = []
    stream = None
    try:
        stream = await client.messages.create(**params, stream=True)
        start_usage = None
        delta_usage = None
        stop_reason = None
        text_blocks: set[int] = set()
        async for event in stream:
            etype = event.type
            if etype == "message_start":
                start_usage = event.message.usage
                model = event.message.model or model
            elif etype == "content_block_start":
                if event.content_block.type == "text":
                    text_blocks.add(event.index)
            elif etype == "content_block_delta":
                if (
                    event.index in text_blocks
                    and event.delta.type == "text_delta"
                    and event.delta.text
                ):
                    parts.append(event.delta.text)
                    yield TextChunk(event.delta.text)
            elif etype == "message_delta":
                delta_usage = event.usage
                stop_reason = event.delta.stop_reason
            if deadline is not None and time.monotonic() > deadline:
                raise ProviderError(ProviderErrorKind.TIMEOUT, "suggestion deadline passed")
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
    finally:
        if stream is not None:
            try:
                await stream.close()
            except Exception:
                pass  # the connection is being dropped anyway; the real error (if any) wins


def estimated_usage(params: dict, text: str) -> Usage:
    """What a request probably cost when it ended before the API reported usage, counted with
    the tokenizer factor of the request's model."""
    rules = default_catalog().rules(str(params.get("model", ""))) or ModelRules()
    factor = rules.tokenizer_factor
    prompt = str(params.get("system", "")) + str(params.get("messages", ""))
    return Usage(
        input_tokens=max(1, estimate_tokens(prompt, factor)),
        output_tokens=estimate_tokens(text, factor),
        estimated=True,
    )


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
        self.client = client or make_client(
            settings,
            timeout=settings.suggest_timeout_s,
            connect_timeout=settings.suggest_connect_timeout_s,
            max_retries=0,
        )
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
        """One line of continuation. Text after a newline is not shown; the rest of the (short)
        response is still read so the keep-alive connection stays reusable and usage is exact."""
        deadline = time.monotonic() + self.settings.suggest_timeout_s
        params = self.params(request)
        inner = stream_messages(self.client, params, deadline=deadline)
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
        except ProviderError:
            if not cut:
                raise
            # The line was complete; only the drain after it failed. Not the user's problem.
            yield Final(
                usage=estimated_usage(params, "".join(shown)),
                model=self.model,
                source="model",
                stop_reason="stop_sequence",
                provider=self.name,
            )
        finally:
            await inner.aclose()

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
        if self._own_client:
            try:
                await self.client.close()
            except Exception:
                pass
