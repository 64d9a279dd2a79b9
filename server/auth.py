"""Who may open a WebSocket: the token check and the Origin allowlist, as pure functions.

The token is accepted from an ``Authorization: Bearer`` header, a ``?token=`` query parameter
or a ``assistant.v1.<token>`` subprotocol (browsers cannot set headers), and compared in
constant time. A browser always sends ``Origin``; it must be one of the server's own origins or
an explicitly allowed one, so a page on another site cannot drive the user's key even if it
learned the token. Clients that send no ``Origin`` (terminals, scripts) need only the token.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from urllib.parse import parse_qs

SUBPROTOCOL = "assistant.v1"
TOKEN_SUBPROTOCOL_PREFIX = SUBPROTOCOL + "."
_WILDCARD_HOSTS = {"", "0.0.0.0", "::", "[::]"}


@dataclass(frozen=True)
class Admission:
    ok: bool
    reason: str = ""  # why it was refused (never contains the token)
    subprotocol: str | None = None  # what to accept with


def own_origins(port: int, host: str = "127.0.0.1") -> set[str]:
    """The origins of the web editor this server serves at ``/``."""
    origins = {f"http://127.0.0.1:{port}", f"http://localhost:{port}", f"http://[::1]:{port}"}
    if host not in _WILDCARD_HOSTS:
        shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
        origins.add(f"http://{shown}:{port}".lower())
    return origins


def normalise_origin(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


def _same(candidate: str, token: str) -> bool:
    return hmac.compare_digest(candidate.encode("utf-8", "replace"), token.encode("utf-8"))


def admit(
    headers: dict[str, str],
    query_string: bytes | str,
    subprotocols: list[str],
    *,
    token: str,
    allowed_origins: set[str],
) -> Admission:
    """Decide on an upgrade request. ``headers`` has lower-case names."""
    origin = headers.get("origin")
    if origin is not None and normalise_origin(origin) not in allowed_origins:
        return Admission(False, "origin not allowed")

    offered_plain = SUBPROTOCOL in subprotocols
    candidates: list[tuple[str, str]] = []  # (how, candidate)
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        candidates.append(("header", auth[7:].strip()))
    if query_string:
        qs = query_string.decode("latin-1") if isinstance(query_string, bytes) else query_string
        for value in parse_qs(qs, keep_blank_values=True).get("token", [])[:4]:
            candidates.append(("query", value))
    for proto in subprotocols[:8]:
        if proto.startswith(TOKEN_SUBPROTOCOL_PREFIX):
            candidates.append((proto, proto[len(TOKEN_SUBPROTOCOL_PREFIX) :]))
    if not candidates:
        return Admission(False, "no token")
    matched = None
    for how, candidate in candidates:
        if _same(candidate, token) and matched is None:
            matched = how
    if matched is None:
        return Admission(False, "wrong token")
    # A client that offered subprotocols must get one of them back (browsers insist).
    if offered_plain:
        return Admission(True, subprotocol=SUBPROTOCOL)
    if matched.startswith(TOKEN_SUBPROTOCOL_PREFIX):
        return Admission(True, subprotocol=matched)
    return Admission(True, subprotocol=None)
