"""Suggestions end to end: WebSocket client -> server -> real Anthropic SDK -> emulator."""

from __future__ import annotations

import asyncio
import random

import pytest
from websockets.exceptions import ConnectionClosed

from assistant.emulator import Fault
from assistant.pricing import Usage, cost_usd
from server.runner import ServerHandle

from .conftest import client, emulator, make_settings, messages_requests

CANNED = " the quarterly report"
SENTENCE = (
    "The committee met on Tuesday to discuss the budget for next year, and after a long "
    "debate about the new office they agreed to postpone the vote until the spring."
)


async def test_delta_then_done_with_usage_and_cost_from_the_emulator():
    async with emulator(canned_text=CANNED) as emu:
        async with ServerHandle(make_settings(emu)) as srv, client(srv) as c:
            assert c.ready["provider"] == "anthropic"
            assert c.ready["model"] == "claude-haiku-5-5"
            fid = await c.suggest("Please send me ")
            done = await c.terminal(fid)
            deltas = [f for f in c.seen if f["type"] == "delta"]
            assert deltas and all(d["id"] == fid for d in deltas)
            # (done's text is the whole suggestion; the deltas streamed a beginning of it)
            assert "the quarterly report".startswith("".join(d["text"] for d in deltas))
            assert done["type"] == "done"
            assert done["text"] == "the quarterly report"
            assert done["source"] == "model"
            assert done["model"] == "claude-haiku-5-5"
            assert done["estimated"] is False
            usage = done["usage"]
            assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
            expected = cost_usd(
                "claude-haiku-5-5",
                Usage(
                    usage["input_tokens"],
                    usage["output_tokens"],
                    usage["cache_creation_input_tokens"],
                    usage["cache_read_input_tokens"],
                ),
            )
            assert done["cost_usd"] == pytest.approx(expected) and expected > 0
            assert 0 < done["latency_ms"] < 5000
            (rec,) = messages_requests(emu)
            assert rec.usage["input_tokens"] == usage["input_tokens"]


async def test_type_through_is_served_without_a_new_request():
    async with emulator(canned_text=CANNED) as emu:
        async with ServerHandle(make_settings(emu)) as srv, client(srv) as c:
            first = await c.terminal(await c.suggest("Please send me "))
            assert first["text"] == "the quarterly report"
            second = await c.terminal(await c.suggest("Please send me the qu"))
            assert second["type"] == "done"
            assert second["source"] == "typethrough"
            assert second["text"] == "arterly report"
            assert second["cost_usd"] == 0
            assert len(messages_requests(emu)) == 1


async def test_no_stale_frames_under_fast_typing_and_one_terminal_per_id():
    """30+ suggests typed fast, each followed by a ping. A pong proves the server has read every
    suggest sent before it, so after it no delta/done may come for an older id."""
    async with emulator(profile="fast", seed=3) as emu:
        async with ServerHandle(make_settings(emu)) as srv, client(srv) as c:
            rng = random.Random(7)
            sent: list[int] = []
            latest_before_ping: dict[int, int] = {}
            typed = ""
            for ch in SENTENCE[:60]:
                typed += ch
                sent.append(await c.suggest(typed))
                pid = c.new_id()
                latest_before_ping[pid] = sent[-1]
                await c.send({"type": "ping", "id": pid})
                await asyncio.sleep(rng.uniform(0.0, 0.02))  # typing pace, not synchronisation
            assert len(sent) >= 30
            last = sent[-1]
            await c.terminal(last, timeout=15)
            # Drain: a final ping answered after everything else.
            await c.ping()

            floor = -1  # ids below this are stale once its pong arrived
            terminals: dict[int, list[str]] = {}
            for frame in c.seen:
                kind, fid = frame["type"], frame.get("id")
                if kind == "pong" and fid in latest_before_ping:
                    floor = max(floor, latest_before_ping[fid])
                elif kind in ("delta", "done"):
                    assert fid >= floor, f"{kind} for {fid} after suggest {floor} was read"
                if kind in ("done", "cancelled", "error") and fid in sent:
                    terminals.setdefault(fid, []).append(kind)
            assert sorted(terminals) == sorted(sent), "every suggest gets a terminal"
            assert all(len(v) == 1 for v in terminals.values()), terminals
            assert all(v[0] in ("done", "cancelled") for v in terminals.values()), terminals
            assert terminals[last] == ["done"]
            # The engine cancelled superseded requests instead of letting them all run.
            assert len(messages_requests(emu)) < len(sent)


