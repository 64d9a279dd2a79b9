"""Repro: a client that sends frames and never reads makes the server's outbox grow.

Every frame gets a reply (an error for junk, ``rate_limited`` for the excess), the writer task
blocks once the socket's buffers are full, and the reader keeps queueing replies in
``Connection._outbox`` (server/connection.py), which has no bound. Prints the outbox length
after ``--frames`` junk frames::

    PYTHONPATH=. python tools/slow_reader.py --frames 60000
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


async def main(frames: int) -> None:
    from websockets.asyncio.client import connect

    from assistant.config import Settings
    from server.runner import ServerHandle

    async with ServerHandle(Settings(token="t", offline="statistical")) as srv:
        ws = await connect(
            srv.ws_url,
            additional_headers={"Authorization": "Bearer t"},
            ping_interval=None,
            compression=None,
            max_queue=1,
        )
        for i in range(frames):  # junk: one error frame each; never read
            await ws.send("x" * 1000)
            if i % 20000 == 0:
                await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)
        conn = next(iter(srv.hub.connections))
        print(
            f"frames in {conn.stats.frames_in}, written {conn.stats.frames_out}, "
            f"queued in the outbox {len(conn._outbox)}"
        )
        await ws.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--frames", type=int, default=60_000)
    asyncio.run(main(min(p.parse_args().frames, 1_000_000)))
