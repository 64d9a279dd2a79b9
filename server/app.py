"""The Starlette app: the WebSocket endpoint, health, metrics and the web editor's files.

Built by :func:`build_app` from its settings, with no globals, so tests build as many as they like.
The provider (and the emulator, when asked for) is created in the lifespan so it lives on the
server's event loop.
"""

from __future__ import annotations

import contextlib
import gc
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from assistant.budget import usage_since
from assistant.config import Settings
from assistant.providers.base import Provider
from assistant.providers.tiered import TieredProvider

from . import auth, pages
from .connection import Connection
from .hub import Hub
from .ledger import Ledger
from .logs import log_event
from .metrics import ServerMetrics
from .park import SharedPark
from .wiring import start_providers

STATIC_DIR = Path(__file__).parent / "static"
DEMO_EDITORS = {"codemirror": "CodeMirror", "prosemirror": "ProseMirror"}
from assistant.endpoint import WS_PATH  # noqa: E402  (one definition, shared with the clients)

_PLACEHOLDER = """<!doctype html><meta charset="utf-8"><title>assistant</title>
<p>The assistant server is running. The web editor is not installed (server/static/index.html).
WebSocket endpoint: <code>/v1/ws</code>."""


# Container allocations between two young collections (CPython's default is 700). A keystroke
# allocates a few hundred (frames, coroutines, the request's dicts), so at 700 a busy worker ran
# ~50 young collections a second, every tenth a middle one (8-20 ms) and every few seconds a
# full one (80-190 ms, the live connections' state): ~20 % of its CPU and the tail of every
# frame. At 5,000: ping p99 78-102 ms against 155-196 ms, 1,000 noisy typists on
# `--workers 2` (docs/reliability.md). Young collections then take 8-25 ms each, still well
# inside the tail, and garbage cycles wait at most 5,000 allocations longer.
GC_YOUNG_THRESHOLD = 5000


