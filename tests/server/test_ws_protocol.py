"""Protocol v1 over a real socket: ready, ping, bad frames, size limits (offline tier, no key)."""

from __future__ import annotations

import pytest
from websockets.exceptions import ConnectionClosed

from server.runner import ServerHandle

from .conftest import client, make_settings


async def test_ready_frame_describes_provider_model_and_limits(offline_server):
    async with client(offline_server) as c:
        ready = c.ready
        assert ready["protocol"] == 1
        assert ready["protocol_minor"] == 1
        assert ready["provider"] == "offline"
        assert ready["model"] == "offline-statistical"
        assert ready["limits"] == {
            "max_prefix_chars": 100_000,
            "max_suffix_chars": 20_000,
            "max_review_chars": 200_000,
            "max_document_chars": 120_000,
            "max_frame_bytes": 1_048_576,
        }
        assert await c.ping() == {"type": "pong", "id": 1}


# (frame with {id} for a fresh id, whether the error carries that id, code)
BAD_FRAMES = [
    ("not json {", False, "bad_request"),
    ("[1, 2, 3]", False, "bad_request"),
    ('"just a string"', False, "bad_request"),
    ('{"id": {id}}', False, "bad_request"),
    ('{"type": "suggest", "prefix": "a"}', False, "bad_request"),
    ('{"type": "suggest", "id": "{id}", "prefix": "a"}', False, "bad_request"),
    ('{"type": "suggest", "id": {id}.5, "prefix": "a"}', False, "bad_request"),
    ('{"type": "suggest", "id": {id}}', True, "bad_request"),
    ('{"type": "suggest", "id": {id}, "prefix": 7}', True, "bad_request"),
    ('{"type": "teleport", "id": {id}}', True, "bad_request"),
    ('{"type": "suggest", "id": {id}, "prefix": "' + "x" * 200 + '"}', True, "too_large"),
    (
        '{"type": "suggest", "id": {id}, "prefix": "a", "suffix": "' + "y" * 80 + '"}',
        True,
        "too_large",
    ),
    ('{"type": "review", "id": {id}, "text": "' + "z" * 300 + '"}', True, "too_large"),
    ('{"type": "review", "id": {id}, "text": null}', True, "bad_request"),
    ('{"type": "ping", "id": 3}', False, "bad_request"),  # id does not increase
    ('{"type": "cancel", "id": 5000}', False, "bad_request"),  # never sent
    ('{"type": "accept", "id": 1, "chars": "many"}', False, "bad_request"),
    ('{"type": "cancel_review"}', False, "bad_request"),
]


async def test_every_bad_frame_gets_an_error_and_the_connection_stays_usable():
    settings = make_settings(max_prefix_chars=100, max_suffix_chars=50, max_review_chars=200)
    async with ServerHandle(settings) as srv, client(srv) as c:
        for raw, carries_id, code in BAD_FRAMES:
            fid = c.new_id()
            await c.send(raw.replace("{id}", str(fid)))
            err = await c.recv()
            assert err["type"] == "error", raw
            assert (err["id"], err["code"]) == (fid if carries_id else None, code), raw
            assert err["message"]
            assert (await c.ping())["type"] == "pong"
        # Binary frames holding JSON are read too.
        await c.send(b'{"type":"ping","id":1000}')
        assert await c.recv() == {"type": "pong", "id": 1000}


async def test_the_same_id_twice_is_refused_without_touching_the_first():
    async with ServerHandle(make_settings()) as srv, client(srv) as c:
        fid = await c.suggest("Hello there, my good ")
        await c.send({"type": "suggest", "id": fid, "prefix": "again", "suffix": ""})
        frames = [await c.recv(), await c.recv()]
        errors = [f for f in frames if f["type"] == "error"]
        terminals = [f for f in frames if f.get("id") == fid]
        assert len(errors) == 1 and errors[0]["id"] is None
        assert len(terminals) == 1 and terminals[0]["type"] == "done"


async def test_a_frame_over_the_byte_limit_closes_with_1009():
    async with ServerHandle(make_settings(max_frame_bytes=4096)) as srv, client(srv) as c:
        assert c.ready["limits"]["max_frame_bytes"] == 4096
        await c.send({"type": "suggest", "id": 1, "prefix": "a" * 5000, "suffix": ""})
        with pytest.raises(ConnectionClosed) as info:
            await c.recv()
        assert info.value.rcvd is not None and info.value.rcvd.code == 1009
        # The server is fine: a new connection works.
        async with client(srv) as c2:
            assert (await c2.ping())["type"] == "pong"


class RecordingOffline:
    """An offline tier that records what it was asked to warm (and answers nothing)."""

    name = "statistical"
    model = "offline-statistical"

    def __init__(self) -> None:
        import asyncio

        self.warmed: list[tuple[str, str]] = []
        self.warm_called = asyncio.Event()

    async def stream(self, request):
        from assistant.pricing import Usage
        from assistant.providers.base import Final

        yield Final(Usage(), self.model, source="offline", provider=self.name)

    async def warm(self, prefix: str = "", document_id: str = "default") -> None:
        self.warmed.append((prefix, document_id))
        self.warm_called.set()

    async def aclose(self) -> None:
        pass


async def test_warm_hands_the_opened_document_to_the_offline_tier_once_and_gets_no_reply():
    import asyncio

    from assistant.providers.tiered import TieredProvider

    offline = RecordingOffline()
    async with ServerHandle(make_settings(), provider=TieredProvider(None, offline)) as srv:
        async with client(srv) as c:
            warm_id = c.new_id()
            await c.send({"type": "warm", "id": warm_id, "prefix": "Chapter one\n\nIt was"})
            await asyncio.wait_for(offline.warm_called.wait(), 10)
            await c.terminal(await c.suggest("Chapter one\n\nIt was "))
            await c.ping()
            # The opened text was warmed once (the first suggest does not warm again; the
            # connection's own warm-up carries no text), and nothing came back for its id.
            assert [w[0] for w in offline.warmed if w[0]] == ["Chapter one\n\nIt was"]
            assert not [f for f in c.seen if f.get("id") == warm_id]
