"""A typist at the other end of the WebSocket: replays a trace with its real timing and records
what the server sent back, for the latency suite and the benchmark.

One ``suggest`` frame per keystroke (the cursor stays at the end of the document), sent when the
trace says the key was pressed. Every frame received is timed on arrival, so the figures are what
a user would see: keystroke to first visible character of a suggestion, end to end.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from websockets.asyncio.client import connect

from .emulator.text import last_user_text
from .traces import Keystroke

SUGGESTION_FRAMES = ("delta", "done")
TERMINAL_FRAMES = ("done", "cancelled", "error")


@dataclass
class Suggestion:
    """What the client saw for one ``suggest`` id."""

    id: int
    prefix: str
    sent_at: float
    first_visible_at: float | None = None  # first delta, or done with text
    terminal: str | None = None  # "done" | "cancelled" | "error"
    terminal_at: float | None = None
    terminals: int = 0  # must end up exactly 1
    source: str | None = None
    text: str = ""
    reason: str = ""  # of a cancelled/error frame
    server_latency_ms: float | None = None
    model: str = ""
    usage: dict | None = None
    cost_usd: float = 0.0
    after_newer: int = 0  # delta/done frames after a frame for a newer id: a protocol violation
    crossed: int = 0  # delta/done that arrived after the client sent a newer id (crossed on wire)

    @property
    def visible_ms(self) -> float | None:
        if self.first_visible_at is None:
            return None
        return (self.first_visible_at - self.sent_at) * 1000

    @property
    def round_trip_ms(self) -> float | None:
        if self.terminal_at is None:
            return None
        return (self.terminal_at - self.sent_at) * 1000

    @property
    def shown_source(self) -> str | None:
        """Where the first visible text came from (a streamed one later superseded: "model")."""
        if self.first_visible_at is None:
            return None
        return self.source if self.terminal == "done" and self.source else "model"


@dataclass
class ReplayResult:
    name: str
    keystrokes: int
    suggestions: list[Suggestion]
    ready: dict = field(default_factory=dict)
    unmatched_frames: int = 0  # frames for ids never sent
    status_frames: int = 0  # the provider degraded or recovered
    duration_s: float = 0.0

    def visible(self) -> list[Suggestion]:
        return [s for s in self.suggestions if s.first_visible_at is not None]

    @property
    def violations(self) -> list[str]:
        """Broken guarantees: a terminal count other than one, a stale frame, an unknown id."""
        out = []
        for s in self.suggestions:
            if s.terminals != 1:
                out.append(f"id {s.id}: {s.terminals} terminal frames")
            if s.after_newer:
                out.append(f"id {s.id}: {s.after_newer} frames after a newer id's")
        if self.unmatched_frames:
            out.append(f"{self.unmatched_frames} frames for ids never sent")
        return out


def requested_prefix(body: dict | None) -> str | None:
    """The text before the cursor that an Anthropic request (as the emulator recorded it) asked
    about, from the suggestion prompt's ``<text_before_cursor>`` block."""
    if not isinstance(body, dict):
        return None
    text = last_user_text(body)
    tag = "<text_before_cursor>"
    start = text.find(tag)
    if start < 0:
        return None
    start += len(tag)
    end = text.find("</text_before_cursor>", start)
    return text[start:] if end < 0 else text[start:end]


async def replay(
    ws_url: str,
    token: str,
    events: Sequence[Keystroke],
    *,
    initial_text: str = "",
    name: str = "",
    time_scale: float = 1.0,
    settle_s: float = 5.0,
    connect_timeout_s: float = 10.0,
) -> ReplayResult:
    """Type ``events`` into a fresh connection at their recorded pace (``time_scale`` < 1 types
    faster) and return what came back. Waits up to ``settle_s`` after the last keystroke for
    the terminal frame of every id."""
    loop = asyncio.get_running_loop()
    sent: dict[int, Suggestion] = {}
    result = ReplayResult(name=name, keystrokes=len(events), suggestions=[])
    state = {"newest_sent": 0, "newest_seen": 0}
    all_done = asyncio.Event()

    def on_frame(frame: dict, at: float) -> None:
        kind = frame.get("type")
        fid = frame.get("id")
        if kind == "status":
            result.status_frames += 1
        if kind not in SUGGESTION_FRAMES and kind not in TERMINAL_FRAMES:
            return
        s = sent.get(fid) if isinstance(fid, int) else None
        if s is None:
            result.unmatched_frames += 1
            return
        if kind in SUGGESTION_FRAMES:
            if fid < state["newest_seen"]:
                s.after_newer += 1
            if fid < state["newest_sent"]:
                s.crossed += 1
        state["newest_seen"] = max(state["newest_seen"], fid)
        if kind == "delta" or (kind == "done" and frame.get("text")):
            if s.first_visible_at is None:
                s.first_visible_at = at
        if kind in TERMINAL_FRAMES:
            s.terminals += 1
            if s.terminal is None:
                s.terminal, s.terminal_at = kind, at
                s.reason = str(frame.get("reason") or frame.get("code") or "")
            if kind == "done":
                s.source = frame.get("source")
                s.text = frame.get("text") or ""
                s.server_latency_ms = frame.get("latency_ms")
                s.model = frame.get("model") or ""
                s.usage = frame.get("usage")
                s.cost_usd = float(frame.get("cost_usd") or 0.0)
            if len(sent) == len(events) and all(x.terminal for x in sent.values()):
                all_done.set()

    async with connect(
        ws_url,
        additional_headers={"Authorization": f"Bearer {token}"},
        open_timeout=connect_timeout_s,
        max_size=None,
        compression=None,
    ) as ws:
        result.ready = json.loads(await asyncio.wait_for(ws.recv(), connect_timeout_s))

        async def receive() -> None:
            async for raw in ws:
                at = loop.time()
                try:
                    frame = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(frame, dict):
                    on_frame(frame, at)

        receiver = asyncio.create_task(receive())
        try:
            doc = initial_text
            t0 = loop.time()
            for i, ev in enumerate(events, 1):
                delay = t0 + ev.t_ms / 1000 * time_scale - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                doc = ev.apply(doc)
                frame = {"type": "suggest", "id": i, "prefix": doc, "suffix": ""}
                sent[i] = Suggestion(i, doc, loop.time())
                state["newest_sent"] = i
                await ws.send(json.dumps(frame))
            if not events:
                all_done.set()
            try:
                await asyncio.wait_for(all_done.wait(), settle_s)
            except TimeoutError:
                pass
            result.duration_s = loop.time() - t0
        finally:
            receiver.cancel()
            try:
                await receiver
            except (asyncio.CancelledError, Exception):
                pass
    result.suggestions = [sent[i] for i in sorted(sent)]
    return result
