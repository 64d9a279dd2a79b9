"""The WebSocket endpoint of a server, from the address a user typed: the one helper every client
(the terminal editor, ``assistant review --server``, the bench) uses."""

from __future__ import annotations

WS_PATH = "/v1/ws"


def ws_endpoint(url: str) -> str:
    """``ws://host:port`` (or ``http://…``/``https://…``, or with a path already) -> the protocol
    endpoint: ``ws``/``wss`` scheme, and ``/v1/ws`` when no path was given."""
    url = url.rstrip("/")
    for scheme, ws_scheme in (("http://", "ws://"), ("https://", "wss://")):
        if url.startswith(scheme):
            url = ws_scheme + url[len(scheme) :]
    _, _, rest = url.partition("://")
    if "/" not in rest:
        url += WS_PATH
    return url
