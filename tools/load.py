"""Load generator: N concurrent typists against the WebSocket server, with the emulator behind.

Three processes, so each one's memory and CPU can be read apart: the Anthropic emulator
(``python -m assistant.emulator``), the server (this script's ``serve`` mode: the real app on
uvicorn, API key pointed at the emulator) and this process, which holds the N client
connections. Each typist types a passage at ``--cps`` characters per second and sends a
``suggest`` per keystroke, a ``ping`` every ``--ping-every`` seconds, and records when every id's
terminal frame comes back. The emulator knows the passage (``--oracle``). With ``--predictor
oracle`` (the default, for comparison with earlier figures) its suggestions are always what the
typist goes on to type, so most keystrokes take the cheap type-through path: an upper bound.
``--predictor noisy`` (right with probability ``--accuracy``, 0.3 by default, as the bench's
headline) sends far more keystrokes to the model, as a real writer's would.

Figures reported per step of the ramp:

- connections opened / refused, and how long it took to open them;
- ping→pong round trip (p50/p99): the server's own overhead under that load, no provider in it;
- ``done`` round trip by source; ``typethrough`` and ``cache`` involve no provider, so their p99
  is server overhead on the suggestion path;
- terminal frames missing after the drain (must be 0: nothing lost);
- server RSS before connecting, with N idle connections, at the end; RSS per connection;
- CPU seconds used by the server, the emulator and this generator during the typing window;
- how many of the typists' connections each worker holds once they are open
  (``connections_by_worker``, in the JSON).

Usage (1,000 typists for 20 s, after steps of 250 and 500)::

    python tools/load.py --ramp 250,500,1000 --duration 20 --cps 4 --json load.json

Issue 23's done-when (and every 1,000-typist figure in docs/reliability.md before it) is this
command, 2 keys a second from two generator processes; the default, 4 a second from one, is
twice the keystrokes (docs/reliability.md compares the two)::

    python tools/load.py --workers 2 --generators 2 --ramp 1000 --duration 15 --cps 2 --predictor noisy

``--workers N`` runs the server as ``assistant serve --workers N`` does (N processes on one
socket; CPU and RSS are summed over them). ``--generators K`` spreads the typists over K client
processes (one Python process cannot hold 2,000 typists at 2 keys/s), started together on a
barrier so the typing windows coincide. ``--offline-only`` gives the server no API key, so every
suggestion comes from the offline tier (``--offline statistical``, the default). ``--loop`` and
``--http`` pick the server's event loop and HTTP parser (to measure uvloop and httptools).
The emulator speaks TLS with a test CA and HTTP/2, as the API does (``--plain-http``: plain
HTTP/1.1, as before issue 23). ``--server-log FILE``: the server writes its JSON log lines
there at ``ASSISTANT_LOG_LEVEL``, as ``assistant serve`` does (without it, no line is written).

``--writers distinct`` gives every typist its own writer token (a JWT for ``writer-K`` with a
daily budget it never reaches), so every model request reserves and books against its writer's
budget in the database, as a web editor with many writers runs; ``one`` (the default) is the
static token and no budgets. Either way the server keeps its usage ledger in SQLite (a temp
dir), as ``assistant serve`` does by default; ``--ledger memory`` keeps it in memory, as this
tool's ``one`` did before.

The first step where something gives (refused connections, missing terminals, ping p99 over
``--p99-limit-ms``, the server at a full core) is reported as where it breaks.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tui.document_sync import DocumentSync  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

PASSAGE = (
    "Dear Sam, thanks for the quick reply. I have read the report you sent on Tuesday and I "
    "think the numbers for the second quarter look much better than we expected. The team in "
    "the north office did a great job with the new customers, and the support queue is shorter "
    "than it has been all year. Could we meet next week to talk about the budget for the "
    "autumn? I would like to hire two more people for the support team before the holidays, "
    "and I want to be sure that we can afford it. Let me know which day works best for you. "
    "Best wishes, and say hello to everyone in the office. "
)


# ------------------------------------------------------------------------------------------
# Processes


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def _read_banner(proc: subprocess.Popen, prefix: str, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{prefix} process exited (rc={proc.poll()})")
        if line.startswith(prefix + " "):
            return line.split(" ", 1)[1].strip()
    raise RuntimeError(f"no {prefix} banner within {timeout}s")


@dataclass
class Stack:
    """The emulator and server processes the load runs against."""

    emulator: subprocess.Popen
    server: subprocess.Popen
    emulator_url: str
    ws_url: str
    token: str

    def stop(self) -> None:
        for proc in (self.server, self.emulator):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in (self.server, self.emulator):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def process_tree(pid: int) -> list[int]:
    """``pid`` and its children (a server's workers)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [pid, *(int(x) for x in f.read().split())]
    except OSError:
        return [pid]


def connections_by_pid(port: int, pids: list[int]) -> dict[int, int]:
    """How many established TCP connections on local ``port`` each process in ``pids`` holds
    (from /proc: the sockets' inodes, then each process's descriptors)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as f:
            for line in list(f)[1:]:
                fields = line.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                if local_port == port and fields[3] == "01":  # 01: ESTABLISHED
                    inodes.add(f"socket:[{fields[9]}]")
    held = {}
    for pid in pids:
        links = []
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):  # closed meanwhile
                    links.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        held[pid] = sum(link in inodes for link in links)
    return held


def tree_cpu_seconds(pid: int) -> float:
    total = 0.0
    for p in process_tree(pid):
        with contextlib.suppress(OSError):
            total += cpu_seconds(p)
    return total


def tree_rss_bytes(pid: int) -> int:
    total = 0
    for p in process_tree(pid):
        with contextlib.suppress(OSError):
            total += rss_bytes(p)
    return total


def start_stack(
    *,
    profile: str = "fast",
    max_connections: int = 2000,
    max_frames_per_second: float = 200.0,
    oracle: str = PASSAGE,
    predictor: str = "oracle",
    accuracy: float = 0.3,
    workers: int = 1,
    offline_only: bool = False,
    loop: str = "auto",
    http: str = "auto",
    writers: str = "one",
    ledger: str = "sqlite",
    server_log: str | None = None,
    tls: bool = True,
    http2: bool = True,
) -> Stack:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    writer_args: list[str] = []
    if ledger == "sqlite" or writers == "distinct":  # as `assistant serve` runs by default
        ledger_file = Path(tempfile.mkdtemp(prefix="load-ledger-")) / "ledger.db"
        writer_args = ["--database-url", f"sqlite:///{ledger_file}"]
    if writers == "distinct":
        secret = os.urandom(24).hex()
        writer_args += ["--jwt-secret", secret]
    oracle_file = tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False)
    oracle_file.write(oracle)
    oracle_file.close()
    emulator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "assistant.emulator",
            "--profile",
            profile,
            "--oracle",
            oracle_file.name,
            "--predictor",
            predictor,
            "--accuracy",
            str(accuracy),
            *(["--tls"] if tls else []),
            *([] if http2 else ["--no-http2"]),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        ca_file = _read_banner(emulator, "EMULATOR_CA") if tls else None
        emulator_url = _read_banner(emulator, "EMULATOR")
        token = "load-token" if writers == "one" else WRITERS_PREFIX + secret
        log_out = open(server_log, "ab") if server_log else None  # the child keeps its copy
        server = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "serve",
                "--base-url",
                emulator_url,
                "--token",
                token,
                "--max-connections",
                str(max_connections),
                "--max-frames-per-second",
                str(max_frames_per_second),
                "--workers",
                str(workers),
                "--loop",
                loop,
                "--http",
                http,
                *(["--offline-only"] if offline_only else []),
                *writer_args,
                *(["--log"] if server_log else []),
                *(["--ca-file", ca_file] if ca_file else []),
            ],
            stdout=subprocess.PIPE,
            stderr=log_out,
            text=True,
            env=env,
            cwd=ROOT,
        )
        if log_out is not None:
            log_out.close()
        ws_url = _read_banner(server, "SERVER")
    except BaseException:
        emulator.kill()
        raise
    finally:
        os.unlink(oracle_file.name)
    return Stack(emulator, server, emulator_url, ws_url, token)


def serve_main(args: argparse.Namespace) -> int:
    """The server process(es): the real app as ``assistant serve --workers N`` runs it, until
    SIGTERM; prints ``SERVER <ws_url>`` once every worker listens."""
    sys.path.insert(0, str(ROOT))
    from assistant.config import Settings
    from server.app import WS_PATH, build_app
    from server.runner import GracefulServer, serve_until_signalled, uvicorn_config
    from server.workers import Supervisor, bind_socket

    if args.log:
        # JSON lines on stderr at ASSISTANT_LOG_LEVEL, as `assistant serve` writes them.
        from server.logs import configure_json_logging, log_level

        configure_json_logging([args.token], log_level())
    settings = Settings(
        api_key=None if args.offline_only else "sk-ant-load-test",
        base_url=args.base_url,
        ca_file=args.ca_file,
        token=args.token,
        host="127.0.0.1",
        port=0,
        max_connections=args.max_connections,
        max_frames_per_second=args.max_frames_per_second,
        offline=args.offline,
        jwt_secret=args.jwt_secret,
        database_url=args.database_url,
        # Every typist comes from 127.0.0.1: no per-address share of the slots or of memory.
        max_connections_per_ip=args.max_connections,
        max_sockets_per_ip=args.max_connections + 64,
        offline_memory_per_address=False,
    )

    def config(app, host, port):
        cfg = uvicorn_config(app, settings, host, port)
        cfg.http = args.http
        return cfg

    if args.workers == 1:
        app = build_app(settings)
        server = GracefulServer(config(app, "127.0.0.1", 0))

        def announce() -> None:
            print(f"SERVER ws://127.0.0.1:{server.bound_port}{WS_PATH}", flush=True)

        serve_until_signalled(server, announce, loop=args.loop)
        return 0
    sock = bind_socket(settings)
    port = sock.getsockname()[1]
    supervisor = Supervisor(
        settings,
        args.workers,
        sock,
        lambda: build_app(settings),
        lambda labels: print(f"SERVER ws://127.0.0.1:{port}{WS_PATH}", flush=True),
        loop=args.loop,
        configure=lambda cfg: setattr(cfg, "http", args.http),
    )
    return supervisor.run()


# ------------------------------------------------------------------------------------------
# Clients


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))]


@dataclass
class StepStats:
    n: int
    opened: int = 0
    refused: Counter = field(default_factory=Counter)
    connect_s: float = 0.0
    suggests: int = 0
    pings: int = 0
    ping_ms: list[float] = field(default_factory=list)
    ping_at: list[float] = field(default_factory=list)  # wall clock of each pong, for the timeline
    done_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    terminals: Counter = field(default_factory=Counter)
    missing_terminals: int = 0
    duplicate_terminals: int = 0
    late_frames: int = 0
    errors: Counter = field(default_factory=Counter)
    status_frames: int = 0
    closed_early: Counter = field(default_factory=Counter)
    rss_base: int = 0
    rss_connected: int = 0
    rss_end: int = 0
    cpu: dict[str, float] = field(default_factory=dict)
    connect_cpu: dict[str, float] = field(default_factory=dict)  # CPU s spent opening them
    window_s: float = 0.0
    by_worker: list[int] = field(default_factory=list)  # typists' connections each worker holds

    def parts(self) -> dict:
        """The raw books, picklable (a generator process sends them to the parent)."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["done_ms"] = dict(self.done_ms)
        return out

    def merge(self, part: dict) -> None:
        """Add another generator's books to these."""
        for key in ("opened", "suggests", "pings", "missing_terminals", "duplicate_terminals"):
            setattr(self, key, getattr(self, key) + part[key])
        for key in ("late_frames", "status_frames"):
            setattr(self, key, getattr(self, key) + part[key])
        for key in ("refused", "terminals", "errors", "closed_early"):
            getattr(self, key).update(part[key])
        self.ping_ms += part["ping_ms"]
        self.ping_at += part["ping_at"]
        for source, values in part["done_ms"].items():
            self.done_ms[source] += values
        self.connect_s = max(self.connect_s, part["connect_s"])

    def ping_timeline(self) -> list[float]:
        """Ping p99 (ms) in each second of the window, from its first pong: shows whether a
        step's p99 comes from a burst (the first seconds, every typist starting) or throughout."""
        if not self.ping_at:
            return []
        start = min(self.ping_at)
        by_second: dict[int, list[float]] = defaultdict(list)
        for at, rtt in zip(self.ping_at, self.ping_ms, strict=True):
            by_second[int(at - start)].append(rtt)
        return [round(pct(by_second[k], 99) or 0.0, 1) for k in range(max(by_second) + 1)]

    def summary(self) -> dict:
        def ms(v: float | None) -> float | None:
            return None if v is None else round(v, 2)

        done = {
            src: {"count": len(v), "p50_ms": ms(pct(v, 50)), "p99_ms": ms(pct(v, 99))}
            for src, v in sorted(self.done_ms.items())
        }
        per_conn = (self.rss_connected - self.rss_base) / self.opened if self.opened else None
        return {
            "n": self.n,
            "opened": self.opened,
            "refused": dict(self.refused),
            "connect_s": round(self.connect_s, 2),
            "suggests": self.suggests,
            "suggests_per_s": round(self.suggests / self.window_s, 1) if self.window_s else None,
            "ping": {
                "count": len(self.ping_ms),
                "p50_ms": ms(pct(self.ping_ms, 50)),
                "p99_ms": ms(pct(self.ping_ms, 99)),
                "max_ms": ms(max(self.ping_ms) if self.ping_ms else None),
                "p99_ms_by_second": self.ping_timeline(),
            },
            "done": done,
            "terminals": dict(self.terminals),
            "missing_terminals": self.missing_terminals,
            "duplicate_terminals": self.duplicate_terminals,
            "late_frames": self.late_frames,
            "errors": dict(self.errors),
            "status_frames": self.status_frames,
            "closed_early": dict(self.closed_early),
            "server_rss_mb": {
                "base": round(self.rss_base / 2**20, 1),
                "connected": round(self.rss_connected / 2**20, 1),
                "end": round(self.rss_end / 2**20, 1),
            },
            "rss_per_connection_kb": None if per_conn is None else round(per_conn / 1024, 1),
            "connections_by_worker": self.by_worker,
            "cpu_s": {k: round(v, 2) for k, v in self.cpu.items()},
            "connect_cpu_s": {k: round(v, 2) for k, v in self.connect_cpu.items()},
            "server_cpu_us_per_keystroke": (
                round(self.cpu["server"] / self.suggests * 1e6) if self.suggests else None
            )
            if "server" in self.cpu
            else None,
            "cpu_share": {
                k: round(v / self.window_s, 2) for k, v in self.cpu.items() if self.window_s
            },
            "window_s": round(self.window_s, 2),
        }


WRITERS_PREFIX = "writers:"  # a "token" that stands for one writer token per typist
WRITER_BUDGET_USD_DAY = 1000.0  # reserved against on every model request, never reached


def token_for(token: str, k: int) -> str:
    """Typist ``k``'s token: ``token`` itself, or (``writers:SECRET``) its own writer token."""
    if not token.startswith(WRITERS_PREFIX):
        return token
    import jwt

    now = int(time.time())
    claims = {
        "sub": f"writer-{k}",
        "aud": "inline-assistant",
        "exp": now + 3600,
        "budget_usd_day": WRITER_BUDGET_USD_DAY,
    }
    return jwt.encode(claims, token[len(WRITERS_PREFIX) :], algorithm="HS256")


class Typist:
    """One editor: types ``text`` from ``start`` and keeps the books on its ids."""

    def __init__(
        self, k: int, text: str, start: int, stats: StepStats, protocol: str = "v1"
    ) -> None:
        self.k = k
        self.text = text
        self.pos = start
        self.protocol = protocol
        self.sync = DocumentSync()
        self.stats = stats
        self.next_id = 0
        self.sent: dict[int, float] = {}  # suggest id -> send time, until its terminal
        self.pings: dict[int, float] = {}
        self.latest = 0
        self.ws = None
        self.reader: asyncio.Task | None = None
        self.all_done = asyncio.Event()
        self.all_done.set()
        self.closing = False

    async def connect(self, url: str, token: str, wait_s: float) -> bool:
        from websockets.asyncio.client import connect

        try:
            self.ws = await connect(
                url,
                additional_headers={"Authorization": f"Bearer {token_for(token, self.k)}"},
                compression=None,
                open_timeout=wait_s,
                ping_interval=None,
                close_timeout=2,
                max_size=None,
            )
            ready = json.loads(await asyncio.wait_for(self.ws.recv(), wait_s))
        except Exception as exc:
            code = getattr(getattr(exc, "rcvd", None), "code", None)
            self.stats.refused[f"{type(exc).__name__}{f':{code}' if code else ''}"] += 1
            return False
        if ready.get("type") != "ready":
            self.stats.refused["no_ready"] += 1
            return False
        self.stats.opened += 1
        self.reader = asyncio.create_task(self._read())
        if self.protocol == "1.1":  # as the editors do: the document once, on opening it
            self.next_id += 1
            opened = self.sync.frame(self.text[: self.pos], self.pos, self.next_id)
            await self.ws.send(json.dumps(opened))
        return True

    async def _read(self) -> None:
        from websockets.exceptions import ConnectionClosed

        assert self.ws is not None
        try:
            async for raw in self.ws:
                now = time.perf_counter()
                msg = json.loads(raw)
                t = msg.get("type")
                mid = msg.get("id")
                if t == "pong":
                    sent = self.pings.pop(mid, None)
                    if sent is not None:
                        self.stats.ping_ms.append((now - sent) * 1000)
                        self.stats.ping_at.append(time.time())
                elif t in ("done", "cancelled", "error"):
                    if t == "error":
                        self.stats.errors[msg.get("code")] += 1
                    sent = self.sent.pop(mid, None)
                    if sent is None:
                        if mid in self.pings:
                            self.pings.pop(mid)
                        else:
                            self.stats.duplicate_terminals += 1
                        continue
                    key = t if t != "cancelled" else f"cancelled:{msg.get('reason')}"
                    if t == "done":
                        key = f"done:{msg.get('source')}"
                        self.stats.done_ms[msg.get("source")].append((now - sent) * 1000)
                        if mid < self.latest:
                            self.stats.late_frames += 1
                    self.stats.terminals[key] += 1
                    if not self.sent:
                        self.all_done.set()
                elif t == "delta":
                    if mid < self.latest:
                        self.stats.late_frames += 1
                elif t == "status":
                    self.stats.status_frames += 1
        except ConnectionClosed as exc:
            if not self.closing:
                code = exc.rcvd.code if exc.rcvd else None
                self.stats.closed_early[str(code)] += 1

    async def type_until(self, deadline: float, cps: float, ping_every: float) -> None:
        assert self.ws is not None
        rng = random.Random(self.k)
        next_ping = time.perf_counter() + rng.uniform(0, ping_every)
        try:
            while (now := time.perf_counter()) < deadline:
                await asyncio.sleep(rng.expovariate(cps))
                self.pos = self.pos % len(self.text) + 1
                if self.protocol == "1.1":
                    frames = self.sync.suggest_frames(
                        self.text[: self.pos], self.pos, self._fresh_id
                    )
                else:
                    frames = [
                        {
                            "type": "suggest",
                            "id": self._fresh_id(),
                            "prefix": self.text[: self.pos],
                            "suffix": "",
                        }
                    ]
                self.latest = frames[-1]["id"]
                self.sent[self.latest] = time.perf_counter()
                self.all_done.clear()
                for frame in frames:
                    await self.ws.send(json.dumps(frame))
                self.stats.suggests += 1
                if now >= next_ping:
                    next_ping = now + ping_every
                    self.next_id += 1
                    self.pings[self.next_id] = time.perf_counter()
                    await self.ws.send(json.dumps({"type": "ping", "id": self.next_id}))
                    self.stats.pings += 1
        except Exception as exc:
            self.stats.closed_early[f"send:{type(exc).__name__}"] += 1

    def _fresh_id(self) -> int:
        self.next_id += 1
        return self.next_id

    async def drain(self, wait_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.all_done.wait(), wait_s)
        self.stats.missing_terminals += len(self.sent)

    async def close(self) -> None:
        self.closing = True
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close()
        if self.reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.reader, 5)


