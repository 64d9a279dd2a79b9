"""The WebSocket endpoint of a server, from the address a user typed: the one helper every client
(the terminal editor, ``assistant review --server``, the bench) uses, and the TLS context a
``wss://`` endpoint is verified with (``assistant bench --server`` against a deployment behind a
proxy with a private CA)."""

from __future__ import annotations

import ssl
from urllib.parse import urlsplit

WS_PATH = "/v1/ws"
SCHEMES = ("ws", "wss", "http", "https")


def ws_endpoint(url: str) -> str:
    """``ws://host:port`` (or ``http://…``/``https://…``, or with a path already, or a bare
    ``host:port``) -> the protocol endpoint: ``ws``/``wss`` scheme, and ``/v1/ws`` when no path
    was given."""
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = "ws://" + url
    for scheme, ws_scheme in (("http://", "ws://"), ("https://", "wss://")):
        if url.startswith(scheme):
            url = ws_scheme + url[len(scheme) :]
    address, query_mark, query = url.partition("?")
    scheme, _, rest = address.partition("://")
    host, _, path = rest.partition("/")
    if not path:
        address = f"{scheme}://{host}{WS_PATH}"
    return address + query_mark + query


def endpoint_problem(url: str) -> str:
    """Why ``url`` cannot name a server ("" when it can): a scheme other than ws, wss, http or
    https, or no host."""
    text = url.strip()
    if "://" in text:
        scheme = text.split("://", 1)[0].lower()
        if scheme not in SCHEMES:
            return (
                f"{url!r}: the scheme must be ws://, wss://, http:// or https://, not {scheme}://"
            )
    try:
        parts = urlsplit(ws_endpoint(text))
        parts.port  # noqa: B018  (raises ValueError for a port that is not a number)
    except ValueError as exc:
        return f"{url!r}: {exc}"
    if not parts.hostname:
        return f"{url!r} names no host"
    return ""


def client_ssl_context(url: str, cafile: str | None = None) -> ssl.SSLContext | None:
    """None for a ``ws://`` endpoint; for ``wss://`` a verifying context that trusts ``cafile``
    only when given (a private CA), else the system's CAs, which OpenSSL reads from
    ``SSL_CERT_FILE``/``SSL_CERT_DIR`` when those are set. Certificates and host names are always
    checked: there is no option to turn that off."""
    if not ws_endpoint(url).startswith("wss://"):
        return None
    return ssl.create_default_context(cafile=cafile)
