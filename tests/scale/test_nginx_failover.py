"""Failover behind a real load balancer: Debian's nginx in front of two ``assistant serve``.

The editor's own client (``tui.client.AssistantClient``, which reconnects by itself) connects
through nginx, types, and the server holding its connection is killed: with SIGKILL (a crash) and
with SIGTERM (a rolling restart, which drains). It must reconnect through nginx to the other
server, the text typed while it was away must reach that server, and no id may get two terminal
frames; with SIGTERM every id gets exactly one, with SIGKILL every id but those in flight on the
dead connection (whose text the next suggest carries again).
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter

import httpx2
import pytest

from tui.client import AssistantClient, ConnectionState

from .conftest import TOKEN, nginx_in_front_of, start_serve, stop_process

pytestmark = [pytest.mark.nginx, pytest.mark.timeout(240)]

BEFORE = "Dear Sam, thanks for the report on the second quarter. The numbers look good. "
# Typed while no server holds the connection: the word only exists in this part of the text.
DURING = "The Quorblefax budget is due on Friday. "
AFTER = "Please send the Quor"
TERMINAL = {"done", "cancelled", "error"}


class Typist:
    """An editor on AssistantClient: keeps its text, sends a suggest per keystroke when connected."""

    def __init__(self, url: str) -> None:
        self.text = ""
        self.terminals: Counter[int] = Counter()
        self.last: dict[int, dict] = {}
        self.sent_on: dict[int, int] = {}  # id -> which connection (1, 2, ...) it was sent on
        self.changed = asyncio.Event()
        self.states: list[ConnectionState] = []
        self.client = AssistantClient(
            url,
            TOKEN,
            on_frame=self.on_frame,
            on_state=self.on_state,
            backoff_initial_s=0.05,
            backoff_max_s=0.5,
        )

    def on_frame(self, frame: dict) -> None:
        if frame.get("type") in TERMINAL and isinstance(frame.get("id"), int):
            self.terminals[frame["id"]] += 1
            self.last[frame["id"]] = frame
        self.changed.set()

    def on_state(self, state: ConnectionState) -> None:
        self.states.append(state)
        self.changed.set()

    async def until(self, condition, what: str) -> None:
        async def wait() -> None:
            while not condition():
                self.changed.clear()
                await self.changed.wait()

        try:
            await asyncio.wait_for(wait(), 30)
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {what}") from None

    def suggest(self) -> int | None:
        if not self.client.connected:
            return None
        i = self.client.next_id()
        self.sent_on[i] = self.client.connections
        assert self.client.send({"type": "suggest", "id": i, "prefix": self.text, "suffix": ""})
        return i

    async def type(self, text: str) -> int | None:
        """Type ``text`` a key at a time, each key's suggest paced on its terminal frame."""
        last = None
        for ch in text:
            self.text += ch
            i = self.suggest()
            if i is not None:
                await self.until(lambda i=i: self.terminals[i] > 0, f"a terminal for id {i}")
                last = i
        return last


async def connections_of(http: httpx2.AsyncClient, ws_url: str) -> int | None:
    base = ws_url.replace("ws://", "http://").rsplit("/v1/ws", 1)[0]
    try:
        return (await http.get(base + "/healthz", timeout=5)).json()["connections"]
    except httpx2.TransportError:
        return None


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
async def test_client_fails_over_through_nginx_to_the_other_server(tmp_path, how):
    servers = [await start_serve(tmp_path, "--workers", "1") for _ in range(2)]
    try:
        ports = [int(url.split(":")[2].split("/")[0]) for _, url, _ in servers]
        async with nginx_in_front_of(ports) as port, httpx2.AsyncClient() as http:
            typist = Typist(f"ws://127.0.0.1:{port}/v1/ws")
            runner = asyncio.create_task(typist.client.run())
            try:
                await typist.until(lambda: typist.client.connected, "the first connection")
                await typist.type(BEFORE)
                held = [await connections_of(http, url) for _, url, _ in servers]
                assert sorted(held) == [0, 1], held
                holder, other = (0, 1) if held[0] == 1 else (1, 0)

                # One more keystroke, in flight when its server goes.
                typist.text += "\n"
                in_flight = typist.suggest()
                servers[holder][0].send_signal(how)
                await typist.until(
                    lambda: not typist.client.connected, "the client to see the server go"
                )
                typist.text += DURING  # typed with no server: must not be lost
                await typist.until(
                    lambda: typist.client.connected and typist.client.connections == 2,
                    "the reconnection through nginx",
                )
                assert ConnectionState.RECONNECTING in typist.states
                # The other server holds the new connection; the killed one is gone.
                assert await connections_of(http, servers[other][1]) == 1
                assert await asyncio.wait_for(servers[holder][0].wait(), 30) is not None

                # What the editor does on reconnecting: a suggest with its whole text.
                resync = typist.suggest()
                await typist.until(lambda: typist.terminals[resync] > 0, "the resync's terminal")
                last = await typist.type(AFTER)
                done = typist.last[last]
                assert done["type"] == "done", done
                # "Quorblefax" was only ever typed while disconnected: the other server knows it.
                assert done["text"].startswith("blefax"), done
                assert typist.text == BEFORE + "\n" + DURING + AFTER
            finally:
                await typist.client.close()
                await asyncio.wait_for(runner, 30)

        assert max(typist.terminals.values()) == 1, "an id got two terminal frames"
        without = sorted(set(typist.sent_on) - set(typist.terminals))
        if how == signal.SIGTERM:
            # The drain ends what was in flight (cancelled/shutdown) before closing with 1001.
            assert without == []
            assert typist.last[in_flight]["type"] in TERMINAL
        else:
            assert without in ([], [in_flight])  # only what the crash cut off
        assert all(typist.terminals[i] == 1 for i, c in typist.sent_on.items() if c == 2)
    finally:
        for proc, _, _ in servers:
            await stop_process(proc)
