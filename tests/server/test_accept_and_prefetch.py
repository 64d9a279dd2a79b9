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