async def test_a_streamed_answer_goes_out_in_a_few_deltas_and_none_after_its_end():
    """A model answer streams a token every few ms. The first text goes out at once; what
    streams after it goes out at most every DELTA_INTERVAL_S, in one frame; nothing of an id
    follows its terminal frame, even when text was waiting to go out (cancel, or done)."""
    from assistant.emulator import LatencyProfile
    from server.suggestions import DELTA_INTERVAL_S

    words = " ".join(f"w{i}" for i in range(40))  # one line, 40 tokens or more
    profile = LatencyProfile(ttft_p50_ms=5, ttft_p95_ms=5, inter_token_ms=2, jitter=0)
    async with emulator(canned_text=" " + words, profile=profile) as emu:
        async with ServerHandle(make_settings(emu, suggest_max_tokens=80)) as srv, client(srv) as c:
            fid = await c.suggest("Please send me ")
            done = await c.terminal(fid)
            deltas = [f for f in c.seen if f.get("id") == fid and f["type"] == "delta"]
            (rec,) = messages_requests(emu)
            streamed_s = (rec.ended - rec.first_token_at) if rec.ended else 0.0
            assert 1 <= len(deltas) <= 2 + streamed_s / DELTA_INTERVAL_S < rec.tokens_sent
            assert done["text"].startswith(deltas[0]["text"])  # (done may trim the end)
            # Cancelled just after its first text: no delta for it after the cancelled frame.
            emu.inject(Fault("hang", after_tokens=6))
            cid = await c.suggest("Please send me a ")
            await c.until(lambda m: m.get("id") == cid and m["type"] == "delta")
            await c.send({"type": "cancel", "id": cid})
            assert (await c.terminal(cid))["type"] == "cancelled"
            # Another answer, which streams for longer than a delta interval, before looking.
            last = await c.suggest("Please send me the ")
            assert (await c.terminal(last))["type"] == "done"
            for ended in (fid, cid):
                frames = [f["type"] for f in c.seen if f.get("id") == ended]
                assert frames[-1] in ("done", "cancelled") and frames.count("done") <= 1, frames


async def test_cancel_ends_the_suggestion_and_closes_the_upstream_stream():
    async with emulator(canned_text=CANNED) as emu:
        emu.inject(Fault("hang", after_tokens=1))
        async with ServerHandle(make_settings(emu)) as srv, client(srv) as c:
            fid = await c.suggest("Please send me ")
            delta = await c.until(lambda m: m["type"] == "delta")
            assert delta["id"] == fid
            await c.send({"type": "cancel", "id": fid})
            term = await c.terminal(fid)
            assert term == {"type": "cancelled", "id": fid, "reason": "client"}
            (rec,) = messages_requests(emu)
            await emu.wait_for_request_end(rec, timeout=5)
            assert rec.client_disconnected and not rec.completed
            # The cancelled request was costed from what streamed, flagged estimated.
            assert srv.hub.ledger.estimated_requests == 1
            assert srv.hub.ledger.by_model["claude-haiku-5-5"].output_tokens >= 1
            assert (await c.ping())["type"] == "pong"


