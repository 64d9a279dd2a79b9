"""What the HTTP side (the web editor, its files, /metrics) tells a browser, and to whom.

An ASGI middleware around the app, for HTTP only (a WebSocket has its token and Origin check):

- every response carries a Content-Security-Policy (scripts, styles and connections from this
  server only; ``frame-ancestors 'none'``), ``X-Content-Type-Options: nosniff`` and
  ``X-Frame-Options: DENY``: without them the editor could be framed by any page;
- the ``Host`` header must name this server: an IP literal, ``localhost``, the host it is bound
  to, or the host of an allowed origin. A DNS-rebinding page (evil.example resolving to
  127.0.0.1) sends its own name and gets 421, so it cannot read /metrics. ``/healthz`` stays
  open to any Host (load balancers probe it) and says nothing sensitive;
- ``/metrics`` needs ``Authorization: Bearer <metrics_token>`` when one is configured
  (``ASSISTANT_METRICS_TOKEN``): it shows spend, token counts and connection counts.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
import secrets
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

OPEN_PATHS = ("/healthz",)
_PLAIN_HOST = re.compile(r"[A-Za-z0-9.\-]+(:[0-9]+)?|\[[0-9A-Fa-f:.]+\](:[0-9]+)?")
METRICS_PATH = "/metrics"
CSP_NONCE = "csp_nonce"  # the key in a request's state of this response's style nonce

_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]


def content_security_policy(host: str, nonce: str = "") -> str:
    """The page's policy: everything from this server; the WebSocket to this host only. ``nonce``
    also admits the style elements a page's script writes with it (CodeMirror injects its styles:
    the demo hands it the nonce through ``EditorView.cspNonce``); never inline scripts."""
    styles = f"'self' 'nonce-{nonce}'" if nonce else "'self'"
    return (
        f"default-src 'none'; script-src 'self'; style-src {styles}; img-src 'self' data:; "
        f"connect-src 'self' ws://{host} wss://{host}; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )


def host_name(host_header: str) -> str:
    """The name in a Host header, without the port, lower-case (``[::1]:80`` -> ``::1``)."""
    value = host_header.strip().lower()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def allowed_hosts(bound_host: str, origins: Iterable[str]) -> set[str]:
    names = {"localhost", host_name(bound_host)}
    for origin in origins:
        name = urlsplit(origin.strip()).hostname
        if name:
            names.add(name.lower())
    return names


def host_ok(host_header: str, names: set[str]) -> bool:
    name = host_name(host_header)
    if not name:
        return False
    try:
        ipaddress.ip_address(name)
        return True  # an address typed by the user is no rebinding: that needs a DNS name
    except ValueError:
        return name in names


def metrics_allowed(metrics_token: str | None, authorization: str) -> bool:
    """Open without a metrics token; with one, for ``Authorization: Bearer <it>`` only."""
    if metrics_token is None:
        return True
    given = authorization.encode("utf-8", "replace")
    return hmac.compare_digest(given, f"Bearer {metrics_token}".encode())


class PageGuard:
    """The middleware; ``metrics_token`` None leaves /metrics open (to a right Host)."""

    def __init__(self, app: Any, *, hosts: set[str], metrics_token: str | None) -> None:
        self.app = app
        self.hosts = hosts
        self.metrics_token = metrics_token

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = headers.get(b"host", "")
        path = scope.get("path", "")
        if path not in OPEN_PATHS and not host_ok(host, self.hosts):
            await _plain(send, 421, "this server does not answer to that Host name\n")
            return
        authorization = headers.get(b"authorization", "")
        if path == METRICS_PATH and not metrics_allowed(self.metrics_token, authorization):
            await _plain(send, 401, "metrics need the metrics token\n")
            return
        shown = host if host_ok(host, self.hosts) and _PLAIN_HOST.fullmatch(host) else "127.0.0.1"
        nonce = secrets.token_urlsafe(16)  # a new one each response: for the page's own styles
        scope.setdefault("state", {})[CSP_NONCE] = nonce
        policy = content_security_policy(shown, nonce).encode()
        extra = [*_SECURITY_HEADERS, (b"content-security-policy", policy)]

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _plain(send: Any, status: int, text: str) -> None:
    body = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *_SECURITY_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
