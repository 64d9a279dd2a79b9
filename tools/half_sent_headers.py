"""How long a server holds sockets that send half a request line and nothing more: the attack
that, with no token, used to hold every socket until the open-file limit refused everyone.

    python tools/half_sent_headers.py            # 200 sockets, default settings, 20 s

Starts a server of this tree on 127.0.0.1 and prints how many sockets are still open after
``--seconds``, when the last one was dropped, and the round trips of another client's pings
(every 20 ms) meanwhile (docs/reliability.md, section 5).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import time

from websockets.asyncio.client import connect

from assistant.config import Settings
from server.runner import ServerHandle


async def _pings(url: str, stop: asyncio.Event) -> list[float]:
    rtts = []
    async with connect(url, additional_headers={"Authorization": "Bearer half-sent"}) as ws:
        await ws.recv()  # ready
        pid = 1
        while not stop.is_set():
            pid += 1
            start = time.perf_counter()
            await ws.send(json.dumps({"type": "ping", "id": pid}))
            while json.loads(await ws.recv()).get("id") != pid:
                pass
            rtts.append((time.perf_counter() - start) * 1000)
            await asyncio.sleep(0.02)
    return sorted(rtts)


async def held_sockets(count: int, seconds: float) -> tuple[int, float, list[float]]:
    async with ServerHandle(Settings(token="half-sent", offline="statistical")) as srv:
        stop = asyncio.Event()
        pinger = asyncio.create_task(_pings(srv.ws_url, stop))
        socks = []
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", srv.port))
            sock.sendall(b"GET /v1/ws HTT")
            sock.setblocking(False)
            socks.append(sock)
        start = time.monotonic()
        dropped: dict[int, float] = {}
        while time.monotonic() - start < seconds:
            for i, sock in enumerate(socks):
                if i in dropped:
                    continue
                try:
                    if sock.recv(1024) == b"":
                        dropped[i] = time.monotonic() - start
                except BlockingIOError:
                    pass
                except OSError:
                    dropped[i] = time.monotonic() - start
            await asyncio.sleep(0.1)
        stop.set()
        rtts = await pinger
        for sock in socks:
            sock.close()
        return count - len(dropped), max(dropped.values(), default=0.0), rtts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    held, last, rtts = asyncio.run(held_sockets(args.sockets, args.seconds))
    p50, p99 = rtts[len(rtts) // 2], rtts[min(len(rtts) - 1, int(0.99 * len(rtts)))]
    print(
        f"held after {args.seconds:.0f} s: {held}/{args.sockets}; last dropped after {last:.1f} s;"
        f" another client's ping p50 {p50:.1f} ms, p99 {p99:.1f} ms ({len(rtts)} pings)"
    )


if __name__ == "__main__":
    main()