async def test_rate_limit_from_anthropic_sends_status_and_serves_offline():
    async with emulator(canned_text=CANNED) as emu:
        emu.inject(Fault("rate_limit", retry_after=30.0))
        async with ServerHandle(make_settings(emu)) as srv, client(srv) as c:
            fid = await c.suggest("Thank you for the ")
            status = await c.until(lambda m: m["type"] == "status")
            assert status["state"] == "rate_limited"
            assert status["provider"] == "anthropic"
            assert status["active"] == "statistical"
            assert status["retry_after_s"] == pytest.approx(30.0)
            assert status["until"] is not None
            done = await c.terminal(fid)
            assert done["type"] == "done" and done["source"] == "offline"
            assert done["cost_usd"] == 0
            # During the backoff window nothing goes to Anthropic.
            second = await c.terminal(await c.suggest("Thank you for the help. We "))
            assert second["source"] == "offline"
            assert len(messages_requests(emu)) == 1
            health = await _get_json(srv, "/healthz")
            assert health["state"] == "rate_limited" and health["active"] == "statistical"


async def test_shutdown_cancels_in_flight_requests_and_closes_1001():
    async with emulator() as emu:
        emu.inject(Fault("hang"))
        srv = await ServerHandle(make_settings(emu)).start()
        try:
            async with client(srv) as c:
                fid = await c.suggest("Please send me ")
                while not messages_requests(emu):
                    await emu.wait_for_request(len(emu.requests) + 1, timeout=5)
                stopping = asyncio.create_task(srv.shutdown())
                term = await c.terminal(fid)
                assert term == {"type": "cancelled", "id": fid, "reason": "shutdown"}
                with pytest.raises(ConnectionClosed) as info:
                    await c.recv()
                assert info.value.rcvd is not None and info.value.rcvd.code == 1001
                await asyncio.wait_for(stopping, 10)
            (rec,) = messages_requests(emu)
            await emu.wait_for_request_end(rec, timeout=5)
            assert rec.client_disconnected
        finally:
            await srv.shutdown()


async def _get_json(srv: ServerHandle, path: str) -> dict:
    import httpx2

    async with httpx2.AsyncClient() as http:
        r = await http.get(srv.http_url + path)
        return r.json()


async def test_engine_factory_swaps_the_strategy_per_connection():
    """The benchmark's hook: a naive engine asks the model on every keystroke."""
    from assistant.bench.strategies import NaiveEngine

    async with emulator(canned_text=CANNED) as emu:
        handle = ServerHandle(
            make_settings(emu), engine_factory=lambda clock: NaiveEngine(clock=clock)
        )
        async with handle as srv, client(srv) as c:
            first = await c.terminal(await c.suggest("Please send me "))
            second = await c.terminal(await c.suggest("Please send me the qu"))
            assert first["source"] == second["source"] == "model"
            assert len(messages_requests(emu)) == 2


async def test_a_client_that_goes_away_stops_its_request_upstream():
    async with emulator() as emu:
        emu.inject(Fault("hang"))
        async with ServerHandle(make_settings(emu)) as srv:
            async with client(srv) as c:
                await c.suggest("Please send me ")
                while not messages_requests(emu):
                    await emu.wait_for_request(len(emu.requests) + 1, timeout=5)
            (rec,) = messages_requests(emu)
            await emu.wait_for_request_end(rec, timeout=5)
            assert rec.client_disconnected
            # Billed input for a request that reached Anthropic, estimated.
            assert srv.hub.ledger.estimated_requests == 1


async def test_an_idle_client_keeps_the_anthropic_connection_warm_and_reused():
    async with emulator(canned_text=CANNED) as emu:
        settings = make_settings(emu, keep_warm_s=0.05)
        async with ServerHandle(settings) as srv, client(srv) as c:
            # No keystrokes: the connect-time warm-up, then keep-warm calls, all count_tokens.
            await emu.wait_for_request(n=4, timeout=10)
            assert {r.path for r in emu.requests} == {"/v1/messages/count_tokens"}
            fid = await c.suggest("Thanks for the ")
            done = await c.terminal(fid)
            assert done["type"] == "done" and done["source"] == "model"
            # One TCP connection served every warm-up and the suggestion.
            assert emu.connections_opened == 1
            kept = srv.hub.metrics.registry.get_sample_value("assistant_keep_warm_total")
            assert kept is not None and kept >= 3
