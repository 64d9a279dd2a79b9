"""The attacks of issue 21, as raw sockets, and what the tests measure while they run: another
client's ping latency and the server process's resident memory.

Used by ``tests/reliability/test_attacks.py``; run with ``-s`` to print the figures that
docs/reliability.md quotes.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from dataclasses import dataclass, field

from .conftest import Client

UPGRADE = (
    "GET /v1/ws?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n\r\n"
)


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def masked_frame(opcode: int, payload: bytes = b"") -> bytes:
    """One client frame (clients must mask), FIN set, payload under 126 bytes."""
    mask = b"\x01\x02\x03\x04"
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + body


def masked_frame_long(opcode: int, payload: bytes) -> bytes:
    """One client frame of any length (64-bit length form)."""
    mask = b"\x01\x02\x03\x04"
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | 127]) + len(payload).to_bytes(8, "big") + mask + body


def raw_socket(port: int, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def upgraded_socket(port: int, token: str) -> socket.socket:
    """A WebSocket opened by hand, its 101 and ``ready`` read, then left to the caller."""
    sock = raw_socket(port)
    sock.settimeout(10)
    sock.sendall(UPGRADE.format(token=token, port=port).encode())
    got = b""
    while b"\r\n\r\n" not in got:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError(f"closed during the upgrade: {got!r}")
        got += chunk
    assert got.startswith(b"HTTP/1.1 101"), got[:200]
    return sock


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes ``sock`` (EOF or reset) within ``seconds``, reading whatever
    it sends until then."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            if not sock.recv(65536):
                return True
        except TimeoutError:
            return False
        except OSError:
            return True
    return False


@dataclass
class Pings:
    """Another client's ping round trips (ms) while an attack runs."""

    rtts_ms: list[float] = field(default_factory=list)
    failures: int = 0

    def quantile(self, q: float) -> float:
        if not self.rtts_ms:
            return float("inf")
        ordered = sorted(self.rtts_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def p50(self) -> float:
        return self.quantile(0.50)

    @property
    def p99(self) -> float:
        return self.quantile(0.99)

    def summary(self) -> str:
        return f"ping p50 {self.p50:.1f} ms, p99 {self.p99:.1f} ms ({len(self.rtts_ms)} pings)"


async def ping_while(client: Client, stop: asyncio.Event, every_s: float = 0.02) -> Pings:
    """Ping every ``every_s`` until ``stop`` is set; a missing pong (10 s) counts as a failure."""
    pings = Pings()
    while not stop.is_set():
        start = time.perf_counter()
        try:
            await client.ping(within=10)
        except TimeoutError:
            pings.failures += 1
            continue
        pings.rtts_ms.append((time.perf_counter() - start) * 1000)
        with contextlib.suppress(asyncio.TimeoutError, TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)
    return pings


class Measured:
    """``async with Measured(pid, client) as m:`` while an attack runs, ``client`` pings the
    server every 20 ms and process ``pid``'s resident memory is sampled; after it,
    ``m.pings`` and ``m.growth`` (peak minus the start, bytes)."""

    def __init__(self, pid: int, client: Client) -> None:
        self.pid = pid
        self.client = client
        self.pings = Pings()
        self.growth = 0
        self._stop = asyncio.Event()

    async def __aenter__(self) -> Measured:
        self._before = self._peak = rss_bytes(self.pid)
        self._pinger = asyncio.create_task(ping_while(self.client, self._stop))
        self._watcher = asyncio.create_task(self._watch())
        return self

    async def _watch(self) -> None:
        while not self._stop.is_set():
            self._peak = max(self._peak, rss_bytes(self.pid))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), 0.1)

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        self.pings = await self._pinger
        await self._watcher
        self.growth = self._peak - self._before


def flood(sock: socket.socket, frame: bytes, seconds: float) -> int:
    """Write ``frame`` over and over for ``seconds`` without reading; returns bytes written
    (stops early once the server closes the socket or stops reading)."""
    blob = frame * max(1, 65536 // len(frame))
    sent = 0
    deadline = time.monotonic() + seconds
    sock.settimeout(0.5)
    while time.monotonic() < deadline:
        try:
            sent += sock.send(blob)
        except TimeoutError:
            continue  # the server is not reading now
        except OSError:
            break  # closed
    return sent