async def _typists(
    url: str,
    token: str,
    ks: list[int],
    stats: StepStats,
    sync,
    *,
    duration: float,
    cps: float,
    ping_every: float,
    connect_batch: int,
    connect_timeout: float,
    drain_timeout: float,
    text: str,
    protocol: str = "v1",
) -> None:
    """Typists ``ks``: connect, ``sync("connected")``, type, ``sync("typed")``, drain,
    ``sync("drained")``, close. ``sync`` is where the CPU and memory are read."""
    typists = [Typist(k, text, random.Random(k).randrange(len(text)), stats, protocol) for k in ks]
    t0 = time.perf_counter()
    for i in range(0, len(typists), connect_batch):
        batch = typists[i : i + connect_batch]
        await asyncio.gather(*(t.connect(url, token, connect_timeout) for t in batch))
    stats.connect_s = time.perf_counter() - t0
    live = [t for t in typists if t.ws is not None and t.reader is not None]
    await sync("connected")
    w0 = time.perf_counter()
    deadline = w0 + duration
    await asyncio.gather(*(t.type_until(deadline, cps, ping_every) for t in live))
    stats.window_s = time.perf_counter() - w0
    await sync("typed")
    await asyncio.gather(*(t.drain(drain_timeout) for t in live))
    await sync("drained")
    await asyncio.gather(*(t.close() for t in typists))


