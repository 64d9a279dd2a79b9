"""A typist at the other end of the WebSocket: replays a trace with its real timing and records
what the server sent back, for the latency suite and the benchmark.

One ``suggest`` frame per keystroke (the cursor stays at the end of the document), sent when the
trace says the key was pressed. Every frame received is timed on arrival, so the figures are what
a user would see: keystroke to first visible character of a suggestion, end to end.

With an :class:`AcceptingTypist` the typist also reads the ghost text: a ghost that has been on
screen for the reaction time and matches what they were going to type is accepted, whole (Tab)
when all of it matches, else word by word (Ctrl+Right) while its next word matches. An accept
sends the ``accept`` frame and then a ``suggest`` with the text inserted (as the editors do), the
trace's keystrokes that would have typed that text are skipped, and the typist types on from
there. The screen is modelled as the editors keep it: typing the ghost's next character consumes
it at once, any other key hides it, and frames for the latest id replace it.
"""

from __future__ import annotations

import asyncio
import json
import ssl as ssl_module
from collections.abc import Sequence
from dataclasses import dataclass, field

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from ..emulator.text import between_tags, last_user_text
from ..suggest.text import next_word
from ..suggest.usefulness import PAUSE_MS, Usefulness, UsefulnessTracker
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
    key: str = "type"  # what sent it: "type", "backspace" or "accept" (a Tab / Ctrl+Right)

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
    duration_s: float = 0.0  # first keystroke to the last terminal frame (or the settle timeout)
    typing_s: float = 0.0  # first keystroke to the last
    usefulness: Usefulness = field(default_factory=Usefulness)
    initial_text: str = ""
    final_text: str = ""  # the document when the typist stopped
    closed: str = ""  # the server closed the connection before the typist was done: how

    @property
    def chars_written(self) -> int:
        return max(0, len(self.final_text) - len(self.initial_text))

    def visible(self) -> list[Suggestion]:
        return [s for s in self.suggestions if s.first_visible_at is not None]

    @property
    def violations(self) -> list[str]:
        """Broken guarantees: a terminal count other than one, a stale frame, an unknown id."""
        out = []
        for s in self.suggestions:
            if s.terminals == 0 and self.closed:
                continue  # in flight when the connection closed: that is a disconnect
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
    return between_tags(last_user_text(body), "text_before_cursor")


@dataclass(frozen=True)
class AcceptingTypist:
    """A typist who reads and accepts ghost text. ``target`` is the whole text they mean to write
    (what the trace ends with); a ghost is taken only where the document so far is a prefix of it
    and the ghost continues it."""

    target: str
    reaction_ms: float = 250.0  # a ghost must have been on screen this long to be read
    accept_key_ms: float = 120.0  # between two Ctrl+Right presses
    min_chars: int = 2  # an accept must take more characters than the one key it costs

    def choose(self, document: str, ghost: str) -> tuple[str, str] | None:
        """("tab", text) or ("word", text) to take from ``ghost``, or None."""
        if not ghost or not self.target.startswith(document):
            return None
        meant = self.target[len(document) :]
        if meant.startswith(ghost) and len(ghost) >= self.min_chars and ghost.strip():
            return "tab", ghost
        word = next_word(ghost)
        if meant.startswith(word) and len(word) >= self.min_chars and word.strip():
            return "word", word
        return None


def _documents(initial: str, events: Sequence[Keystroke]) -> list[str]:
    docs, doc = [], initial
    for ev in events:
        doc = ev.apply(doc)
        docs.append(doc)
    return docs


