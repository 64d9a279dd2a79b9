"""The offline tier forgets a document when the connection that had it closes (and not while
another live connection uses it), seen through /metrics over a real socket; and a warm-up still
learning when the connection closes does not bring the document back."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import httpx2

from assistant.emulator import Fault
from assistant.providers.statistical import StatisticalProvider
from server.hub import Hub
from server.metrics import ServerMetrics
from server.runner import ServerHandle

from .conftest import client, emulator, make_settings

TEXT = "Dear Sam, thanks for the quick reply. The report looks good and the team did a great "


async def offline_documents(srv) -> float:
    async with httpx2.AsyncClient() as http:
        text = (await http.get(srv.http_url + "/metrics")).text
    (line,) = [x for x in text.splitlines() if x.startswith("assistant_offline_documents ")]
    return float(line.rsplit(" ", 1)[1])


async def documents_become(srv, n: float, limit_s: float = 10.0) -> None:
    """Wait (polling /metrics) until the offline tier holds ``n`` documents."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while (seen := await offline_documents(srv)) != n:
        assert loop.time() < deadline, f"offline documents stayed {seen}, expected {n}"
        await asyncio.sleep(0.02)


async def test_a_closed_connections_document_is_forgotten_and_a_live_one_kept(offline_server):
    srv = offline_server
    async with client(srv) as b:
        assert (await b.terminal(await b.suggest(TEXT)))["type"] == "done"
        await documents_become(srv, 1)  # b's document (the server's own warm-up keeps none)
        async with client(srv) as a:
            assert (await a.terminal(await a.suggest(TEXT + "job")))["type"] == "done"
            assert await offline_documents(srv) == 2
        await documents_become(srv, 1)  # a's went with its connection, b's stays
        assert (await b.terminal(await b.suggest(TEXT + "w")))["type"] == "done"
        assert await offline_documents(srv) == 1
        # The writer of a reconnects: a new connection, whose text the tier learns again.
        async with client(srv) as again:
            done = await again.terminal(await again.suggest(TEXT + "job"))
            assert done["type"] == "done"
            assert await offline_documents(srv) == 2
        await documents_become(srv, 1)
    await documents_become(srv, 0)


class Conn:
    def __init__(self, *documents: str) -> None:
        self.offline_documents = documents


class SlowWarm(StatisticalProvider):
    """A statistical tier whose warm-up waits for the test before learning."""

    def __init__(self) -> None:
        super().__init__(use_lexicon=False)
        self.release = asyncio.Event()

    async def warm(self, prefix: str = "", document_id: str = "default") -> None:
        await self.release.wait()
        self.learn(prefix, "", document_id)


async def test_a_warm_up_finishing_after_the_close_does_not_keep_the_document():
    offline = SlowWarm()
    hub = Hub(make_settings(), "token", ServerMetrics())
    hub.setup = SimpleNamespace(offline=offline)
    hub.connections.add(Conn("c2"))
    hub.warm_offline(TEXT, "", "c1")  # the closing connection's first suggest
    hub.warm_offline(TEXT, "", "c2")  # a live one's
    offline.suggest(TEXT, "", "c1")
    assert offline.documents == 1
    hub.forget_offline(("c1", "c2"))  # c1 closed; c2 is still in use
    offline.release.set()  # the warm-ups learn c1 and c2 now, after the close
    while hub._background:
        await asyncio.wait(set(hub._background))
    assert offline.documents == 1  # c2's only
    assert hub.metrics.registry.get_sample_value("assistant_offline_documents") == 1


async def test_while_the_model_answers_the_offline_tier_learns_nothing_until_it_serves():
    """A thousand writers' documents learned on connect cost the model path's keystrokes loop
    time for a tier that is not answering. It learns a document when it serves it."""
    async with emulator(canned_text=" the report") as emu:
        async with ServerHandle(make_settings(emu)) as srv, client(srv) as c:
            done = await c.terminal(await c.suggest(TEXT))
            assert done["type"] == "done" and done.get("source") == "model", done
            while srv.hub._background:
                await asyncio.wait(set(srv.hub._background))
            assert await offline_documents(srv) == 0
            emu.inject(Fault("overloaded"))
            done = await c.terminal(await c.suggest(TEXT + "and "))
            assert done.get("source") == "offline", done
            assert await offline_documents(srv) == 1