class _Meter:
    """Reads the server's (all its workers') and the emulator's CPU and RSS at the sync points."""

    def __init__(
        self, stats: StepStats, pids: dict[str, int], generators: list[int], port: int | None
    ) -> None:
        self.stats = stats
        self.pids = pids
        self.port = port
        self.generators = generators
        self.cpu0: dict[str, float] = {}
        self.t0 = 0.0
        server = pids.get("server")
        if server:
            stats.rss_base = tree_rss_bytes(server)
        self.cpu_start = self.cpu()

    def cpu(self) -> dict[str, float]:
        out = {name: tree_cpu_seconds(pid) for name, pid in self.pids.items()}
        out["generator"] = sum(cpu_seconds(pid) for pid in self.generators)
        return out

    def at(self, phase: str) -> None:
        server = self.pids.get("server")
        if phase == "connected":
            if server:
                self.stats.rss_connected = tree_rss_bytes(server)
            if server and self.port:  # how the connections were spread over the workers
                workers = process_tree(server)[1:] or [server]
                held = connections_by_pid(self.port, workers)
                self.stats.by_worker = sorted(held.values(), reverse=True)
            self.cpu0 = self.cpu()
            self.stats.connect_cpu = {k: self.cpu0[k] - self.cpu_start[k] for k in self.cpu0}
            self.t0 = time.perf_counter()
        elif phase == "typed":
            cpu1 = self.cpu()
            self.stats.cpu = {k: cpu1[k] - self.cpu0[k] for k in self.cpu0}
            self.stats.window_s = time.perf_counter() - self.t0
        elif phase == "drained" and server:
            self.stats.rss_end = tree_rss_bytes(server)