async def replay(
    ws_url: str,
    token: str,
    events: Sequence[Keystroke],
    *,
    initial_text: str = "",
    suffix: str = "",
    name: str = "",
    time_scale: float = 1.0,
    settle_s: float = 5.0,
    connect_timeout_s: float = 10.0,
    typist: AcceptingTypist | None = None,
    ssl: ssl_module.SSLContext | None = None,
    keep_on_close: bool = False,
) -> ReplayResult:
    """Type ``events`` into a fresh connection at their recorded pace (``time_scale`` < 1 types
    faster) and return what came back. Waits up to ``settle_s`` after the last keystroke for
    the terminal frame of every id. With ``typist``, matching ghosts are accepted (see the
    module's docstring) and the keystrokes they cover are skipped. ``ssl``: the context a
    ``wss://`` endpoint is verified with. ``keep_on_close``: when the server closes the
    connection once it is ready, return what was seen so far, with ``closed`` saying how, instead
    of raising. ``suffix``: the text after the cursor, which the typist never reaches."""
    loop = asyncio.get_running_loop()
    sent: dict[int, Suggestion] = {}
    result = ReplayResult(name=name, keystrokes=0, suggestions=[], initial_text=initial_text)
    state = {"newest_sent": 0, "newest_seen": 0, "typing": True}
    all_done = asyncio.Event()
    screen_changed = asyncio.Event()
    tracker = UsefulnessTracker()
    streamed: dict[int, str] = {}  # text of each id's deltas so far
    doc = initial_text

    def show(text: str, at: float) -> None:
        tracker.ghost(at, doc, text)
        screen_changed.set()

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
        if fid == state["newest_sent"]:  # what the editor shows: the latest id's text only
            if kind == "delta":
                streamed[fid] = streamed.get(fid, "") + str(frame.get("text") or "")
                show(streamed[fid], at)
            elif kind == "done":
                show(str(frame.get("text") or ""), at)
            elif kind in TERMINAL_FRAMES:
                show("", at)
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
            if not state["typing"] and all(x.terminal for x in sent.values()):
                all_done.set()

    tls = {"ssl": ssl} if ssl is not None else {}
    async with connect(
        ws_url,
        additional_headers={"Authorization": f"Bearer {token}"},
        open_timeout=connect_timeout_s,
        max_size=None,
        compression=None,
        **tls,
    ) as ws:
        result.ready = json.loads(await asyncio.wait_for(ws.recv(), connect_timeout_s))

        async def receive() -> None:
            try:
                async for raw in ws:
                    at = loop.time()
                    try:
                        frame = json.loads(raw)
                    except ValueError:
                        continue
                    if isinstance(frame, dict):
                        on_frame(frame, at)
            finally:
                all_done.set()  # the connection is gone: nothing more will come
                screen_changed.set()

        async def send_suggest(key: str) -> None:
            i = len(sent) + 1
            frame = {"type": "suggest", "id": i, "prefix": doc, "suffix": suffix}
            sent[i] = Suggestion(i, doc, loop.time(), key=key)
            state["newest_sent"] = i
            await ws.send(json.dumps(frame))

        async def wait_screen(until: float) -> None:
            """Sleep until ``until`` or until the screen changes, whichever is first."""
            screen_changed.clear()
            try:
                await asyncio.wait_for(screen_changed.wait(), max(0.0, until - loop.time()))
            except TimeoutError:
                pass

        receiver = asyncio.create_task(receive())
        docs = _documents(initial_text, events)
        t0 = loop.time()
        try:
            shift = 0.0  # seconds the remaining keystrokes moved (earlier) after accepts
            last_accept = float("-inf")
            i = 0
            while i < len(events):
                due = t0 + events[i].t_ms / 1000 * time_scale + shift
                now = loop.time()
                since = tracker.ghost_since
                if typist is not None and since is not None:
                    choice = typist.choose(doc, tracker.ghost_text)
                    read_at = max(
                        since + typist.reaction_ms / 1000, last_accept + typist.accept_key_ms / 1000
                    )
                    if choice is not None and read_at <= min(now, due):
                        _, text = choice  # Tab or Ctrl+Right: the same frames, one key each
                        ghost_id = state["newest_sent"]
                        now = loop.time()
                        tracker.key(now, "accept", len(text))
                        await ws.send(
                            json.dumps({"type": "accept", "id": ghost_id, "chars": len(text)})
                        )
                        rest = tracker.ghost_text[len(text) :]
                        doc += text
                        show(rest, now)
                        await send_suggest("accept")
                        last_accept = now
                        # The keystrokes that would have typed it are skipped; the typist goes on
                        # with the gap that followed the last of them (and may press the accept
                        # key again first, while the ghost still agrees).
                        j = next((k for k in range(i, len(events)) if docs[k] == doc), None)
                        if j is None:
                            break  # took the typist past the end of what this run types
                        i = j + 1
                        if i < len(events):
                            gap = (events[i].t_ms - events[j].t_ms) / 1000 * time_scale
                            gap = max(gap, typist.accept_key_ms / 1000 + 0.001)
                            shift = now + gap - (t0 + events[i].t_ms / 1000 * time_scale)
                        continue
                    if choice is not None and read_at < due:
                        await wait_screen(read_at)
                        continue
                if now < due:
                    if typist is None:
                        await asyncio.sleep(due - now)
                    else:
                        await wait_screen(due)  # a ghost may come to read before the key
                    continue
                ev = events[i]
                i += 1
                ghost = tracker.ghost_text
                now = loop.time()
                gap_ms = (events[i].t_ms - ev.t_ms) * time_scale if i < len(events) else None
                planned_pause = None if gap_ms is None else gap_ms >= PAUSE_MS
                tracker.key(now, ev.kind, pause=planned_pause)
                doc = ev.apply(doc)
                typed_through = ev.kind == "type" and bool(ev.text) and ghost.startswith(ev.text)
                show(ghost[len(ev.text) :] if typed_through else "", now)
                await send_suggest(ev.kind)
            state["typing"] = False
            result.typing_s = max((x.sent_at for x in sent.values()), default=t0) - t0
            if all(x.terminal for x in sent.values()):
                all_done.set()
            try:
                await asyncio.wait_for(all_done.wait(), settle_s)
            except TimeoutError:
                pass
            result.duration_s = loop.time() - t0
        except ConnectionClosed as exc:
            if not keep_on_close:
                raise
            rcvd = exc.rcvd
            result.closed = f"{rcvd.code} {rcvd.reason}".strip() if rcvd else "no close frame"
            result.typing_s = max((x.sent_at for x in sent.values()), default=t0) - t0
            result.duration_s = loop.time() - t0
        finally:
            receiver.cancel()
            try:
                await receiver
            except (asyncio.CancelledError, Exception):
                pass
        if keep_on_close and not result.closed and ws.close_code is not None:
            result.closed = f"{ws.close_code} {ws.close_reason or ''}".strip()
    result.usefulness = tracker.finish(loop.time())
    result.final_text = doc
    result.suggestions = [sent[i] for i in sorted(sent)]
    result.keystrokes = len(result.suggestions)
    return result
