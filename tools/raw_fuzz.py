"""Raw-frame fuzzer for the assistant's WebSocket server (docs/protocol.md).

Sends bursts of frames that the protocol calls bad (not JSON, not an object, unknown ``type``,
missing or wrongly typed fields, truncated JSON, an ``id`` that does not increase, fields over
their limits, frames over the byte limit) to a live server, and checks what the contract
promises: every bad frame is answered with an ``error`` frame (or, for a frame over the byte
limit, the close code 1009), and the connection stays usable: after each burst a ``ping`` with
a fresh id gets its ``pong``.

The frame generator is plain and seeded (:func:`bad_frame`), so the decoder tests use the same
frames without a server. Run it against a server you started::

    python tools/raw_fuzz.py --url ws://127.0.0.1:8765/v1/ws --token T --frames 100000

or let it start its own in-process server (``--self-serve``), which is what the pytest suite
does with a bounded count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import string
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

ERROR_CODES = frozenset(
    {"bad_request", "too_large", "rate_limited", "unavailable", "internal", "resync"}
)
FRAME_TYPES = ("suggest", "cancel", "accept", "review", "cancel_review", "ping")


@dataclass(frozen=True)
class Limits:
    """The server's limits the generator must know about (from the ``ready`` frame)."""

    max_frame_bytes: int = 16_384
    max_prefix_chars: int = 2_000
    max_suffix_chars: int = 1_000


@dataclass
class IdState:
    """Ids on one connection.

    ``used`` is the largest integer id ever sent (whatever the server made of that frame);
    ``accepted`` the largest id of a frame the server certainly accepted (a ponged ping). An id
    above ``used`` is increasing whatever the server's policy for rejected frames; an id at or
    below ``accepted`` is certainly not increasing.
    """

    used: int = 0
    accepted: int = 0

    def fresh(self, rng: random.Random) -> int:
        self.used += rng.choice((1, 1, 1, 2, 7))
        return self.used


@dataclass(frozen=True)
class BadFrame:
    """One frame to send and what the contract says must come back.

    ``expect``: ``"error"`` (an error frame, connection stays open) or ``"close_1009"``.
    ``expect_id``: the id the error frame must carry when it is certain (an increasing integer
    id on a frame that is bad for another reason); ``None`` when any id or null is acceptable.
    """

    kind: str
    payload: str | bytes
    expect: str = "error"
    expect_id: int | None = None
    expect_code: str | None = None


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


# The kinds of bad frame the generator makes (besides "oversized", sent alone: it closes 1009).
CATEGORIES = (
    "not_json",
    "truncated",
    "non_object",
    "unknown_type",
    "missing_field",
    "wrong_id_type",
    "wrong_field_type",
    "out_of_order",
    "prefix_too_long",
    "suffix_too_long",
    "deep_nesting",
    "bad_number",
)


def _junk_text(rng: random.Random, n: int) -> str:
    alphabet = string.printable + "éß€𝄞😀\u200b\u202e\x00\x7f"
    return "".join(rng.choice(alphabet) for _ in range(n))


def _valid_frame(rng: random.Random, ids: IdState) -> dict:
    return _valid_frame_of(rng, ids, rng.choice(FRAME_TYPES), max_text=40)


_REQUIRED = {
    "suggest": ("id", "prefix"),
    "cancel": ("id",),
    "accept": ("id",),
    "review": ("id", "text"),
    "cancel_review": ("id",),
}
_WRONG_IDS = ("7", 7.5, True, False, None, [], {}, [7], "", "1e3", -0.5)
_WRONG_STRINGS = (0, 1, -1, 2.5, True, None, [], {}, ["a"], {"a": "b"})