async def run_step(
    url: str,
    token: str,
    n: int,
    *,
    duration: float,
    cps: float,
    ping_every: float = 1.0,
    connect_batch: int = 100,
    connect_timeout: float = 10.0,
    drain_timeout: float = 10.0,
    pids: dict[str, int] | None = None,
    text: str = PASSAGE,
    generators: int = 1,
    protocol: str = "v1",
) -> StepStats:
    """Open ``n`` connections, type for ``duration`` seconds, drain, close; return the books.
    ``generators`` > 1 holds the typists in that many forked processes (see module doc)."""
    pids = pids or {}
    options = dict(
        duration=duration,
        cps=cps,
        ping_every=ping_every,
        connect_batch=connect_batch,
        connect_timeout=connect_timeout,
        drain_timeout=drain_timeout,
        text=text,
        protocol=protocol,
    )
    if generators > 1:
        return await asyncio.to_thread(_run_step_forked, url, token, n, generators, pids, options)
    stats = StepStats(n=n)
    meter = _Meter(stats, pids, [os.getpid()], urlparse(url).port)

    async def sync(phase: str) -> None:
        meter.at(phase)

    await _typists(url, token, list(range(n)), stats, sync, **options)
    return stats


_PHASES = ("connected", "typed", "drained")


def _run_step_forked(url, token, n, generators, pids, options) -> StepStats:
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(generators + 1)
    procs, pipes = [], []
    for g in range(generators):
        receive, send = ctx.Pipe(duplex=False)
        ks = list(range(g, n, generators))
        proc = ctx.Process(
            target=_generator_main, args=(url, token, ks, options, barrier, send), daemon=True
        )
        proc.start()
        procs.append(proc)
        pipes.append(receive)
    stats = StepStats(n=n)
    meter = _Meter(stats, pids, [p.pid for p in procs], urlparse(url).port)
    try:
        for phase in _PHASES:
            barrier.wait(timeout=600)
            meter.at(phase)  # the window is the parent's, barrier to barrier, as the CPU reading
        parts = [pipe.recv() for pipe in pipes]
    finally:
        barrier.abort()
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    for part in parts:
        stats.merge(part)
    return stats


