"""The emulator itself: an asyncio server speaking the Anthropic Messages API.

A raw :class:`asyncio.Protocol` rather than a web framework, so that hangs, abrupt disconnects
and a client going away mid-stream are exact: a client that closes its socket (HTTP/1.1) or
resets its stream (HTTP/2, ``http2.py``) is noticed on the next event-loop turn and streaming
stops there, with the count of tokens actually written recorded. With ``tls`` it serves TLS with
a test CA (``tls.py``) and negotiates HTTP/2 by ALPN, as the API does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, cast

from . import tls, wire
from .cache import PromptCache, cache_problem, input_token_count
from .exchange import ClientGone as _ClientGone
from .exchange import ServerClosed as _ServerClosed
from .exchange import resolve as _resolve
from .http2 import H2Connection
from .latency import LatencyProfile, resolve_profile
from .predictors import DEFAULT_ACCURACY, describe_predictor, make_predictor
from .replies import reply_for
from .request_rules import rule_problem, rules_for, signature, thinking_tokens
from .text import (
    Reply,
    is_review_request,
    request_context,
    shaped_for,
    warm_vocabulary,
)

log = logging.getLogger(__name__)

FAULT_KINDS = frozenset(
    {
        "rate_limit",
        "overloaded",
        "server_error",
        "auth",
        "error_mid_stream",
        "hang",
        "disconnect",
        "slow",
    }
)
_STATUS_FAULTS = {
    "rate_limit": (
        429,
        "rate_limit_error",
        "Number of request tokens has exceeded your rate limit.",
    ),
    "overloaded": (529, "overloaded_error", "Overloaded"),
    "server_error": (500, "api_error", "Internal server error"),
    "auth": (401, "authentication_error", "invalid x-api-key"),
}
_PING_INTERVAL_S = 1.0
_MAX_BURST_S = 0.05  # a ping while the first token is slow in coming, as the API does


@dataclass(frozen=True)
class Fault:
    """One injected failure. ``after_tokens`` applies to error_mid_stream, hang and disconnect;
    ``delay_ms`` to slow; ``status`` overrides the HTTP status of the status-code faults."""

    kind: str
    retry_after: float | None = None
    after_tokens: int = 0
    delay_ms: float | None = None
    status: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {sorted(FAULT_KINDS)}")
        if self.after_tokens < 0:
            raise ValueError("after_tokens must be >= 0")


@dataclass
class EmulatorConfig:
    profile: str | LatencyProfile = "instant"
    seed: int = 0
    api_key: str | None = None
    canned_text: str | None = None
    oracle_texts: Sequence[str] = ()
    predictor: Any = "oracle"  # who writes suggestions: "oracle" | "noisy" | "local" | a Predictor
    accuracy: float = DEFAULT_ACCURACY  # noisy: chance the first word is right
    review_labels: Sequence[dict] = ()  # planted review issues (emulator/reviewing.py)
    time_scale: float = 1.0
    # A new connection's setup, modelled: the first response on each connection waits this
    # long (TCP + TLS 1.3 to the API is two round trips; loopback has neither). 0: off.
    connect_ms: float = 0.0
    # TLS with the test CA (tls.py); HTTP/2 when the client offers it by ALPN, as the API does.
    # http2=False offers HTTP/1.1 only (a server or proxy without HTTP/2).
    tls: bool = False
    http2: bool = True
    host: str = "127.0.0.1"
    port: int = 0
    clock: Callable[[], float] = time.monotonic  # prompt-cache TTL clock (inject to test expiry)

    def describe(self) -> str:
        """The predictor as figures name it: "oracle", "noisy (P = 0.3)", "local"."""
        if not isinstance(self.predictor, str):
            return self.predictor.describe()
        return describe_predictor(self.predictor, self.accuracy)


@dataclass
class RequestRecord:
    """What happened to one API request. Times are ``time.monotonic()`` seconds."""

    id: int
    path: str
    model: str | None = None
    max_tokens: int | None = None
    stream: bool = False
    status: int = 0  # HTTP status sent; 0 while nothing has been sent (or never was)
    fault: str | None = None
    connection_id: int = 0
    tokens_sent: int = 0
    text_sent: str = ""
    client_disconnected: bool = False
    completed: bool = False
    started: float | None = None
    first_token_at: float | None = None
    ended: float | None = None
    usage: dict = field(default_factory=dict)
    body: Any = field(default=None, repr=False)
    headers: dict = field(default_factory=dict, repr=False)
    request_id: str = ""
    stop_reason: str | None = None
    thinking_sent: int = 0  # thinking tokens streamed before the text (never in text_sent)
    http_version: str = ""  # "HTTP/1.1" or "HTTP/2"
    new_connection: bool = False  # it waited for its connection's setup (the first on it)

    def to_dict(self) -> dict:
        """The record without the request body and headers (safe to print or send)."""
        d = asdict(self)
        d.pop("body")
        d.pop("headers")
        return d


class _Connection(asyncio.Protocol):
    """One TCP connection: parses requests and serves them one at a time (keep-alive)."""

    def __init__(self, emulator: Emulator, conn_id: int) -> None:
        self.emulator = emulator
        self.id = conn_id
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.gone = False
        self.busy = False
        self.served = 0  # requests answered on this connection
        self.task: asyncio.Task | None = None
        self._waiters: set[asyncio.Future] = set()
        self._paused = False
        self._drain: asyncio.Future | None = None
        self._loop = asyncio.get_running_loop()

    @property
    def tasks(self) -> list[asyncio.Task]:
        return [self.task] if self.task is not None else []

    # --- asyncio.Protocol ---
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Duck-typed: uvloop's TCP transport has the asyncio.Transport methods but is not a
        # subclass, and `serve --emulator` runs the emulator on the server's (uvloop) loop.
        self.transport = cast(asyncio.Transport, transport)
        self.emulator._connections.add(self)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if len(self.buf) > wire.MAX_HEADER_BYTES + wire.MAX_BODY_BYTES:
            self.abort()  # a client flooding us; nothing sane to answer
            return
        if not self.busy:
            self._next_request()

    def eof_received(self) -> bool:
        self._mark_gone()
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._mark_gone()
        self.emulator._connections.discard(self)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._wake_drain()

    # --- plumbing ---
    def _mark_gone(self) -> None:
        if self.gone:
            return
        self.gone = True
        for fut in list(self._waiters):
            if not fut.done():
                fut.set_result(None)
        self._wake_drain()

    def _wake_drain(self) -> None:
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def _next_request(self) -> None:
        try:
            parsed = wire.parse_request(self.buf)
        except wire.BadRequest as exc:
            self.busy = True
            payload = wire.error_payload(exc.status, str(exc), "req_emu_bad")
            with contextlib.suppress(_ClientGone):
                self.write(wire.full_response(exc.status, payload, [], keep_alive=False))
            self.close()
            return
        if parsed is None:
            return
        request, used = parsed
        del self.buf[:used]
        self.busy = True
        self.task = self._loop.create_task(self._serve(request))

    async def _serve(self, request: wire.HttpRequest) -> None:
        keep_alive = False
        try:
            self.served += 1
            setup_s = self.emulator.config.connect_ms * self.emulator.config.time_scale / 1000
            if self.served == 1 and setup_s > 0:
                await self.sleep(setup_s)  # the handshake a real client would have waited for
            if request.headers.get("expect", "").lower() == "100-continue":
                self.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            keep_alive = await self.emulator._handle(self, request) and request.keep_alive
        except (_ClientGone, _ServerClosed):
            keep_alive = False
        except asyncio.CancelledError:
            self.abort()
            raise
        except Exception:
            log.exception("emulator: request handler failed")
            keep_alive = False
            self.abort()
        finally:
            self.busy = False
            self.task = None
        if keep_alive and not self.gone:
            if self.buf:
                self._next_request()
        else:
            self.close()

    def write(self, data: bytes) -> None:
        if self.gone or self.transport is None or self.transport.is_closing():
            raise _ClientGone
        self.transport.write(data)

    # --- one exchange (HTTP/1.1 serves one request at a time: the connection is the exchange)
    @property
    def new_connection(self) -> bool:
        """This request is the first on its connection (it paid the connection's setup)."""
        return self.served == 1

    def respond(
        self, status: int, payload: object, headers: Sequence[tuple[str, str]], keep_alive: bool
    ) -> None:
        self.write(wire.full_response(status, payload, list(headers), keep_alive))

    def start(self, status: int, headers: Sequence[tuple[str, str]]) -> None:
        """The head of a streamed (chunked) response."""
        framing = [("transfer-encoding", "chunked"), ("connection", "keep-alive")]
        self.write(wire.response_head(status, [*headers, *framing]))

    def send(self, data: bytes) -> None:
        if data:
            self.write(wire.chunk(data))

    def finish(self, data: bytes = b"") -> None:
        self.write((wire.chunk(data) if data else b"") + wire.LAST_CHUNK)

    async def drain(self) -> None:
        if self._paused and not self.gone:
            self._drain = self._loop.create_future()
            await self._drain
        if self.gone:
            raise _ClientGone

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` unless the client leaves first (then raise :class:`_ClientGone`)."""
        if self.gone:
            raise _ClientGone
        if seconds <= 0:
            return
        fut = self._loop.create_future()
        handle = self._loop.call_later(seconds, _resolve, fut)
        self._waiters.add(fut)
        try:
            await fut
        finally:
            handle.cancel()
            self._waiters.discard(fut)
        if self.gone:
            raise _ClientGone

    async def wait_gone(self) -> None:
        """Hang until the client (or the emulator's shutdown) closes the connection."""
        while True:
            await self.sleep(3600.0)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def hang_up(self) -> None:
        """Drop the connection without a terminal chunk, after what was written reaches it."""
        if self.transport is not None and self.transport.get_write_buffer_size() > 0:
            self.transport.close()  # flushes, then FIN
        else:
            self.abort()
        self._mark_gone()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
        self._mark_gone()


class _Negotiate(asyncio.Protocol):
    """A TLS connection's first protocol: hands it to HTTP/2 or HTTP/1.1 as ALPN chose."""

    def __init__(self, emulator: Emulator, conn_id: int) -> None:
        self.emulator = emulator
        self.id = conn_id

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        ssl_object = transport.get_extra_info("ssl_object")
        chosen = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
        protocol: asyncio.Protocol
        if chosen == "h2":
            protocol = H2Connection(self.emulator, self.id)
        else:
            protocol = _Connection(self.emulator, self.id)
        transport.set_protocol(protocol)
        protocol.connection_made(transport)


class Emulator:
    """The Anthropic Messages API on loopback, with latency profiles and injected faults."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.profile = resolve_profile(self.config.profile)
        self._passages = tuple(str(t) for t in self.config.oracle_texts)
        self.predictor = make_predictor(
            self.config.predictor,
            self._passages,
            seed=self.config.seed,
            accuracy=self.config.accuracy,
        )
        self.predictor_overruns = 0  # replies the predictor wrote slower than the profile's TTFT
        self._records: list[RequestRecord] = []
        self._faults: list[list[Any]] = []  # [Fault, remaining count, match_model]
        self._lock = threading.Lock()
        self._cache = PromptCache(self.config.clock)
        self._connections: set[_Connection | H2Connection] = set()
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed: asyncio.Event | None = None
        self._stopping = False
        self._next_request_id = 0
        self.connections_opened = 0
        self.host = self.config.host
        self.port = self.config.port

    # --- lifecycle ---
    async def start(self) -> Emulator:
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        self._stopping = False

        def factory() -> asyncio.Protocol:
            self.connections_opened += 1
            if self.config.tls:
                return _Negotiate(self, self.connections_opened)
            return _Connection(self, self.connections_opened)

        context = None
        if self.config.tls:
            alpn = ("h2", "http/1.1") if self.config.http2 else ("http/1.1",)
            context = await self._loop.run_in_executor(None, tls.server_context, alpn)
        self._server = await self._loop.create_server(
            factory,
            self.config.host,
            self.config.port,
            backlog=4096,
            reuse_address=True,
            ssl=context,
        )
        # Load the word list for mid-word completions off the event loop, once per process.
        await self._loop.run_in_executor(None, warm_vocabulary)
        sock = self._server.sockets[0]
        self.host, self.port = sock.getsockname()[:2]
        return self

    async def stop(self) -> None:
        if self._server is None:
            return
        self._stopping = True
        self._server.close()
        tasks = []
        for conn in list(self._connections):
            tasks.extend(conn.tasks)
            conn.abort()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), 2.0)
        self._server = None
        now = time.monotonic()
        for rec in self._records:
            if rec.ended is None:
                rec.ended = now
        self._notify()

    async def __aenter__(self) -> Emulator:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        scheme = "https" if self.config.tls else "http"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def ca_file(self) -> str | None:
        """The PEM file of the CA a client must trust (``Settings.ca_file``); None without TLS."""
        return tls.ca_file() if self.config.tls else None

    # --- the test-facing API ---
    @property
    def requests(self) -> list[RequestRecord]:
        return list(self._records)

    def inject(self, fault: Fault, count: int = 1, match_model: str | None = None) -> None:
        """Queue ``fault`` for the next ``count`` /v1/messages requests (of ``match_model``)."""
        if count < 1:
            return
        with self._lock:
            self._faults.append([fault, count, match_model])

    def reset(self) -> None:
        """Forget records, queued faults and the prompt cache."""
        with self._lock:
            self._faults.clear()
            self._records = []
            self._cache.clear()

    async def wait_for_request(self, n: int = 1, timeout: float = 5.0) -> RequestRecord:  # noqa: ASYNC109
        """The ``n``-th request (1-based) once it has arrived."""
        await self._wait_until(lambda: len(self._records) >= n, timeout)
        return self._records[n - 1]

    async def wait_for_request_end(self, rec: RequestRecord, timeout: float = 5.0) -> RequestRecord:  # noqa: ASYNC109
        await self._wait_until(lambda: rec.ended is not None, timeout)
        return rec

    async def _wait_until(self, predicate: Callable[[], bool], timeout: float) -> None:  # noqa: ASYNC109
        async def loop() -> None:
            while not predicate():
                assert self._changed is not None
                await self._changed.wait()

        await asyncio.wait_for(loop(), timeout)

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = asyncio.Event()

    def _take_fault(self, model: str | None) -> Fault | None:
        with self._lock:
            for entry in self._faults:
                fault, remaining, match_model = entry
                if match_model is not None and match_model != model:
                    continue
                if remaining <= 1:
                    self._faults.remove(entry)
                else:
                    entry[1] = remaining - 1
                return fault
        return None

    # --- request handling ---
    async def _handle(self, conn: _Connection, req: wire.HttpRequest) -> bool:
        """Serve one request; return whether the connection may be reused."""
        if req.path.startswith("/_emulator/"):
            return self._admin(conn, req)
        self._next_request_id += 1
        request_id = f"req_emu_{self._next_request_id:08d}"
        ids = [("request-id", request_id)]
        if req.path not in ("/v1/messages", "/v1/messages/count_tokens"):
            payload = wire.error_payload(404, f"Not found: {req.path}", request_id)
            conn.respond(404, payload, ids, req.keep_alive)
            return True
        rec = RequestRecord(
            id=len(self._records) + 1,
            path=req.path,
            connection_id=conn.id,
            http_version=req.version,
            new_connection=conn.new_connection,
            started=time.monotonic(),
            headers=dict(req.headers),
            request_id=request_id,
        )
        self._records.append(rec)
        self._notify()
        try:
            return await self._handle_api(conn, req, rec)
        except _ClientGone:
            rec.client_disconnected = not self._stopping
            raise
        finally:
            rec.ended = time.monotonic()
            if "output_tokens" in rec.usage:
                rec.usage["output_tokens"] = _billed_output(rec)
            self._notify()

    def _send_error(
        self,
        conn: _Connection,
        rec: RequestRecord,
        status: int,
        message: str,
        error_type: str | None = None,
        extra: Sequence[tuple[str, str]] = (),
    ) -> bool:
        payload = wire.error_payload(status, message, rec.request_id, error_type)
        headers = [("request-id", rec.request_id), *extra]
        rec.status = status
        conn.respond(status, payload, headers, keep_alive=True)
        return True

    def _authorised(self, req: wire.HttpRequest) -> bool:
        expected = self.config.api_key
        if expected is None:
            return True
        key = req.headers.get("x-api-key")
        auth = req.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            key = key or auth[7:].strip()
        return key == expected

    async def _handle_api(
        self, conn: _Connection, req: wire.HttpRequest, rec: RequestRecord
    ) -> bool:
        if req.method != "POST":
            return self._send_error(conn, rec, 405, f"Method {req.method} not allowed")
        try:
            body = json.loads(req.body or b"null")
        except ValueError:
            return self._send_error(conn, rec, 400, "Request body is not valid JSON")
        rec.body = body
        if not isinstance(body, dict):
            return self._send_error(conn, rec, 400, "Request body must be a JSON object")
        rec.model = body.get("model") if isinstance(body.get("model"), str) else None
        rec.max_tokens = body.get("max_tokens") if isinstance(body.get("max_tokens"), int) else None
        rec.stream = body.get("stream") is True
        if not self._authorised(req):
            return self._send_error(conn, rec, 401, "invalid x-api-key")
        problem = _validate(body, count_only=req.path.endswith("count_tokens"))
        if problem:
            return self._send_error(conn, rec, 400, problem)
        if req.path.endswith("count_tokens"):
            rec.status = 200
            payload = {"input_tokens": input_token_count(body)}
            rec.usage = dict(payload)
            conn.respond(200, payload, [("request-id", rec.request_id)], req.keep_alive)
            rec.completed = True
            return True
        fault = self._take_fault(rec.model)
        rec.fault = fault.kind if fault else None
        if fault is not None and fault.kind in _STATUS_FAULTS:
            status, error_type, message = _STATUS_FAULTS[fault.kind]
            extra = []
            if fault.kind == "rate_limit" and fault.retry_after is not None:
                extra.append(("retry-after", _seconds_header(fault.retry_after)))
            return self._send_error(conn, rec, fault.status or status, message, error_type, extra)
        arrived = asyncio.get_running_loop().time()
        # Thinking comes first and counts against max_tokens (counted in the model's tokens, the
        # emulator's pieces times its tokenizer factor); the text gets what is left.
        rules = rules_for(rec.model)
        factor = rules.tokenizer_factor if rules is not None else 1.0
        budget = int(rec.max_tokens / factor) if rec.max_tokens else 0
        thought = thinking_tokens(body, rules)[:budget]
        shaped_body = dict(body, max_tokens=budget - len(thought)) if rules is not None else body
        if self.config.canned_text is None and not is_review_request(body):
            reply = shaped_for(shaped_body, await self._suggestion(conn, body))
        else:
            reply = reply_for(
                shaped_body,
                canned_text=self.config.canned_text,
                passages=self._passages,
                seed=self.config.seed,
                review_labels=self.config.review_labels,
            )
        rec.usage = {**self._cache.usage(body).usage_fields(), "output_tokens": 0}
        rng = random.Random(self.config.seed * 1_000_003 + rec.id)
        if rec.stream:
            return await self._stream(conn, rec, reply, fault, rng, thought, arrived)
        return await self._respond_whole(conn, rec, reply, fault, rng, thought, arrived)

    async def _suggestion(self, conn: _Connection, body: dict) -> str:
        """The predictor's text for a suggestion request. A slow predictor (the local model) is
        abandoned when the client leaves, so it never works for a request nobody waits for."""
        before, after = request_context(body)
        immediate = getattr(self.predictor, "text", None)  # oracle and noisy: pure functions
        if immediate is not None:
            return immediate(before, after)
        max_tokens = body.get("max_tokens") if isinstance(body.get("max_tokens"), int) else 1024
        work = asyncio.ensure_future(self.predictor.continuation(before, after, max_tokens))
        gone = asyncio.ensure_future(conn.wait_gone())
        try:
            await asyncio.wait((work, gone), return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if gone.done() and not gone.cancelled():
                gone.exception()  # retrieved: the client left, handled below
        if not work.done():
            work.cancel()
            raise _ClientGone
        return work.result()

    def _inter_token_s(self, fault: Fault | None, rng: random.Random) -> float:
        if fault is not None and fault.kind == "slow" and fault.delay_ms is not None:
            ms = fault.delay_ms
        else:
            ms = self.profile.sample_inter_token_ms(rng)
        return ms * self.config.time_scale / 1000.0

    def _ttft_s(self, rng: random.Random) -> float:
        return self.profile.sample_ttft_ms(rng) * self.config.time_scale / 1000.0

    def _first_token_due(self, arrived: float, rng: random.Random) -> float:
        """A TTFT after the request arrived, whatever the predictor took to write the text (a
        predictor slower than that is counted: its replies are late)."""
        due = arrived + self._ttft_s(rng)
        if due < asyncio.get_running_loop().time():
            self.predictor_overruns += 1
        return due

    async def _respond_whole(
        self,
        conn: _Connection,
        rec: RequestRecord,
        reply: Reply,
        fault: Fault | None,
        rng: random.Random,
        thought: list[str],
        arrived: float,
    ) -> bool:
        kind = fault.kind if fault else None
        if kind == "hang":
            await conn.wait_gone()
        if kind == "disconnect":
            conn.abort()
            raise _ServerClosed
        if kind == "error_mid_stream":
            return self._send_error(conn, rec, 529, "Overloaded", "overloaded_error")
        pieces = len(thought) + len(reply.tokens)
        first = self._first_token_due(arrived, rng)
        delay = first + sum(self._inter_token_s(fault, rng) for _ in range(pieces))
        await conn.sleep(delay - asyncio.get_running_loop().time())
        rec.status = 200
        rec.tokens_sent = len(reply.tokens)
        rec.thinking_sent = len(thought)
        rec.text_sent = reply.text
        rec.first_token_at = time.monotonic()
        rec.stop_reason = reply.stop_reason
        rec.usage["output_tokens"] = _billed_output(rec)
        message = _message_object(
            rec, reply.text, reply.stop_reason, reply.stop_sequence, "".join(thought)
        )
        conn.respond(200, message, [("request-id", rec.request_id)], keep_alive=True)
        rec.completed = True
        return True

    async def _stream(
        self,
        conn: _Connection,
        rec: RequestRecord,
        reply: Reply,
        fault: Fault | None,
        rng: random.Random,
        thought: list[str],
        arrived: float,
    ) -> bool:
        kind = fault.kind if fault else None
        stop_at = fault.after_tokens if kind in ("error_mid_stream", "hang", "disconnect") else None
        if stop_at == 0 and kind == "hang":
            await conn.wait_gone()
        if stop_at == 0 and kind == "disconnect":
            conn.abort()
            raise _ServerClosed
        loop = asyncio.get_running_loop()
        start = _message_object(rec, None, None, None)
        # A model that thinks opens with a thinking block (index 0); the text block follows it.
        text_index = 1 if thought else 0
        first_block = (
            {"type": "thinking", "thinking": "", "signature": ""}
            if thought
            else {"type": "text", "text": ""}
        )
        opening = (
            wire.sse("message_start", {"type": "message_start", "message": start})
            + wire.block_start(0, first_block)
            + wire.sse("ping", {"type": "ping"})
        )
        rec.status = 200
        conn.start(
            200,
            [
                ("content-type", "text/event-stream; charset=utf-8"),
                ("cache-control", "no-cache"),
                ("request-id", rec.request_id),
            ],
        )
        conn.send(opening)
        await conn.drain()

        # The first token is due a TTFT after the request arrived, whatever the predictor took.
        deadline = [self._first_token_due(arrived, rng)]

        async def pace(tokens: list[str], limit: int, visible: bool) -> None:
            """Write ``tokens[:limit]`` at the profile's pace, as text (``visible``) or thinking."""
            i = 0
            while i < limit:
                wait = deadline[0] - loop.time()
                while wait > _PING_INTERVAL_S:
                    await conn.sleep(_PING_INTERVAL_S)
                    conn.send(wire.sse("ping", {"type": "ping"}))
                    wait = deadline[0] - loop.time()
                if wait > 0.001:
                    await conn.sleep(wait)
                now = loop.time()
                # Late (a busy loop): catch up at most _MAX_BURST_S of tokens at once rather than
                # dumping the whole backlog, so a stall does not make the model look faster.
                deadline[0] = max(deadline[0], now - _MAX_BURST_S)
                batch = bytearray()
                sent: list[str] = []
                while i < limit and deadline[0] <= now + 0.001:
                    token = tokens[i]
                    sent.append(token)
                    batch += (
                        wire.text_delta(token, text_index)
                        if visible
                        else wire.thinking_delta(token)
                    )
                    i += 1
                    deadline[0] += self._inter_token_s(fault, rng)
                conn.send(bytes(batch))
                if visible:
                    if rec.first_token_at is None:
                        rec.first_token_at = time.monotonic()
                    rec.tokens_sent += len(sent)
                    rec.text_sent += "".join(sent)
                else:
                    rec.thinking_sent += len(sent)
                await conn.drain()

        if thought:
            await pace(thought, len(thought), visible=False)
            conn.send(
                wire.thinking_block_end(0, signature("".join(thought)))
                + wire.block_start(1, {"type": "text", "text": ""})
            )
        tokens = reply.tokens
        limit = len(tokens) if stop_at is None else min(stop_at, len(tokens))
        await pace(tokens, limit, visible=True)

        if kind == "error_mid_stream":
            error = {
                "type": "error",
                "error": {"type": "overloaded_error", "message": "Overloaded"},
            }
            conn.finish(wire.sse("error", error))
            return True
        if kind == "hang":
            await conn.wait_gone()
        if kind == "disconnect":
            await conn.drain()
            conn.hang_up()
            raise _ServerClosed
        rec.stop_reason = reply.stop_reason
        usage = dict(rec.usage, output_tokens=_billed_output(rec))
        closing = (
            wire.block_stop(text_index)
            + wire.sse(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {
                        "stop_reason": reply.stop_reason,
                        "stop_sequence": reply.stop_sequence,
                    },
                    "usage": usage,
                },
            )
            + wire.sse("message_stop", {"type": "message_stop"})
        )
        conn.finish(closing)
        rec.completed = True
        await conn.drain()
        return True

    # --- admin endpoints (for other processes: benchmark, fault tests) ---
    def _admin(self, conn: _Connection, req: wire.HttpRequest) -> bool:
        def reply(status: int, payload: object) -> bool:
            conn.respond(status, payload, [], req.keep_alive)
            return True

        path = req.path
        if path == "/_emulator/requests" and req.method == "GET":
            return reply(200, [r.to_dict() for r in self._records])
        if path == "/_emulator/reset" and req.method == "POST":
            self.reset()
            return reply(200, {"ok": True})
        if path == "/_emulator/faults" and req.method == "POST":
            try:
                spec = json.loads(req.body or b"{}")
                if not isinstance(spec, dict):
                    raise ValueError("body must be a JSON object")
                count = int(spec.pop("count", 1))
                match_model = spec.pop("match_model", None)
                fault = Fault(**spec)
            except (ValueError, TypeError) as exc:
                return reply(400, wire.error_payload(400, f"bad fault: {exc}", "req_emu_admin"))
            self.inject(fault, count=count, match_model=match_model)
            return reply(200, {"ok": True, "queued": count})
        if path == "/_emulator/health":
            return reply(200, {"ok": True, "requests": len(self._records)})
        return reply(404, wire.error_payload(404, f"Not found: {path}", "req_emu_admin"))


def _validate(body: dict, count_only: bool) -> str | None:
    """The API's 400 message for a malformed request or one the model's rules refuse."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model: Field required"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: Field required"
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
            return "messages: each message needs a role of user or assistant"
    if count_only:
        return None
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        return "max_tokens: Field required (a positive integer)"
    temperature = body.get("temperature")
    if temperature is not None and (
        not isinstance(temperature, int | float) or not 0.0 <= temperature <= 1.0
    ):
        return "temperature: must be between 0 and 1"
    rules = rules_for(body["model"])
    return (rule_problem(body, rules) if rules is not None else None) or cache_problem(body)


def _billed_output(rec: RequestRecord) -> int:
    """Output tokens as the API bills them: thinking and text, in the model's own tokens."""
    rules = rules_for(rec.model)
    pieces = rec.tokens_sent + rec.thinking_sent
    return rules.tokens(pieces) if rules is not None else pieces


def _seconds_header(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


def _message_object(
    rec: RequestRecord,
    text: str | None,
    stop_reason: str | None,
    stop_sequence: str | None,
    thought: str = "",
) -> dict:
    content: list[dict] = []
    if thought:
        content.append({"type": "thinking", "thinking": thought, "signature": signature(thought)})
    if text is not None:
        content.append({"type": "text", "text": text})
    return {
        "id": f"msg_emu_{rec.id:08d}",
        "type": "message",
        "role": "assistant",
        "model": rec.model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": dict(rec.usage),
    }
