"""The emulator's TLS: a throwaway certificate authority (trustme), one per process.

Production talks to the API over TLS, with HTTP/2 negotiated by ALPN; the emulator does the same
so the SDK's real TLS and HTTP/2 paths run in the tests and the bench. The CA exists only in this
process's memory and a temporary PEM file (removed at exit) that clients are told to trust
(``Settings.ca_file``); it is never added to any system store.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import ssl
import tempfile
import threading
from typing import Any

HOSTS = ("127.0.0.1", "localhost")

# Emulators starting at once (the bench runs its strategies concurrently) build their server
# contexts in worker threads: without the lock two of them made two CAs, and the clients
# trusted the other one.
_lock = threading.Lock()
_made: dict[str, Any] = {}


def _authority() -> tuple[Any, Any]:  # (trustme.CA, trustme.LeafCert)
    with _lock:
        if "ca" not in _made:
            try:
                import trustme
            except ImportError as exc:  # pragma: no cover - a dependency of the package
                raise RuntimeError("the emulator's TLS needs the trustme package") from exc
            ca = trustme.CA()
            _made["ca"], _made["leaf"] = ca, ca.issue_cert(*HOSTS)
        return _made["ca"], _made["leaf"]


def server_context(alpn: tuple[str, ...] = ("h2", "http/1.1")) -> ssl.SSLContext:
    """A server context with the test certificate, offering ``alpn`` in that order."""
    _, leaf = _authority()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    leaf.configure_cert(ctx)
    ctx.set_alpn_protocols(list(alpn))
    return ctx


def ca_file() -> str:
    """A PEM file holding the test CA's certificate (what a client must trust)."""
    ca, _ = _authority()
    with _lock:
        if "file" not in _made:
            fd, path = tempfile.mkstemp(prefix="emulator-ca-", suffix=".pem")
            with os.fdopen(fd, "wb") as out:
                out.write(ca.cert_pem.bytes())
            atexit.register(_remove, path)
            _made["file"] = path
        return _made["file"]


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def client_context() -> ssl.SSLContext:
    """A client context that trusts the test CA only."""
    return ssl.create_default_context(cafile=ca_file())
