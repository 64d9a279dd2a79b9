"""The WebSocket endpoint of a server, from the address a user typed: the one helper every client
(the terminal editor, ``assistant review --server``, the bench) uses, the TLS context a
``wss://`` endpoint is verified with (``assistant bench --server`` against a deployment behind a
proxy with a private CA), and what to tell the user when the connection fails."""

from __future__ import annotations

import ssl
from urllib.parse import urlsplit

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

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


def describe_connect_error(exc: BaseException, url: str) -> str:
    """A sentence an operator can act on, for a connection that failed before it was ready."""
    if isinstance(exc, InvalidStatus):
        code = exc.response.status_code
        if code in (401, 403):
            return (
                f"the server refused the connection (HTTP {code}): wrong token, or an Origin it "
                "does not allow"
            )
        if code == 404:
            return f"no WebSocket endpoint at {url} (HTTP 404)"
        return f"the server answered the WebSocket upgrade with HTTP {code}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"the TLS certificate of {url} is not trusted ({exc.verify_message}); give its CA "
            "with --cafile FILE or SSL_CERT_FILE"
        )
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake with {url} failed ({exc.reason or exc}); is it a wss:// endpoint?"
    if isinstance(exc, ConnectionClosed):
        rcvd = exc.rcvd
        how = f"code {rcvd.code} {rcvd.reason}".strip() if rcvd else "no close frame"
        return f"the server closed the connection before it was ready ({how})"
    if isinstance(exc, TimeoutError):
        return f"{url} did not answer within the connect timeout"
    if isinstance(exc, InvalidURI):
        return f"{url} is not a WebSocket address"
    if isinstance(exc, InvalidHandshake):
        return f"{url} did not complete a WebSocket handshake ({exc}); is it the right port?"
    if isinstance(exc, OSError):
        return f"cannot reach {url}: {exc.strerror or exc}"
    return f"{type(exc).__name__}: {exc}"
