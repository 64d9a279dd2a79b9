"""Who may open a WebSocket: the token check, writer tokens and the Origin allowlist.

Two kinds of token open a connection. The static token (``--token``/``ASSISTANT_TOKEN``) is for
one person on their own machine. A writer token is a short-lived JWT that the embedding app's
backend mints per writer (docs/deployment.md); it is verified with PyJWT against
``ASSISTANT_JWT_SECRET`` (HS256) or ``ASSISTANT_JWT_PUBLIC_KEY`` (EdDSA or RS256), and names the
writer (``sub``) whose budget and connection limit apply. Any token that fails any check is
refused exactly as a wrong static token is (1008 before accept), so a prober learns nothing from
the refusal.

A token is accepted from an ``Authorization: Bearer`` header, a ``?token=`` query parameter
or a ``assistant.v1.<token>`` subprotocol (browsers cannot set headers), and compared in
constant time. A browser always sends ``Origin``; it must be one of the server's own origins or
an explicitly allowed one, so a page on another site cannot drive the user's key even if it
learned the token. Clients that send no ``Origin`` (terminals, scripts) need only the token.
"""

from __future__ import annotations

import hmac
import math
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs

import jwt

SUBPROTOCOL = "assistant.v1"
TOKEN_SUBPROTOCOL_PREFIX = SUBPROTOCOL + "."
_WILDCARD_HOSTS = {"", "0.0.0.0", "::", "[::]"}

AUDIENCE = "inline-assistant"
# Clock skew tolerated on exp and nbf between the minting backend and this server (the issue
# allows at most 30 s); a writer token is minutes long, so this is a small share of its life.
LEEWAY_S = 30
MIN_SECRET_BYTES = 32  # RFC 7518 3.2: an HS256 key at least as long as the hash output
MAX_TOKEN_CHARS = 8192  # a writer token is ~300 chars; anything far longer is not one
# The writer the static token stands for (one person on their own machine).
OWNER = "owner"


@dataclass(frozen=True)
class Writer:
    """Who a connection belongs to: the token's ``sub`` and what the token grants."""

    id: str
    budget_usd_day: float | None = None  # None: the server's default (ASSISTANT_BUDGET_USD_DAY)
    max_connections: int | None = None  # None: no per-writer limit beyond the server's cap
    expires_at: float | None = None  # Unix time the token stops being valid (None: never)


@dataclass(frozen=True)
class Admission:
    ok: bool
    reason: str = ""  # why it was refused (never contains the token)
    subprotocol: str | None = None  # what to accept with
    writer: Writer | None = None


class WriterTokens:
    """Verifies writer tokens (JWTs) with one key and one algorithm, chosen at start."""

    def __init__(self, key: object, algorithm: str) -> None:
        self._key = key
        self.algorithm = algorithm

    @classmethod
    def from_settings(cls, secret: str | None, public_key: str | None) -> WriterTokens | None:
        """None when neither is configured. ValueError (with a message for the operator) for a
        secret under 32 bytes, both set, or a key file that is not an Ed25519 or RSA public key."""
        if secret and public_key:
            raise ValueError("set ASSISTANT_JWT_SECRET or ASSISTANT_JWT_PUBLIC_KEY, not both")
        if secret:
            if len(secret.encode("utf-8")) < MIN_SECRET_BYTES:
                raise ValueError(
                    f"ASSISTANT_JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes "
                    "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(48))')"
                )
            return cls(secret.encode("utf-8"), "HS256")
        if public_key:
            from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
            from cryptography.hazmat.primitives.serialization import load_pem_public_key

            try:
                key = load_pem_public_key(Path(public_key).read_bytes())
            except (OSError, ValueError) as exc:
                raise ValueError(f"ASSISTANT_JWT_PUBLIC_KEY {public_key}: {exc}") from None
            if isinstance(key, ed25519.Ed25519PublicKey):
                return cls(key, "EdDSA")
            if isinstance(key, rsa.RSAPublicKey):
                if key.key_size < 2048:
                    raise ValueError("ASSISTANT_JWT_PUBLIC_KEY: an RSA key needs 2048 bits or more")
                return cls(key, "RS256")
            raise ValueError("ASSISTANT_JWT_PUBLIC_KEY must be an Ed25519 or RSA public key")
        return None

    def verify(self, token: str) -> Writer | None:
        """The writer a valid token names, else None (whatever was wrong with it)."""
        if not token or len(token) > MAX_TOKEN_CHARS or token.count(".") != 2:
            return None
        try:
            # The header's alg must be the configured one: PyJWT refuses any other (none included)
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[self.algorithm],
                audience=AUDIENCE,
                leeway=LEEWAY_S,
                options={"require": ["sub", "exp", "aud"]},
            )
        except (jwt.PyJWTError, ValueError, TypeError):
            return None
        except Exception:  # a token must never crash the handshake; refuse it instead
            return None
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub.strip() or len(sub) > 200:
            return None
        budget = claims.get("budget_usd_day")
        if budget is not None:
            if isinstance(budget, bool) or not isinstance(budget, int | float):
                return None
            budget = float(budget)
            if not math.isfinite(budget) or budget < 0:
                return None
        limit = claims.get("max_connections")
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
        ):
            return None
        exp = claims.get("exp")
        return Writer(sub, budget, limit, float(exp) + LEEWAY_S)


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


def bearer_matches(authorization: str, token: str) -> bool:
    """Whether an ``Authorization`` header carries ``token`` (constant time)."""
    if authorization[:7].lower() != "bearer ":
        return False
    return _same(authorization[7:].strip(), token)


def admit(
    headers: dict[str, str],
    query_string: bytes | str,
    subprotocols: list[str],
    *,
    token: str,
    allowed_origins: set[str],
    writers: WriterTokens | None = None,
) -> Admission:
    """Decide on an upgrade request. ``headers`` has lower-case names. ``writers``: writer
    tokens are accepted too (the static token still is)."""
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
    writer = None
    for how, candidate in candidates:
        if _same(candidate, token) and matched is None:
            matched, writer = how, Writer(OWNER)
    if matched is None and writers is not None:
        for how, candidate in candidates:
            writer = writers.verify(candidate)
            if writer is not None:
                matched = how
                break
    if matched is None:
        return Admission(False, "wrong token")
    # A client that offered subprotocols must get one of them back (browsers insist).
    if offered_plain:
        return Admission(True, subprotocol=SUBPROTOCOL, writer=writer)
    if matched.startswith(TOKEN_SUBPROTOCOL_PREFIX):
        return Admission(True, subprotocol=matched, writer=writer)
    return Admission(True, subprotocol=None, writer=writer)
