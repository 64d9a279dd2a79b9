"""What one keystroke costs the server before any of the product's code: the floor under
``tools/doc_sync_bench.py``'s figures.

A minimal starlette app on uvicorn, configured as ``assistant serve`` configures its own (uvloop,
``websockets-sansio``, permessage-deflate as ``--deflate`` says), in its own process, with one
client in this process that sends a keystroke-sized JSON frame (the 89 bytes of a protocol 1.1
``suggest`` carrying its change) and waits for each reply, as the doc-sync bench's typist does.
Server CPU is the sum of ``/proc/PID/task/*/schedstat`` over the counted frames.

Endpoints, each a step closer to what the product does per keystroke:

- ``read``: parse the frame, send nothing back (the client sends a ``ping`` every 50 frames and
  waits for that one reply, so nothing piles up): the cost of a frame in;
- ``echo``: parse it and send one small JSON frame back from the reader (one frame in, one out);
- ``task``: hand the frame to a writer task through a queue, as ``server/connection.py`` does;
- ``timer``: as ``task``, but the reply waits for a 1 ms timer first (a debounce that fires);
- ``echo-v1``: ``echo`` with a v1 ``suggest`` of a ``--v1-chars`` document (prefix and suffix)
  instead of the 89-byte frame.

    python tools/ws_floor.py                     # deflate on, as the server's default
    python tools/ws_floor.py --frames 3000 --no-deflate
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import subprocess
import sys
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools.doc_sync_bench import document_of, server_cpu_ns  # noqa: E402
from tools.load import process_tree  # noqa: E402

KINDS = ("read", "echo", "task", "timer", "echo-v1")
FRAME = {
    "type": "suggest",
    "id": 123456,
    "base": 123455,
    "changes": [[90061, 90061, "e"]],
    "cursor": 90062,
}


def app():
    """The starlette app (built in the server process)."""
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute

    async def read(ws):
        await ws.accept()
        n = 0
        while True:
            msg = await ws.receive()
            if msg["type"] == "websocket.disconnect":
                return
            frame = orjson.loads(msg["text"])
            n += 1
            if frame["type"] == "ping":
                await ws.send_text(orjson.dumps({"type": "pong", "n": n}).decode())

    async def echo(ws):
        await ws.accept()
        while True:
            msg = await ws.receive()
            if msg["type"] == "websocket.disconnect":
                return
            frame = orjson.loads(msg["text"])
            await ws.send_text(orjson.dumps({"type": "done", "id": frame["id"]}).decode())

    def writer_endpoint(delay_s: float | None):
        async def endpoint(ws):
            await ws.accept()
            loop = asyncio.get_running_loop()
            outbox: asyncio.Queue = asyncio.Queue()

            async def write():
                while True:
                    await ws.send_text(orjson.dumps(await outbox.get()).decode())

            writer = loop.create_task(write())
            try:
                while True:
                    msg = await ws.receive()
                    if msg["type"] == "websocket.disconnect":
                        return
                    frame = orjson.loads(msg["text"])
                    reply = {"type": "done", "id": frame["id"]}
                    if delay_s is None:
                        outbox.put_nowait(reply)
                    else:
                        loop.call_later(delay_s, outbox.put_nowait, reply)
            finally:
                writer.cancel()

        return endpoint

    return Starlette(
        routes=[
            WebSocketRoute("/read", read),
            WebSocketRoute("/echo", echo),
            WebSocketRoute("/task", writer_endpoint(None)),
            WebSocketRoute("/timer", writer_endpoint(0.001)),
        ]
    )


def serve(deflate: bool) -> None:
    """Run the app on a socket bound here, and print its port for the parent."""
    import socket

    import uvicorn
    import uvloop

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)  # connections wait in the backlog until uvicorn accepts them
    config = uvicorn.Config(
        app(),
        ws="websockets-sansio",
        ws_per_message_deflate=deflate,
        lifespan="off",
        log_level="warning",
        access_log=False,
    )
    print(sock.getsockname()[1], flush=True)
    uvloop.run(uvicorn.Server(config).serve(sockets=[sock]))


def serve_granian() -> None:
    """The same app on granian (its Rust HTTP/WebSocket server, the app on uvloop), one worker;
    granian binds the port itself, so pick a free one first."""
    import socket

    from granian import Granian
    from granian.constants import Interfaces, Loops

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    print(port, flush=True)
    Granian(
        "tools.ws_floor:app",
        address="127.0.0.1",
        port=port,
        interface=Interfaces.ASGI,
        workers=1,
        loop=Loops.uvloop,
        factory=True,
        websockets=True,
        log_enabled=False,
        working_dir=ROOT,
    ).serve()


def tree_cpu_ns(pid: int) -> int:
    """CPU of ``pid`` and its children (granian serves from a child process)."""
    return sum(server_cpu_ns(p) for p in process_tree(pid))


def v1_frame(chars: int) -> dict:
    text = document_of(chars)
    cut = len(text) * 9 // 10
    return {"type": "suggest", "id": 123456, "prefix": text[:cut], "suffix": text[cut:]}


async def measure(port: int, pid: int, kind: str, args) -> float:
    from websockets.asyncio.client import connect

    frames, warmup = args.frames, args.warmup
    payload = orjson.dumps(v1_frame(args.v1_chars) if kind == "echo-v1" else FRAME).decode()
    path = "echo" if kind == "echo-v1" else kind
    async with connect(f"ws://127.0.0.1:{port}/{path}", max_size=None) as ws:

        async def one(i: int) -> None:
            await ws.send(payload)
            if kind != "read":
                await ws.recv()
            elif i % 50 == 49:
                await ws.send('{"type":"ping"}')
                await ws.recv()

        for i in range(warmup):
            await one(i)
        cpu0 = tree_cpu_ns(pid)
        for i in range(frames):
            await one(i)
        if kind == "read":
            await ws.send('{"type":"ping"}')
            await ws.recv()
        return (tree_cpu_ns(pid) - cpu0) / 1000 / frames


def start_server(deflate: bool, server: str = "uvicorn") -> tuple[subprocess.Popen, int]:
    cmd = [sys.executable, __file__, "--serve", "--server", server]
    cmd += [] if deflate else ["--no-deflate"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.strip().isdigit():
        proc.kill()
        raise RuntimeError(f"the floor server did not start (rc={proc.poll()})")
    return proc, int(line)


async def run(args, pid: int, port: int) -> dict[str, float]:
    for _ in range(300):  # granian binds its port a moment after it is started
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            break
        await asyncio.sleep(0.1)
    return {kind: await measure(port, pid, kind, args) for kind in KINDS}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--frames", type=int, default=2000, help="counted frames per endpoint")
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--v1-chars", type=int, default=100_000, help="document size for echo-v1")
    p.add_argument("--deflate", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument(
        "--server",
        choices=("uvicorn", "granian"),
        default="uvicorn",
        help="granian: the same app on granian (pip install granian; no permessage-deflate)",
    )
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--json", help="write the figures here")
    args = p.parse_args(argv)
    if args.server == "granian" and args.deflate:
        p.error("granian does not negotiate permessage-deflate: add --no-deflate")
    if args.serve:
        serve_granian() if args.server == "granian" else serve(args.deflate)
        return 0
    proc, port = start_server(args.deflate, args.server)
    try:
        figures = asyncio.run(run(args, proc.pid, port))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    deflate = "on" if args.deflate else "off"
    print(f"server CPU per frame, {args.server}, permessage-deflate {deflate}:")
    print()
    print("| endpoint | what it does per frame | µs |")
    print("|---|---|---|")
    what = {
        "read": "parse a frame in",
        "echo": "parse, one frame out",
        "task": "parse, one frame out from a writer task",
        "timer": "parse, a 1 ms timer, one frame out from a writer task",
        "echo-v1": f"echo, with a v1 frame of a {args.v1_chars:,}-character document",
    }
    for kind, us in figures.items():
        print(f"| {kind} | {what[kind]} | {us:.0f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
