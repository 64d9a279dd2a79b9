"""Deep review over the WebSocket: streamed findings, one review at a time, cancel, shutdown."""

from __future__ import annotations

import asyncio

import pytest
from websockets.exceptions import ConnectionClosed

from assistant.pricing import Usage
from assistant.providers.base import ProviderError, ProviderErrorKind
from assistant.review.findings import Finding, ReviewDelta, ReviewDone
from server.runner import ServerHandle

from .conftest import client, emulator, make_settings

DOCUMENT = "Their going to the park tomorow. The report was wrote by the team last week."


class GatedReviewer:
    """A reviewer that streams one delta and one finding, then waits for the test to let it end."""

    name = "stub"
    model = "claude-sonnet-4-6"

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.cancelled = 0
        self.fail: ProviderError | None = None

    async def review(self, text: str, *, tier=None, document=None):
        try:
            yield ReviewDelta('{"findings": [')
            quote = "tomorow"
            start = text.find(quote)
            yield Finding(0, quote, "Misspelling", "tomorrow", "low", start, start + len(quote))
            await self.release.wait()
            if self.fail is not None:
                raise self.fail
            yield ReviewDone(1, self.model, Usage(100, 20), 0.0006, 12.5)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise

    async def aclose(self) -> None:
        pass


async def test_review_streams_findings_then_review_done():
    reviewer = GatedReviewer()
    async with ServerHandle(make_settings(), reviewer=reviewer) as srv, client(srv) as c:
        rid = c.new_id()
        await c.send({"type": "review", "id": rid, "text": DOCUMENT})
        delta = await c.until(lambda m: m["type"] == "review_delta")
        finding = await c.until(lambda m: m["type"] == "finding")
        assert delta["id"] == finding["id"] == rid
        assert finding["quote"] == "tomorow"
        assert DOCUMENT[finding["start"] : finding["end"]] == "tomorow"
        assert finding["severity"] == "low" and finding["replacement"] == "tomorrow"
        # Suggestions keep working while a review runs.
        sid = await c.suggest("Hello ")
        assert (await c.terminal(sid))["type"] == "done"
        reviewer.release.set()
        done = await c.until(lambda m: m["type"] == "review_done")
        assert done["id"] == rid and done["findings"] == 1
        assert done["model"] == "claude-sonnet-4-6" and done["cost_usd"] == pytest.approx(0.0006)
        assert done["usage"]["input_tokens"] == 100


async def test_one_review_at_a_time_and_cancel_review():
    reviewer = GatedReviewer()
    async with ServerHandle(make_settings(), reviewer=reviewer) as srv, client(srv) as c:
        first = c.new_id()
        await c.send({"type": "review", "id": first, "text": DOCUMENT})
        await c.until(lambda m: m["type"] == "finding")
        second = c.new_id()
        await c.send({"type": "review", "id": second, "text": DOCUMENT})
        err = await c.terminal(second)
        assert err["type"] == "error" and err["code"] == "rate_limited"
        await c.send({"type": "cancel_review", "id": first})
        assert await c.terminal(first) == {"type": "cancelled", "id": first, "reason": "client"}
        await c.ping()
        assert reviewer.cancelled == 1
        # A new review may start now; a failing one ends with an error frame.
        reviewer.fail = ProviderError(ProviderErrorKind.OVERLOADED, "529 overloaded")
        reviewer.release.set()
        third = c.new_id()
        await c.send({"type": "review", "id": third, "text": DOCUMENT})
        err = await c.terminal(third)
        assert err["type"] == "error" and err["code"] == "unavailable"
        assert [f["type"] for f in c.seen if f.get("id") == first].count("cancelled") == 1


async def test_shutdown_cancels_a_running_review():
    reviewer = GatedReviewer()
    srv = await ServerHandle(make_settings(), reviewer=reviewer).start()
    try:
        async with client(srv) as c:
            rid = c.new_id()
            await c.send({"type": "review", "id": rid, "text": DOCUMENT})
            await c.until(lambda m: m["type"] == "finding")
            stopping = asyncio.create_task(srv.shutdown())
            assert await c.terminal(rid) == {"type": "cancelled", "id": rid, "reason": "shutdown"}
            with pytest.raises(ConnectionClosed) as info:
                await c.recv()
            assert info.value.rcvd.code == 1001
            await stopping
    finally:
        await srv.shutdown()


