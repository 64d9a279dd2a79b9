"""The local model behind the real server: several documents at once, and answers held for it.

Real server on 127.0.0.1, real WebSocket clients, the real local model (skipped without the
``local`` extra)."""

from __future__ import annotations

import asyncio

import pytest

from assistant.providers.local import available, shared_model
from server.runner import ServerHandle
from tests.server.conftest import client, make_settings

pytestmark = [
    pytest.mark.local_model,
    pytest.mark.skipif(
        not available(), reason="xllamacpp / Gemma weights missing (the local extra)"
    ),
]

LOCAL = "gemma-3-270m"


async def wait_for(predicate, limit_s: float = 60.0, what: str = "") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not predicate():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def test_two_documents_typing_at_once_both_get_the_local_model():
    shared_model().load()
    async with ServerHandle(make_settings(offline="auto")) as srv:
        async with client(srv) as fox, client(srv) as letter:
            texts = {fox: "The quick brown fox jumps over the", letter: "Dear Sir or Mad"}
            for c, text in texts.items():  # each editor opens its document
                await c.send({"type": "warm", "id": c.new_id(), "prefix": text[:-3]})
            for step in range(3, -1, -1):  # and both type the last letters at the same time
                ids = await asyncio.gather(
                    *(c.suggest(t[: len(t) - step]) for c, t in texts.items())
                )
            dones = await asyncio.gather(
                *(c.terminal(fid, timeout=60) for c, fid in zip(texts, ids, strict=True))
            )
    for done in dones:
        assert done["type"] == "done", done
        assert (done["source"], done["model"]) == ("offline", LOCAL), done
        assert done["text"].strip()
    assert dones[1]["text"].startswith("am")


async def test_an_empty_answer_while_the_model_is_busy_is_asked_again_when_it_is_free():
    model = shared_model()
    model.load()
    async with ServerHandle(make_settings(offline="auto")) as srv:
        async with client(srv) as c:
            await c.send({"type": "warm", "id": c.new_id(), "prefix": "Hello."})
            (conn,) = srv.app.state.hub.connections
            await wait_for(lambda: not model.table.in_use(), what="the warm-up")
            held = [model.table.acquire(f"other-{i}", wait=True) for i in range(model.slots)]
            try:  # every slot generates for other documents: the statistical engine answers
                fid = await c.suggest(
                    "Thank you for your email. I will get back to you as soon as "
                )
                await wait_for(
                    lambda: conn.engine.stats.requests_completed == 1, what="the stand-in answer"
                )
            finally:
                for slot in held:
                    model.release(slot)  # ...and the model is free again: asked again
            done = await c.terminal(fid, timeout=60)
    assert done["type"] == "done" and (done["source"], done["model"]) == ("offline", LOCAL), done
    assert done["text"].strip()
    assert conn.engine.stats.requests_started == 2
