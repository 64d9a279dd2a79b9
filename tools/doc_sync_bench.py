"""Per-keystroke server CPU and bytes up: protocol v1 (whole text per ``suggest``) against 1.1
(``open`` once, then ``edit`` + ``suggest`` by version), at several document sizes.

A real ``assistant serve`` process (no API key: the offline tier answers, ``--offline`` picks
which; the server's default is ``auto``) and one client in this process. The client opens a
document of the given size, types ``--warmup`` keystrokes that are not counted, then
``--keys`` keystrokes, each one the next character of a passage typed at the end of a line nine
tenths into the document, waiting for each suggestion's terminal frame before the next key. Server CPU
is the sum over the server's threads of ``/proc/PID/task/*/schedstat`` (nanoseconds on a CPU),
read before and after the counted keystrokes, so everything the server does for a keystroke is
in it: the WebSocket frame, JSON, the document, the engine and the offline provider. Bytes up
are the WebSocket payloads the client sent per keystroke plus their frame headers (2 bytes, plus
2 or 8 for a long payload, plus the 4-byte mask).

    python tools/doc_sync_bench.py                      # 1 KB, 20 KB, 100 KB; statistical engine
    python tools/doc_sync_bench.py --sizes 100000 --keys 400 --offline auto --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import orjson
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tui.document_sync import DocumentSync  # noqa: E402

PASSAGES = ROOT / "assistant" / "data" / "traces" / "passages"
TYPED = (
    "Thanks for the quick reply. I have read the report you sent on Tuesday and I think the "
    "numbers for the second quarter look much better than we expected. "
)
TERMINAL = {"done", "cancelled", "error"}


def document_of(size: int, seed: int = 7) -> str:
    """``size`` characters of prose made of the passages' sentences in a seeded random order, so
    the text is not one block repeated (which would flatter any per-chunk cache)."""
    sentences = []
    for path in sorted(PASSAGES.iterdir()):
        sentences += [s for s in re.split(r"(?<=[.!?])\s+", path.read_text()) if s.strip()]
    rng = random.Random(seed)
    out, n = [], 0
    while n < size:
        s = rng.choice(sentences)
        if rng.random() < 0.3:
            s = f"{rng.choice(['Then', 'Also', 'So', 'Still', 'Yet'])}, {s[0].lower()}{s[1:]}"
        piece = s + ("\n\n" if rng.random() < 0.15 else " ")
        out.append(piece)
        n += len(piece)
    return "".join(out)[:size]


def frame_bytes(payload: str) -> int:
    """Bytes on the wire for a masked client text frame carrying ``payload``."""
    n = len(payload.encode())
    return n + 2 + 4 + (0 if n < 126 else 2 if n < 65536 else 8)


def one_process(tree: Path) -> list[str]:
    """``--workers 1`` where the tree's server has workers: the CPU read is one process's."""
    return (
        ["--workers", "1"] if "--workers" in (Path(tree) / "assistant/cli.py").read_text() else []
    )


def server_cpu_ns(pid: int) -> int:
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/schedstat") as f:
            total += int(f.read().split()[0])
    return total


async def until_idle(pid: int, timeout_s: float = 30.0) -> None:
    """Wait until the server used under 1 ms of CPU in 100 ms."""
    deadline = time.monotonic() + timeout_s
    before = server_cpu_ns(pid)
    while time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        now = server_cpu_ns(pid)
        if now - before < 1_000_000:
            return
        before = now


class Typist:
    """One client: holds the text and cursor, speaks v1 or 1.1, counts what it sends."""

    def __init__(self, ws, text: str, protocol: str) -> None:
        self.ws, self.protocol = ws, protocol
        # At the end of a line nine tenths in: with words after the cursor on its line the
        # engine would not ask at all (source "none"), and that is not the path measured here.
        line_end = text.find("\n", len(text) - len(text) // 10)
        self.text, self.cursor = text, line_end if line_end >= 0 else len(text)
        self.sources: Counter = Counter()
        self.sync = DocumentSync()
        self.next_id = 0
        self.sent_bytes = 0
        self.errors: list[dict] = []

    async def send(self, frame: dict) -> int:
        self.next_id = max(self.next_id, frame["id"])
        payload = orjson.dumps(frame).decode()
        self.sent_bytes += frame_bytes(payload)
        await self.ws.send(payload)
        return frame["id"]

    def fresh_id(self) -> int:
        self.next_id += 1
        return self.next_id

    async def open(self) -> None:
        before, after = self.text[: self.cursor], self.text[self.cursor :]
        if self.protocol == "v1":
            await self.send(
                {"type": "warm", "id": self.fresh_id(), "prefix": before, "suffix": after}
            )
        else:
            await self.send(self.sync.frame(self.text, self.cursor, self.fresh_id()))

    async def keystroke(self, char: str) -> None:
        self.text = self.text[: self.cursor] + char + self.text[self.cursor :]
        self.cursor += 1
        if self.protocol == "v1":
            fid = await self.send(
                {
                    "type": "suggest",
                    "id": self.fresh_id(),
                    "prefix": self.text[: self.cursor],
                    "suffix": self.text[self.cursor :],
                }
            )
        else:
            for frame in self.sync.suggest_frames(self.text, self.cursor, self.fresh_id):
                fid = await self.send(frame)
        while True:
            f = orjson.loads(await asyncio.wait_for(self.ws.recv(), 30))
            if f.get("type") == "error":
                self.errors.append(f)
            if f.get("type") in TERMINAL and f.get("id") == fid:
                self.sources[f.get("source") or f["type"]] += 1
                return


async def measure(url: str, token: str, pid: int, size: int, protocol: str, args) -> dict:
    text = document_of(size)
    async with connect(
        url, additional_headers={"Authorization": f"Bearer {token}"}, max_size=None
    ) as ws:
        ready = orjson.loads(await ws.recv())
        assert ready["type"] == "ready", ready
        t = Typist(ws, text, protocol)
        await t.open()
        keys = (TYPED * (1 + (args.warmup + args.keys) // len(TYPED)))[: args.warmup + args.keys]
        for ch in keys[: args.warmup]:
            await t.keystroke(ch)
        await until_idle(pid)  # the warm-up (lexicon load, learning the text) runs in threads
        t.sources.clear()
        sent0, cpu0, wall0 = t.sent_bytes, server_cpu_ns(pid), time.perf_counter()
        for ch in keys[args.warmup :]:
            await t.keystroke(ch)
        cpu = server_cpu_ns(pid) - cpu0
        wall = time.perf_counter() - wall0
        if t.errors:
            raise RuntimeError(f"the server answered errors: {t.errors[:3]}")
        return {
            "size": size,
            "protocol": protocol,
            "keys": args.keys,
            "server_cpu_us_per_key": cpu / 1000 / args.keys,
            "bytes_up_per_key": (t.sent_bytes - sent0) / args.keys,
            "wall_ms_per_key": wall * 1000 / args.keys,
            "answered_by": dict(t.sources),
        }


def start_server(offline: str, token: str, tree: Path = ROOT) -> tuple[subprocess.Popen, str]:
    # One typist sends faster than a person: lift the per-connection frame-rate cap.
    config = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)  # noqa: SIM115
    config.write("max_frames_per_second = 1000000.0\n")
    config.close()
    env = dict(os.environ, ASSISTANT_OFFLINE=offline, ASSISTANT_CONFIG=config.name)
    env["PYTHONPATH"] = str(tree)
    env.pop("ANTHROPIC_API_KEY", None)
    proc = subprocess.Popen(
        [sys.executable, *os.environ.get("DOC_SYNC_BENCH_PYFLAGS", "").split(), "-m", "assistant", "serve", "--host", "127.0.0.1", "--port", "0",
         "--token", token, *one_process(tree)],
        cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the server exited (rc={proc.poll()})")
        if line.startswith("websocket: "):
            return proc, line.split(" ", 1)[1].strip()
    raise RuntimeError("the server did not start")


async def run(args) -> list[dict]:
    token = "doc-sync-bench-token"
    rows = []
    for size in args.sizes:
        for protocol in args.protocols:
            tree = args.v1_tree if protocol == "v1" and args.v1_tree else ROOT
            proc, url = start_server(args.offline, token, tree)  # a fresh process per row
            try:
                rows.append(await measure(url, token, proc.pid, size, protocol, args))
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(10)
    return rows


def table(rows: list[dict], offline: str) -> str:
    by = {(r["size"], r["protocol"]): r for r in rows}
    lines = [
        f"offline provider: {offline}; {rows[0]['keys']} keystrokes per row, each waiting for "
        "its suggestion",
        "",
        "| document | v1 CPU/key | 1.1 CPU/key | v1 ÷ 1.1 | v1 bytes up/key | 1.1 bytes up/key |",
        "|---|---|---|---|---|---|",
    ]
    for size in sorted({r["size"] for r in rows}):
        v1, v11 = by.get((size, "v1")), by.get((size, "1.1"))
        if not (v1 and v11):
            continue
        a, b = v1["server_cpu_us_per_key"], v11["server_cpu_us_per_key"]
        lines.append(
            f"| {size / 1000:g} KB | {a:,.0f} µs | {b:,.0f} µs | {a / b:.1f}x | "
            f"{v1['bytes_up_per_key']:,.0f} | {v11['bytes_up_per_key']:,.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--sizes",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1_000, 20_000, 100_000],
        help="document sizes in characters",
    )
    p.add_argument("--protocols", type=lambda s: s.split(","), default=["v1", "1.1"])
    p.add_argument("--keys", type=int, default=300, help="counted keystrokes per row")
    p.add_argument("--warmup", type=int, default=40, help="keystrokes before counting")
    p.add_argument("--offline", default="statistical", help="auto | local | statistical")
    p.add_argument("--json", help="write the rows here")
    p.add_argument("--v1-tree", type=Path, help="serve the v1 rows from this checkout (before)")
    args = p.parse_args(argv)  # fmt: skip
    rows = asyncio.run(run(args))
    for r in rows:
        print(json.dumps(r), file=sys.stderr)
    print(table(rows, args.offline))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
