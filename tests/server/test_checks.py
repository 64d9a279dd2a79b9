"""Corrections as you type over the WebSocket API, on the offline tier: each finished sentence
gets one ``check`` frame, misspellings and doubled words flagged with their replacement within
1.5 s of the sentence's end, clean sentences never flagged."""

from __future__ import annotations

import asyncio
import contextlib

import orjson
import pytest

from assistant.check import spelling

from .conftest import client

# (sentence, the flagged quotes and their replacements); typed one after another.
PARAGRAPH = [
    ("The report is definately ready.", {"definately": "definitely"}),
    ("Everyone liked the summary.", {}),
    ("We will send it to the the board on Friday.", {" the": ""}),
    ("Please recieve it with care untill then.", {"recieve": "receive", "untill": "until"}),
    ("Thanks for your help.", {}),
]
KEY_INTERVAL_S = 0.03  # a fast typist: 33 characters a second, never pausing mid-paragraph
DEADLINE_S = 1.5


class Recorder:
    """Reads every frame as it arrives, stamping its arrival on the loop's clock."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.frames: list[tuple[float, dict]] = []
        self.changed = asyncio.Event()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(Exception):
            async for raw in self.ws:
                self.frames.append((loop.time(), orjson.loads(raw)))
                self.changed.set()

    def checks(self) -> list[tuple[float, dict]]:
        return [(t, f) for t, f in self.frames if f["type"] == "check"]

    async def until(self, pred, timeout: float) -> None:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            while not pred():
                self.changed.clear()
                await self.changed.wait()


async def _type(c, send_text, paragraph):
    """Type ``paragraph`` key by key; the time each sentence's end punctuation was sent."""
    loop = asyncio.get_running_loop()
    text, ends = "", {}
    for i, (sentence, _) in enumerate(paragraph):
        for ch in (" " if i else "") + sentence:
            text += ch
            await send_text(text)
            await asyncio.sleep(KEY_INTERVAL_S)  # the typist's pace, not a synchronisation
        ends[sentence] = (loop.time(), text.index(sentence))
    return text, ends


def _assert_flagged_in_time(rec: Recorder, text: str, ends: dict) -> None:
    for sentence, expected in PARAGRAPH:
        ended, start = ends[sentence]
        mine = [
            (t, f)
            for t, f in rec.checks()
            if f["sentence"] == {"start": start, "end": start + len(sentence)}
        ]
        assert mine, f"no check for {sentence!r}"
        arrived, frame = mine[-1]
        got = {x["quote"]: x["replacement"] for x in frame["findings"]}
        assert got == expected, sentence
        for x in frame["findings"]:
            assert text[x["start"] : x["end"]] == x["quote"]
            assert x["source"] == "offline" and x["message"]
        if expected:
            first = next(t for t, f in mine if f["findings"])
            assert first - ended <= DEADLINE_S, f"{sentence!r} flagged after {first - ended:.2f} s"
    flagged = [x for _, f in rec.checks() for x in f["findings"]]
    for sentence, expected in PARAGRAPH:
        if not expected:  # a clean sentence is never flagged, by any check
            start = text.index(sentence)
            assert not [x for x in flagged if start <= x["start"] < start + len(sentence)]


async def test_typing_a_paragraph_flags_misspellings_and_a_doubled_word_in_time(offline_server):
    async with client(offline_server) as c:
        rec = Recorder(c.ws)
        reader = asyncio.create_task(rec.run())
        text, ends = await _type(c, lambda t: c.suggest(t), PARAGRAPH)
        await rec.until(lambda: len({f["sentence"]["start"] for _, f in rec.checks()}) >= 5, 5)
        reader.cancel()
    _assert_flagged_in_time(rec, text, ends)
    # each sentence is checked once: one frame each, although every keystroke re-sent it
    assert len(rec.checks()) == len(PARAGRAPH)