def _generator_main(url, token, ks, options, barrier, send) -> None:
    stats = StepStats(n=len(ks))

    async def sync(phase: str) -> None:
        await asyncio.to_thread(barrier.wait, 600)

    try:
        asyncio.run(_typists(url, token, ks, stats, sync, **options))
    except BaseException:
        barrier.abort()  # the parent and the other generators stop waiting for this one
        raise
    send.send(stats.parts())


def breaks(summary: dict, p99_limit_ms: float) -> list[str]:
    """What gave at this step, if anything."""
    why = []
    if summary["refused"]:
        why.append(f"connections refused: {summary['refused']}")
    if summary["missing_terminals"]:
        why.append(f"{summary['missing_terminals']} ids without a terminal frame")
    if summary["closed_early"]:
        why.append(f"connections closed under load: {summary['closed_early']}")
    p99 = summary["ping"]["p99_ms"]
    if p99 is not None and p99 > p99_limit_ms:
        why.append(f"ping p99 {p99} ms > {p99_limit_ms} ms")
    if summary["cpu_share"].get("server", 0) >= 0.95:
        why.append(f"server CPU at {summary['cpu_share']['server']:.0%} of a core")
    return why


async def run_ramp(args: argparse.Namespace) -> dict:
    stack = start_stack(
        profile=args.profile,
        max_connections=args.max_connections,
        max_frames_per_second=args.max_frames_per_second,
        workers=args.workers,
        offline_only=args.offline_only,
        loop=args.loop,
        http=args.http,
        writers=args.writers,
        ledger=args.ledger,
        predictor=args.predictor,
        accuracy=args.accuracy,
        server_log=args.server_log,
        tls=not args.plain_http,
        http2=not args.no_http2,
    )
    pids = {"server": stack.server.pid, "emulator": stack.emulator.pid}
    steps = []
    broke_at = None
    try:
        # Warm-up, not recorded: the first suggestions load the offline tier's word list and
        # open the SDK's connections, which stalls the server once (see docs/reliability.md);
        # enough typists that every worker gets some.
        await run_step(
            stack.ws_url,
            stack.token,
            10 * args.workers,
            duration=3.0,
            cps=args.cps,
            protocol=args.protocol,
        )
        for n in args.ramp:
            stats = await run_step(
                stack.ws_url,
                stack.token,
                n,
                duration=args.duration,
                cps=args.cps,
                ping_every=args.ping_every,
                pids=pids,
                generators=args.generators,
                protocol=args.protocol,
            )
            summary = stats.summary()
            summary["breaks"] = breaks(summary, args.p99_limit_ms)
            steps.append(summary)
            print(json.dumps(summary), file=sys.stderr, flush=True)
            if summary["breaks"] and broke_at is None:
                broke_at = {"n": n, "why": summary["breaks"]}
            if stack.server.poll() is not None:
                broke_at = broke_at or {"n": n, "why": ["server process died"]}
                break
    finally:
        stack.stop()
    return {
        "config": {
            "ramp": args.ramp,
            "duration_s": args.duration,
            "cps": args.cps,
            "profile": args.profile,
            "predictor": args.predictor,
            "accuracy": args.accuracy if args.predictor == "noisy" else None,
            "ping_every_s": args.ping_every,
            "p99_limit_ms": args.p99_limit_ms,
            "cores": os.cpu_count(),
            "workers": args.workers,
            "generators": args.generators,
            "protocol": args.protocol,
            "offline_only": args.offline_only,
            "loop": args.loop,
            "http": args.http,
            "writers": args.writers,
            "ledger": args.ledger,
            "load_average_before": os.getloadavg(),
        },
        "steps": steps,
        "breaks_first_at": broke_at,
    }