async def _before_serving(offline) -> None:
    """Load what the offline tier loads once, then move everything alive so far (modules, the
    lexicon, the app) out of the garbage collector's generations: a full collection scans every
    tracked object, and with the lexicon's 180,000 among them each took 110-145 ms of the event
    loop while writers connected (ping p99 323 -> 234 ms at 500 typists, docs/reliability.md).
    Then collect the young generation less often (``GC_YOUNG_THRESHOLD``)."""
    prepare = getattr(offline, "prepare", None)
    if prepare is not None:
        with contextlib.suppress(Exception):
            await prepare()
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def build_app(
    settings: Settings,
    *,
    provider: Provider | None = None,
    reviewer: Any | None = None,
    provider_label: str | None = None,
    emulator: Any = False,  # True, or an EmulatorConfig (assistant serve --emulator-predictor)
    engine_factory: Callable[[Callable[[], float]], Any] | None = None,
) -> Starlette:
    """The server app. ``provider``/``reviewer`` given here are used as they are (and not closed);
    otherwise they are built from ``settings`` (see :mod:`server.wiring`). ``emulator`` starts the
    built-in Anthropic emulator and points the provider at it. ``engine_factory(clock)`` replaces
    the suggestion engine of every connection (the benchmark compares strategies with it)."""
    token = settings.token or secrets.token_urlsafe(24)
    # ValueError for a short secret or an unusable key: the server must not start on it.
    writers = auth.WriterTokens.from_settings(settings.jwt_secret, settings.jwt_public_key)
    metrics = ServerMetrics()
    hub = Hub(settings, token, metrics)
    hub.engine_factory = engine_factory
    extra_origins = {auth.normalise_origin(o) for o in settings.allowed_origins}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        hub.usage_ledger = await Ledger(settings.database_url).start()
        hub.setup = await start_providers(
            settings,
            provider=provider,
            reviewer=reviewer,
            label=provider_label,
            emulator=emulator,
            on_status=hub.broadcast_status,
        )
        if settings.database_url and isinstance(hub.setup.provider, TieredProvider):
            if hub.setup.provider.primary is not None:
                hub.shared_park = SharedPark(hub.usage_ledger, hub.setup.provider, hub.spawn)
                hub.shared_park.start()
        log_event(
            "server_start",
            provider=hub.setup.label,
            model=hub.setup.model,
            review=hub.setup.reviewer is not None,
        )
        await _before_serving(hub.setup.offline)
        hub.start_keep_warm()
        try:
            yield
        finally:
            await hub.shutdown()
            if hub.shared_park is not None:
                await hub.shared_park.aclose()
            await hub.setup.aclose()
            await hub.usage_ledger.aclose()
            log_event(
                "server_stop",
                requests=hub.ledger.requests,
                cost_usd=round(hub.ledger.total_cost, 6),
            )

    async def websocket_endpoint(websocket: WebSocket) -> None:
        scope = websocket.scope
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        server_addr = scope.get("server") or ("127.0.0.1", settings.port)
        allowed = auth.own_origins(int(server_addr[1] or 0), settings.host) | extra_origins
        verdict = auth.admit(
            headers,
            scope.get("query_string", b""),
            list(scope.get("subprotocols") or []),
            token=token,
            allowed_origins=allowed,
            writers=writers,
        )
        client = scope.get("client") or ("?", 0)
        if not verdict.ok:
            metrics.connections_refused.labels(verdict.reason.replace(" ", "_")).inc()
            log_event(
                "connection_refused",
                reason=verdict.reason,
                client=f"{client[0]}:{client[1]}",
                origin=headers.get("origin"),
            )
            await websocket.close(code=1008)
            return
        if hub.shutting_down or hub.setup is None:
            await websocket.accept(subprotocol=verdict.subprotocol)
            await websocket.close(code=1001)
            return
        writer = verdict.writer or auth.Writer(auth.OWNER)
        if not hub.reserve():
            refusal = "connection cap"
        else:
            conn_id = hub.next_id()
            refusal = "" if await hub.admit_writer(writer, conn_id) else "writer connection limit"
            if refusal:
                hub.release()
        if refusal:
            metrics.connections_refused.labels(refusal.replace(" ", "_")).inc()
            log_event("connection_refused", reason=refusal, client=f"{client[0]}")
            await websocket.accept(subprotocol=verdict.subprotocol)
            await websocket.close(code=1013, reason=refusal)
            return
        opened = time.monotonic()
        conn: Connection | None = None
        try:
            conn = Connection(websocket, hub, conn_id, writer)
            await websocket.accept(subprotocol=verdict.subprotocol)
            hub.add(conn)
            log_event(
                "connection_open",
                conn=conn.id,
                writer=writer.id,
                client=f"{client[0]}:{client[1]}",
                origin=headers.get("origin"),
            )
            hub.warm_provider()
            await conn.run()
        finally:
            await hub.writer_gone(writer, conn_id)
            hub.release()
            if conn is not None:
                hub.remove(conn)
                hub.forget_offline(conn.offline_documents)
                hub.forget_review(conn.id)
                s = conn.stats
                log_event(
                    "connection_close",
                    conn=conn.id,
                    seconds=round(time.monotonic() - opened, 3),
                    frames_in=s.frames_in,
                    frames_out=s.frames_out,
                    suggests=s.suggests,
                    done=s.done,
                    cancelled=s.cancelled,
                    errors=s.errors,
                    requests=s.requests,
                    reviews=s.reviews,
                    cost_usd=round(s.cost_usd, 8),
                )

    async def healthz(request: Request) -> Response:
        setup = hub.setup
        status = setup.status if setup else None
        body = {
            "ok": setup is not None and not hub.shutting_down,
            "provider": setup.label if setup else None,
            "model": setup.model if setup else None,
            "state": status.state if status else "ok",
            "active": status.active if status else (setup.label if setup else None),
            "review": bool(setup and setup.reviewer is not None),
        }
        if pages.metrics_allowed(settings.metrics_token, request.headers.get("authorization", "")):
            body["connections"] = len(hub.connections)  # what /metrics would show this caller
        return JSONResponse(body, status_code=200 if body["ok"] else 503)

    async def usage_endpoint(request: Request) -> Response:
        """Spend and accepted characters per writer (the admin token's; off without one)."""
        admin = settings.admin_token
        given = request.headers.get("authorization", "")
        if not admin or not auth.bearer_matches(given, admin):
            return JSONResponse({"error": "admin token required"}, status_code=401)
        writer = request.query_params.get("writer") or None
        try:
            since = usage_since(request.query_params.get("since"))
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        writers = await hub.usage_ledger.call("usage", writer, since)
        return JSONResponse({"writers": writers})

    async def metrics_endpoint(request: Request) -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    async def index(request: Request) -> Response:
        page = STATIC_DIR / "index.html"
        if page.is_file():
            return FileResponse(page, headers={"cache-control": "no-cache"})
        return HTMLResponse(_PLACEHOLDER)

    async def demo(request: Request) -> Response:
        # The package's editors (web/, built into static/bundles/): a fixed set of pages.
        name = request.path_params["editor"]
        if name not in DEMO_EDITORS:
            return Response("no such demo", status_code=404, media_type="text/plain")
        page = (STATIC_DIR / "demo" / "page.html").read_text(encoding="utf-8")
        page = page.replace("{{editor}}", name).replace("{{title}}", DEMO_EDITORS[name])
        page = page.replace("{{nonce}}", request.scope.get("state", {}).get(pages.CSP_NONCE, ""))
        return HTMLResponse(page, headers={"cache-control": "no-cache"})

    routes = [
        WebSocketRoute(WS_PATH, websocket_endpoint),
        Route("/healthz", healthz),
        Route("/metrics", metrics_endpoint),
        Route("/v1/usage", usage_endpoint),
        Route("/", index),
        Route("/demo/{editor}", demo),
        Mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static"),
    ]
    hosts = pages.allowed_hosts(settings.host, settings.allowed_origins)
    guarded = Middleware(pages.PageGuard, hosts=hosts, metrics_token=settings.metrics_token)
    app = Starlette(routes=routes, lifespan=lifespan, middleware=[guarded])
    app.state.hub = hub
    app.state.token = token
    app.state.metrics = metrics
    app.state.settings = settings
    return app