async def test_typing_through_protocol_1_1_edits_is_checked_the_same(offline_server):
    async with client(offline_server) as c:
        rec = Recorder(c.ws)
        reader = asyncio.create_task(rec.run())
        await c.send({"type": "open", "id": c.new_id(), "text": "", "cursor": 0})
        state = {"text": "", "version": c._id}

        async def edit(new: str) -> None:
            old, fid = state["text"], c.new_id()
            change = [len(old), len(old), new[len(old) :]]
            frame = {"type": "edit", "id": fid, "base": state["version"], "changes": [change]}
            await c.send(frame | {"cursor": len(new)})
            state.update(text=new, version=fid)

        text, ends = await _type(c, edit, PARAGRAPH)
        await rec.until(lambda: len({f["sentence"]["start"] for _, f in rec.checks()}) >= 5, 5)
        reader.cancel()
    _assert_flagged_in_time(rec, text, ends)
    assert all(f["version"] <= state["version"] for _, f in rec.checks())


async def test_an_edited_sentence_is_checked_again_and_an_unchanged_one_never(offline_server):
    async with client(offline_server) as c:
        rec = Recorder(c.ws)
        reader = asyncio.create_task(rec.run())
        first = "Teh plan is good. "
        await c.suggest(first + "More")
        await rec.until(lambda: len(rec.checks()) >= 1, 5)
        assert rec.checks()[0][1]["findings"][0]["replacement"] == "The"
        # the writer fixes the typo and moves on: the fixed sentence is checked (clean)
        await c.suggest("The plan is good. More text")
        await rec.until(lambda: len(rec.checks()) >= 2, 5)
        assert rec.checks()[1][1]["findings"] == []
        # typing on elsewhere: neither sentence is checked again
        await c.suggest("The plan is good. More text here")
        await c.send({"type": "ping", "id": c.new_id()})  # answered after that suggest's checks
        await rec.until(lambda: rec.frames[-1][1]["type"] == "pong", 5)
        reader.cancel()
    assert len(rec.checks()) == 2


async def test_with_a_key_haiku_checks_each_finished_sentence_once_after_a_pause(emu):
    """The emulator stands in for Anthropic (real SDK): after the pause, one cached request per
    finished sentence, surface classes only, its check replacing the offline one and costed."""
    from server.runner import ServerHandle

    from .conftest import make_settings, messages_requests

    async with ServerHandle(make_settings(emu)) as srv, client(srv) as c:
        rec = Recorder(c.ws)
        reader = asyncio.create_task(rec.run())
        text = "She is definately back. It was fine."
        await c.suggest("She")  # the document as opened: nothing finished yet
        await c.suggest(text)
        # the pause: the model's checks replace the offline ones, one per finished sentence
        await rec.until(lambda: len([f for _, f in rec.checks() if f["cost_usd"] > 0]) >= 2, 10)
        reader.cancel()
    checks = [
        [(x["quote"], x["replacement"], x["source"]) for x in f["findings"]]
        for _, f in rec.checks()
        if f["sentence"]["start"] == 0
    ]
    assert checks[0] == [("definately", "definitely", "offline")]  # at once, before the pause
    assert ("definately", "definitely", "claude-haiku-5-5") in checks[-1]
    requests = [r for r in messages_requests(emu) if "<sentence>" in str(r.body)]
    assert len(requests) == 2  # one per sentence, never again
    body = requests[0].body
    assert "temperature" not in body and body["model"] == "claude-haiku-5-5"
    assert any("cache_control" in b for b in body["messages"][0]["content"])


async def test_opening_a_document_asks_the_model_nothing(emu):
    """Sentences already finished when the document is opened are checked offline only."""
    from server.runner import ServerHandle

    from .conftest import make_settings, messages_requests

    async with ServerHandle(make_settings(emu)) as srv, client(srv) as c:
        rec = Recorder(c.ws)
        reader = asyncio.create_task(rec.run())
        text = "She is definately back. It was fine.\n"
        await c.send({"type": "open", "id": c.new_id(), "text": text, "cursor": len(text)})
        await rec.until(lambda: len(rec.checks()) >= 2, 5)
        await c.send({"type": "ping", "id": c.new_id()})
        await rec.until(lambda: rec.frames[-1][1]["type"] == "pong", 5)
        # well past the model's pause: the timer fired and asked nothing
        (conn,) = srv.app.state.hub.connections
        await asyncio.wait_for(conn.checks.model_pause_seen.wait(), 5)
        reader.cancel()
    assert not [r for r in messages_requests(emu) if "<sentence>" in str(r.body)]
    assert [f["cost_usd"] for _, f in rec.checks()] == [0.0, 0.0]