def bad_frame(rng: random.Random, ids: IdState, limits: Limits) -> BadFrame:
    """One frame the protocol calls bad, chosen at random among the categories."""
    roll = rng.random()
    if roll < 0.01:
        # Over the byte limit: the server closes with 1009.
        size = limits.max_frame_bytes + rng.randint(1, 4096)
        pad = "x" * size
        return BadFrame(
            "oversized",
            _dumps({"type": "suggest", "id": ids.used + 1, "prefix": pad}),
            "close_1009",
        )
    kind = rng.choice(CATEGORIES)
    if kind == "out_of_order" and ids.accepted < 1:
        kind = "wrong_id_type"  # nothing certainly accepted yet: no id is certainly stale
    if kind == "not_json":
        choices = (
            "",
            " ",
            "{",
            "}",
            "nul",
            "{'type':'ping','id':1}",
            '{"type":"ping","id":1} trailing',
            '{"type":"ping",}',
            "\x00",
            _junk_text(rng, rng.randint(1, 60)),
        )
        payload = rng.choice(choices)
        try:  # the junk text might parse by chance ("1", "[]"); then it is a non-object instead
            json.loads(payload)
            payload = "{" + payload
        except ValueError:
            pass
        return BadFrame(kind, payload)
    if kind == "truncated":
        text = _dumps(_valid_frame(rng, ids))
        return BadFrame(kind, text[: rng.randint(1, len(text) - 1)])
    if kind == "non_object":
        value = rng.choice(
            (
                [],
                [{"type": "ping", "id": ids.used + 1}],
                1,
                -3.5,
                "ping",
                None,
                True,
                False,
                _junk_text(rng, 5),
            )
        )
        return BadFrame(kind, _dumps(value))
    if kind == "unknown_type":
        fid = ids.fresh(rng)
        t = rng.choice(
            (
                "PING",
                "Ping",
                "",
                "pong",
                "ready",
                "done",
                "delta",
                "error",
                "status",
                " suggest",
                "suggest\x00",
                1,
                None,
                [],
                {},
                True,
                _junk_text(rng, 8),
            )
        )
        frame: dict[str, Any] = {"type": t, "id": fid}
        if rng.random() < 0.3:
            del frame["type"]
        return BadFrame(kind, _dumps(frame))
    if kind == "missing_field":
        ftype = rng.choice(tuple(_REQUIRED))
        ids_before = ids.used
        frame = _valid_frame_of(rng, ids, ftype)
        missing = rng.choice(_REQUIRED[ftype])
        del frame[missing]
        fid = frame.get("id")
        expect_id = fid if ftype in ("suggest", "review") and fid and fid > ids_before else None
        return BadFrame(kind, _dumps(frame), expect_id=expect_id)
    if kind == "wrong_id_type":
        frame = _valid_frame_of(rng, ids, rng.choice(FRAME_TYPES))
        frame["id"] = rng.choice(_WRONG_IDS)
        return BadFrame(kind, _dumps(frame))
    if kind == "wrong_field_type":
        ftype = rng.choice(("suggest", "accept", "review"))
        frame = _valid_frame_of(rng, ids, ftype)
        fname = {"suggest": rng.choice(("prefix", "suffix")), "accept": "chars", "review": "text"}[
            ftype
        ]
        frame[fname] = rng.choice(_WRONG_STRINGS if fname != "chars" else _WRONG_IDS)
        # accept refers to an earlier id (whose terminal frame was already sent): its error
        # carries no id, so a request never gets a second terminal frame.
        expect_id = frame["id"] if ftype != "accept" else None
        return BadFrame(kind, _dumps(frame), expect_id=expect_id)
    if kind == "out_of_order":
        # Only frames that open something need a new id (cancel/accept name an earlier one).
        ftype = rng.choice(("suggest", "review", "ping"))
        frame = _valid_frame_of(rng, ids, ftype)
        # At or below the last id the server certainly accepted.
        frame["id"] = rng.randint(ids.accepted - 3, ids.accepted)
        return BadFrame(kind, _dumps(frame))
    if kind == "prefix_too_long":
        frame = {
            "type": "suggest",
            "id": ids.fresh(rng),
            "prefix": "a" * (limits.max_prefix_chars + rng.randint(1, 50)),
            "suffix": "",
        }
        return BadFrame(kind, _dumps(frame), expect_id=frame["id"], expect_code="too_large")
    if kind == "suffix_too_long":
        frame = {
            "type": "suggest",
            "id": ids.fresh(rng),
            "prefix": "Hello ",
            "suffix": "b" * (limits.max_suffix_chars + rng.randint(1, 50)),
        }
        return BadFrame(kind, _dumps(frame), expect_id=frame["id"], expect_code="too_large")
    if kind == "deep_nesting":
        depth = rng.randint(600, min(4000, limits.max_frame_bytes // 2 - 10))
        return BadFrame(kind, "[" * depth + "]" * depth)
    # bad_number: NaN / Infinity / huge exponents are not JSON (or not an id)
    fid = ids.used + 1
    payload = rng.choice(
        (
            f'{{"type":"ping","id":NaN,"x":{fid}}}',
            '{"type":"ping","id":Infinity}',
            '{"type":"ping","id":-Infinity}',
            '{"type":"ping","id":1e400}',
            '{"type":"ping","id":0x10}',
            '{"type":"ping","id":01}',
        )
    )
    return BadFrame(kind, payload)


def _valid_frame_of(rng: random.Random, ids: IdState, ftype: str, max_text: int = 30) -> dict:
    frame: dict[str, Any] = {"type": ftype, "id": ids.fresh(rng)}
    if ftype == "suggest":
        frame["prefix"] = _junk_text(rng, rng.randint(0, max_text))
        frame["suffix"] = ""
    elif ftype == "accept":
        frame["chars"] = rng.randint(0, 20)
    elif ftype == "review":
        frame["text"] = _junk_text(rng, rng.randint(0, max_text))
    return frame


# ------------------------------------------------------------------------------------------
# The live driver


@dataclass
class FuzzReport:
    frames_sent: int = 0
    bad_frames: int = 0
    errors_received: int = 0
    closes_1009: int = 0
    bursts: int = 0
    pongs: int = 0
    connections: int = 0
    by_kind: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {
            "frames_sent": self.frames_sent,
            "bad_frames": self.bad_frames,
            "errors_received": self.errors_received,
            "closes_1009": self.closes_1009,
            "bursts": self.bursts,
            "pongs": self.pongs,
            "connections": self.connections,
            "by_kind": dict(self.by_kind),
            "failures": self.failures[:20],
            "failure_count": len(self.failures),
            "seconds": round(self.seconds, 2),
        }


def _connect_kwargs(token: str | None) -> dict:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return {
        "additional_headers": headers,
        "max_size": None,
        "compression": None,
        "open_timeout": 10,
        "close_timeout": 2,
        "ping_interval": None,
    }


async def _recv_json(ws: Any, wait_s: float) -> dict:
    raw = await asyncio.wait_for(ws.recv(), wait_s)
    return json.loads(raw)


async def _fuzz_connection(
    url: str,
    token: str | None,
    rng: random.Random,
    limits: Limits,
    budget: int,
    burst: int,
    report: FuzzReport,
    wait_s: float,
) -> int:
    """Fuzz one connection until ``budget`` frames are sent or the server closes it (1009).

    Returns the number of frames sent.
    """
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    sent = 0
    ids = IdState()
    async with connect(url, **_connect_kwargs(token)) as ws:
        report.connections += 1
        ready = await _recv_json(ws, wait_s)
        if ready.get("type") != "ready":
            report.failures.append(f"first frame not ready: {ready!r}")
            return sent
        while sent < budget:
            frames = [bad_frame(rng, ids, limits) for _ in range(min(burst, budget - sent))]
            # An oversized frame ends the connection, and the transport closes it as soon as it
            # parses it, before the app has answered the frames ahead of it in the same read. So
            # the rest of the burst is answered and ponged first, then it goes alone.
            oversized = [f for f in frames if f.expect == "close_1009"][:1]
            frames = [f for f in frames if f.expect != "close_1009"]
            for f in frames:
                await ws.send(f.payload)
                report.by_kind[f.kind] += 1
            sent += len(frames)
            report.frames_sent += len(frames)
            report.bad_frames += len(frames)
            report.bursts += 1
            ping_id = ids.used + 1
            ids.used = ping_id
            await ws.send(_dumps({"type": "ping", "id": ping_id}))
            report.frames_sent += 1
            if not await _expect_errors(ws, frames, report, wait_s, ping_id=ping_id):
                return sent
            ids.accepted = ping_id
            report.pongs += 1
            if oversized:
                await ws.send(oversized[0].payload)
                report.by_kind["oversized"] += 1
                sent += 1
                report.frames_sent += 1
                report.bad_frames += 1
                try:
                    while True:
                        msg = await _recv_json(ws, wait_s)
                        report.failures.append(f"frame after oversized: {msg!r}")
                except ConnectionClosed as exc:
                    code = exc.rcvd.code if exc.rcvd else None
                    if code == 1009:
                        report.closes_1009 += 1
                    else:
                        report.failures.append(f"oversized frame closed with {code}, not 1009")
                except TimeoutError:
                    report.failures.append("oversized frame: no close within timeout")
                return sent
    return sent


async def _expect_errors(
    ws: Any, frames: list[BadFrame], report: FuzzReport, wait_s: float, ping_id: int | None
) -> bool:
    """Read one error per frame (in order) and then the pong for ``ping_id``."""
    from websockets.exceptions import ConnectionClosed

    want = len(frames)
    got = 0
    try:
        while got < want or ping_id is not None:
            msg = await _recv_json(ws, wait_s)
            mtype = msg.get("type")
            if mtype == "error":
                if got >= want:
                    report.failures.append(f"extra error frame: {msg!r}")
                    continue
                f = frames[got]
                got += 1
                report.errors_received += 1
                if msg.get("code") not in ERROR_CODES:
                    report.failures.append(f"{f.kind}: unknown error code in {msg!r}")
                if f.expect_code and msg.get("code") != f.expect_code:
                    report.failures.append(f"{f.kind}: want code {f.expect_code}, got {msg!r}")
                if f.expect_id is not None and msg.get("id") != f.expect_id:
                    report.failures.append(
                        f"{f.kind}: error id {msg.get('id')!r}, want {f.expect_id}: {f.payload[:80]!r}"
                    )
                if not isinstance(msg.get("message"), str):
                    report.failures.append(f"{f.kind}: error without message: {msg!r}")
            elif mtype == "pong":
                if msg.get("id") != ping_id:
                    report.failures.append(f"pong id {msg.get('id')!r}, want {ping_id}")
                if got < want:
                    missing = [f"{f.kind}:{f.payload[:60]!r}" for f in frames[got:]]
                    report.failures.append(f"pong before {want - got} error(s): {missing[:5]}")
                return True
            else:
                report.failures.append(f"unexpected frame for bad input: {msg!r}")
        return True
    except ConnectionClosed as exc:
        code = exc.rcvd.code if exc.rcvd else None
        report.failures.append(f"connection closed ({code}) after {got}/{want} errors")
        return False
    except TimeoutError:
        nxt = frames[got] if got < want else None
        report.failures.append(
            f"timeout waiting for {'error' if nxt else 'pong'}"
            + (f" for {nxt.kind}: {nxt.payload[:80]!r}" if nxt else "")
        )
        return False


async def run_raw_fuzz(
    url: str,
    token: str | None,
    *,
    frames: int = 2000,
    seed: int = 0,
    limits: Limits | None = None,
    connections: int = 4,
    burst: int = 25,
    per_connection: int = 500,
    wait_s: float = 5.0,
) -> FuzzReport:
    """Send ``frames`` bad frames over ``connections`` concurrent streams of connections.

    Each stream opens a connection, fuzzes it for up to ``per_connection`` frames (fewer when
    an oversized frame closes it) and reconnects until its share is sent.
    """
    limits = limits or Limits()
    report = FuzzReport()
    start = time.perf_counter()

    async def stream(k: int, share: int) -> None:
        rng = random.Random(seed * 1000 + k)
        left = share
        while left > 0:
            try:
                n = await _fuzz_connection(
                    url, token, rng, limits, min(per_connection, left), burst, report, wait_s
                )
            except Exception as exc:  # connection refused, handshake failure: a finding
                report.failures.append(f"stream {k}: {type(exc).__name__}: {exc}")
                return
            if n == 0:
                return
            left -= n

    shares = [
        frames // connections + (1 if i < frames % connections else 0) for i in range(connections)
    ]
    await asyncio.gather(*(stream(k, s) for k, s in enumerate(shares)))
    report.seconds = time.perf_counter() - start
    return report


async def _self_served(args: argparse.Namespace) -> FuzzReport:
    """Start an in-process server with small limits and fuzz it."""
    from assistant.config import Settings
    from server.runner import ServerHandle

    limits = Limits()
    settings = Settings(
        token="fuzz-token",
        max_frame_bytes=limits.max_frame_bytes,
        max_prefix_chars=limits.max_prefix_chars,
        max_suffix_chars=limits.max_suffix_chars,
        max_frames_per_second=1e9,
        offline="statistical",
    )
    async with ServerHandle(settings) as srv:
        return await run_raw_fuzz(
            srv.ws_url,
            srv.token,
            frames=args.frames,
            seed=args.seed,
            limits=limits,
            connections=args.connections,
            burst=args.burst,
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--url", help="ws://HOST:PORT/v1/ws of a running server")
    p.add_argument("--token", default=None)
    p.add_argument("--self-serve", action="store_true", help="start an in-process server")
    p.add_argument("--frames", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--connections", type=int, default=4)
    p.add_argument("--burst", type=int, default=25)
    p.add_argument("--max-frame-bytes", type=int, default=Limits.max_frame_bytes)
    p.add_argument("--max-prefix-chars", type=int, default=Limits.max_prefix_chars)
    p.add_argument("--max-suffix-chars", type=int, default=Limits.max_suffix_chars)
    args = p.parse_args(argv)
    if args.self_serve:
        report = asyncio.run(_self_served(args))
    elif args.url:
        limits = Limits(args.max_frame_bytes, args.max_prefix_chars, args.max_suffix_chars)
        report = asyncio.run(
            run_raw_fuzz(
                args.url,
                args.token,
                frames=args.frames,
                seed=args.seed,
                limits=limits,
                connections=args.connections,
                burst=args.burst,
            )
        )
    else:
        p.error("give --url or --self-serve")
    print(json.dumps(report.as_dict(), indent=2))
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