def markdown_table(result: dict) -> str:
    """One row per step, the columns docs/reliability.md reports."""
    cfg = result["config"]
    head = (
        "| workers | typists | keys/s | ping p50 / p99 | type-through p99 | lost terminals "
        "| server CPU (cores) | server CPU per keystroke | generator CPU (cores) |\n"
        "|---|---|---|---|---|---|---|---|---|"
    )
    rows = [head]
    for s in result["steps"]:
        tt = s["done"].get("typethrough", {}).get("p99_ms")
        share = s["cpu_share"]
        rows.append(
            f"| {cfg['workers']} | {s['n']:,} | {s['suggests_per_s']:,} "
            f"| {s['ping']['p50_ms']} / {s['ping']['p99_ms']} ms | {tt} ms "
            f"| {s['missing_terminals'] + s['duplicate_terminals']} "
            f"| {share.get('server', 0):.2f} | {s['server_cpu_us_per_keystroke']} µs "
            f"| {share.get('generator', 0):.2f} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        p = argparse.ArgumentParser(prog="load.py serve")
        p.add_argument("--base-url", required=True)
        p.add_argument("--token", required=True)
        p.add_argument("--max-connections", type=int, default=2000)
        p.add_argument("--max-frames-per-second", type=float, default=200.0)
        p.add_argument("--offline", default="statistical")
        p.add_argument("--offline-only", action="store_true")
        p.add_argument("--workers", type=int, default=1)
        p.add_argument("--loop", default="auto", choices=("auto", "asyncio", "uvloop"))
        p.add_argument("--http", default="auto", choices=("auto", "h11", "httptools"))
        p.add_argument("--jwt-secret", default=None)
        p.add_argument("--database-url", default=None)
        p.add_argument("--log", action="store_true")
        p.add_argument("--ca-file", default=None)
        return serve_main(p.parse_args(argv[1:]))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--ramp", type=lambda s: [int(x) for x in s.split(",")], default=[1000])
    p.add_argument("--duration", type=float, default=20.0, help="typing seconds per step")
    p.add_argument("--cps", type=float, default=4.0, help="keystrokes per second per typist")
    p.add_argument("--ping-every", type=float, default=1.0)
    p.add_argument("--profile", default="fast", choices=("instant", "fast", "haiku"))
    p.add_argument(
        "--predictor",
        default="oracle",
        choices=("oracle", "noisy"),
        help="who writes the emulated suggestions: oracle (always right: typists type through "
        "most of what they are shown, an upper bound on the cheap type-through path) or noisy "
        "(right with probability --accuracy, as a real writer's suggestions are)",
    )
    p.add_argument("--accuracy", type=float, default=0.3, help="noisy predictor's hit rate")
    p.add_argument("--max-connections", type=int, default=2000)
    p.add_argument("--max-frames-per-second", type=float, default=200.0)
    p.add_argument("--p99-limit-ms", type=float, default=250.0)
    p.add_argument("--workers", type=int, default=1, help="server processes (serve --workers)")
    p.add_argument("--generators", type=int, default=1, help="client processes holding typists")
    p.add_argument(
        "--protocol",
        default="v1",
        choices=("v1", "1.1"),
        help="v1: every suggest carries the text; 1.1: open once, then suggests carrying the "
        "edit, as the web and terminal editors do",
    )
    p.add_argument("--offline-only", action="store_true", help="no API key: offline tier only")
    p.add_argument("--loop", default="auto", choices=("auto", "asyncio", "uvloop"))
    p.add_argument("--http", default="auto", choices=("auto", "h11", "httptools"))
    p.add_argument(
        "--writers",
        default="one",
        choices=("one", "distinct"),
        help="one: every typist on the static token; distinct: a writer token each, with a "
        "budget reserved and booked in the SQLite ledger on every model request",
    )
    p.add_argument(
        "--ledger",
        default="sqlite",
        choices=("sqlite", "memory"),
        help="sqlite: the usage ledger in a SQLite file, as `assistant serve` keeps it by "
        "default; memory: no database (as this tool ran before; --writers distinct needs sqlite)",
    )
    p.add_argument("--json", default=None, help="also write the result here")
    p.add_argument(
        "--plain-http",
        action="store_true",
        help="the emulator without TLS (HTTP/1.1, as before HTTP/2); default: TLS + HTTP/2",
    )
    p.add_argument(
        "--no-http2",
        action="store_true",
        help="the emulator over TLS offers HTTP/1.1 only (each cancel: a new TLS connection)",
    )
    p.add_argument(
        "--server-log",
        default=None,
        metavar="FILE",
        help="the server logs JSON lines to FILE at ASSISTANT_LOG_LEVEL, as `assistant serve` "
        "does (default: no log handler, so no line is formatted or written)",
    )
    args = p.parse_args(argv)
    if any(n <= 0 or n > 5000 for n in args.ramp) or not 0 < args.duration <= 600:
        p.error("ramp steps in 1..5000, duration in (0, 600]")
    result = asyncio.run(run_ramp(args))
    out = json.dumps(result, indent=2)
    print(out)
    print(markdown_table(result), file=sys.stderr)
    if args.json:
        Path(args.json).write_text(out + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
