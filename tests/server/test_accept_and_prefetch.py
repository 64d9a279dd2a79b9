"""Word-level accept and prefetch through the real server, the real SDK and the emulator."""

from __future__ import annotations

from server.runner import ServerHandle

from .conftest import client, emulator, make_settings, messages_requests

PASSAGE = (
    "Please send me the quarterly report by Friday so that I can read it before the board "
    "meeting. The numbers for the second half look better than we expected."
)


async def test_word_accept_then_suggest_serves_the_rest_without_a_model_call():
    """Ctrl+Right: ``accept`` with the word's length, then a ``suggest`` that includes it."""
    async with emulator(oracle_texts=(PASSAGE,)) as emu:
        async with ServerHandle(make_settings(emu)) as srv, client(srv) as c:
            first = await c.terminal(await c.suggest("Please send me "))
            assert first["type"] == "done" and first["text"].startswith("the quarterly")
            await c.send({"type": "accept", "id": 1, "chars": len("the")})
            second = await c.terminal(await c.suggest("Please send me the"))
            assert second["type"] == "done"
            assert second["source"] == "typethrough"
            assert second["text"] == first["text"][len("the") :]
            assert second["cost_usd"] == 0
            assert len(messages_requests(emu)) == 1


async def test_prefetch_makes_the_ghost_after_tab_instant_and_bills_one_more_call():
    async with emulator(oracle_texts=(PASSAGE,)) as emu:
        async with ServerHandle(make_settings(emu, prefetch=True)) as srv, client(srv) as c:
            prefix = "Please send me "
            first = await c.terminal(await c.suggest(prefix))
            assert first["type"] == "done" and first["text"]
            await c.send({"type": "accept", "id": 1, "chars": len(first["text"])})
            prefix += first["text"]
            second = await c.terminal(await c.suggest(prefix))
            assert second["type"] == "done"
            assert second["source"] in ("prefetch", "cache")  # streaming, or already finished
            assert PASSAGE.startswith(prefix + second["text"].rstrip())
            requests = messages_requests(emu)
            assert len(requests) >= 2
            # Exactly one terminal frame per id, nothing for an id the client never sent.
            terminals = [f for f in c.seen if f["type"] in ("done", "cancelled", "error")]
            assert sorted(f["id"] for f in terminals) == [1, 2]


async def test_metrics_count_shown_accepted_saved_and_pause_to_visible():
    import httpx2

    async with emulator(oracle_texts=(PASSAGE,)) as emu:
        async with ServerHandle(make_settings(emu, prefetch=True)) as srv:
            async with client(srv) as c:
                first = await c.terminal(await c.suggest("Please send me "))
                assert first["text"].startswith("the quarterly")
                await c.send({"type": "accept", "id": 1, "chars": len("the")})
                await c.terminal(await c.suggest("Please send me the"))
                # Typing away ends the ghost: it was accepted, so shown and not rejected.
                await c.terminal(await c.suggest("Please send me the annual"))
                await c.ping()
                sample = srv.hub.metrics.registry.get_sample_value
                assert sample("assistant_suggestions_shown_total") == 1
                assert sample("assistant_suggestions_accepted_total") == 1
                assert sample("assistant_suggestions_rejected_total") == 0
                assert sample("assistant_accepted_chars_total") == 3
                assert sample("assistant_accept_keys_total") == 1
                assert sample("assistant_saved_chars_total") == 2
                assert sample("assistant_provider_requests_total", {"kind": "prefetch"}) >= 1
            async with httpx2.AsyncClient() as http:
                text = (await http.get(srv.http_url + "/metrics")).text
            for name in (
                "assistant_pause_to_visible_seconds_bucket",
                "assistant_pauses_total",
                "assistant_suggestions_shown_total",
                "assistant_saved_chars_total",
            ):
                assert name in text