async def test_typing_in_the_middle_of_a_long_document_flags_at_document_offsets(offline_server):
    """Only the text around the cursor is looked at on a keystroke: the offsets still count from
    the start of the whole document, and opening it sends at most the window's sentences."""
    head = "An opening line that is fine.\n" * 300  # 9,000 characters before the cursor
    tail = "\nA closing line that is fine." * 100
    async with client(offline_server) as c:
        rec = Recorder(c.ws)
        reader = asyncio.create_task(rec.run())
        await c.suggest(head, tail)
        await rec.until(lambda: len(rec.checks()) >= 2, 5)  # "fine" lines near the cursor
        opened = len(rec.checks())
        assert opened <= 2 * (2_000 // 30) + 2
        typed = ""
        for ch in "They recieve it. Then":
            typed += ch
            await c.suggest(head + typed, tail)
        await rec.until(lambda: any(f["findings"] for _, f in rec.checks()), 5)
        reader.cancel()
    text = head + typed + tail
    (frame,) = [f for _, f in rec.checks() if f["findings"]]
    (x,) = frame["findings"]
    assert (x["quote"], x["replacement"]) == ("recieve", "receive")
    assert text[x["start"] : x["end"]] == "recieve" and x["start"] == len(head) + 5
    assert frame["sentence"] == {"start": len(head), "end": len(head) + len("They recieve it.")}
    assert all(not f["findings"] for _, f in rec.checks()[:opened])


async def test_no_model_check_while_the_provider_is_parked_on_a_refused_key():
    from assistant.emulator import Fault
    from server.runner import ServerHandle

    from .conftest import emulator, make_settings, messages_requests

    async with emulator() as emu:
        emu.inject(Fault("auth"))
        async with ServerHandle(make_settings(emu)) as srv, client(srv) as c:
            rec = Recorder(c.ws)
            reader = asyncio.create_task(rec.run())
            await c.suggest("She")
            await rec.until(lambda: any(f.get("state") == "auth_failed" for _, f in rec.frames), 5)
            (conn,) = srv.app.state.hub.connections
            conn.checks.model_pause_seen.clear()
            await c.suggest("She is definately back. It")
            await asyncio.wait_for(conn.checks.model_pause_seen.wait(), 5)
            await rec.until(lambda: any(f["findings"] for _, f in rec.checks()), 5)
            reader.cancel()
    assert conn.checks.model_asked == 0
    assert not [r for r in messages_requests(emu) if "<sentence>" in str(r.body)]
    offline = [x["source"] for _, f in rec.checks() for x in f["findings"]]
    assert offline == ["offline"]  # the offline rules still flag it


async def test_a_check_names_the_document_version_its_offsets_are_for(offline_server):
    """A 1.1 ``suggest`` by version makes no new version: the check after it names the
    version of the text (the open's id), not the suggest's id."""
    async with client(offline_server) as c:
        rec = Recorder(c.ws)
        reader = asyncio.create_task(rec.run())
        opened = c.new_id()
        await c.send({"type": "open", "id": opened, "text": "Teh cat sat.", "cursor": 12})
        await c.send({"type": "suggest", "id": c.new_id(), "version": opened})
        await rec.until(lambda: rec.checks(), 5)  # after the pause
        reader.cancel()
    ((_, frame),) = rec.checks()
    assert frame["version"] == opened
    assert [(x["start"], x["replacement"]) for x in frame["findings"]] == [(0, "The")]


@pytest.mark.parametrize("checks", ["off", "offline"])
async def test_the_checks_setting_turns_the_model_or_everything_off(emu, checks):
    from server.runner import ServerHandle

    from .conftest import make_settings

    spelling.speller()  # built: with checks on, the check would come before the pong
    async with ServerHandle(make_settings(emu, checks=checks)) as srv, client(srv) as c:
        rec = Recorder(c.ws)
        reader = asyncio.create_task(rec.run())
        await c.suggest("She")
        await c.suggest("She is definately back. It")
        (conn,) = srv.app.state.hub.connections
        assert conn.checks.model is None
        if checks == "offline":
            await rec.until(lambda: any(f["findings"] for _, f in rec.checks()), 5)
        await c.send({"type": "ping", "id": c.new_id()})
        await rec.until(lambda: any(f["type"] == "pong" for _, f in rec.frames), 5)
        reader.cancel()
    assert bool(rec.checks()) == (checks == "offline")