async def test_review_by_sonnet_through_the_emulator():
    """The default reviewer (built from settings) against the emulator, through the real SDK."""
    async with emulator() as emu:
        async with ServerHandle(make_settings(emu)) as srv, client(srv) as c:
            rid = c.new_id()
            document = "We met the the team on Monday.  The plan was good."
            await c.send({"type": "review", "id": rid, "text": document})
            done = await c.terminal(rid, timeout=20)
            assert done["type"] == "review_done", done
            findings = [f for f in c.seen if f["type"] == "finding"]
            assert done["findings"] == len(findings) >= 2
            for f in findings:
                assert document[f["start"] : f["end"]] == f["quote"]
            # Tiered: Haiku read it; only surface problems, so Sonnet had nothing to check.
            assert done["model"] == "claude-haiku-5-5"
            assert [(t["tier"], t["status"]) for t in done["tiers"]] == [
                ("haiku", "ok"),
                ("sonnet", "skipped"),
            ]
            assert all(f["tier"] == "haiku" and f["confirmed"] is False for f in findings)
            assert done["cost_usd"] > 0 and done["usage"]["input_tokens"] > 0
            (rec,) = [r for r in emu.requests if r.path == "/v1/messages"]
            assert rec.model == done["model"]


def test_review_frames_take_an_optional_tier():
    from server import protocol as p

    d = p.FrameDecoder(p.Limits())
    assert d.decode('{"type":"review","id":1,"text":"t"}') == p.Review(1, "t", None)
    assert d.decode('{"type":"review","id":2,"text":"t","tier":"haiku"}') == p.Review(
        2, "t", "haiku"
    )
    with pytest.raises(p.ProtocolError) as info:
        d.decode('{"type":"review","id":3,"text":"t","tier":"opus"}')
    assert info.value.code == p.BAD_REQUEST and info.value.id == 3
    retracted = p.finding_retracted_frame(4, index=2, reason="contradicted by Sonnet")
    assert retracted == {
        "type": "finding_retracted",
        "id": 4,
        "index": 2,
        "reason": "contradicted by Sonnet",
    }


async def test_a_review_with_tier_sonnet_reports_tier_fields_and_the_cost_per_tier():
    async with emulator() as emu:
        async with ServerHandle(make_settings(emu)) as srv, client(srv) as c:
            rid = c.new_id()
            document = "We met the the team on Monday.  The plan was good."
            await c.send({"type": "review", "id": rid, "text": document, "tier": "sonnet"})
            done = await c.terminal(rid, timeout=20)
            assert done["type"] == "review_done", done
            findings = [f for f in c.seen if f["type"] == "finding"]
            assert findings
            for f in findings:
                assert (f["tier"], f["confirmed"]) == ("sonnet", True)
                assert isinstance(f["confidence"], float) and f["category"]
            (tier,) = done["tiers"]
            assert (tier["tier"], tier["model"], tier["status"]) == ("sonnet", done["model"], "ok")
            assert tier["cost_usd"] == pytest.approx(done["cost_usd"])
            assert done["note"] == "" and done["withheld"] == 0


class RememberingReviewer(GatedReviewer):
    """Remembers which document each review was for, as the tiered reviewer keeps its base."""

    def __init__(self) -> None:
        super().__init__()
        self.release.set()
        self.held: set[str] = set()
        self.forgotten = asyncio.Event()

    async def review(self, text: str, *, tier=None, document=None):
        self.held.add(document)
        async for ev in super().review(text, tier=tier, document=document):
            yield ev

    def forget(self, document: str) -> None:
        self.held.discard(document)
        if not self.held:
            self.forgotten.set()


async def test_the_reviewer_forgets_a_closed_connections_document():
    reviewer = RememberingReviewer()
    async with ServerHandle(make_settings(), reviewer=reviewer) as srv:
        async with client(srv) as a, client(srv) as b:
            for c in (a, b):
                rid = c.new_id()
                await c.send({"type": "review", "id": rid, "text": DOCUMENT})
                await c.until(lambda m, rid=rid: m["type"] == "review_done" and m["id"] == rid)
            assert len(reviewer.held) == 2
        await asyncio.wait_for(reviewer.forgotten.wait(), 10)
        assert reviewer.held == set()
