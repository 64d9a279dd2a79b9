"""Two ``assistant serve`` processes on one PostgreSQL, behind Debian's nginx: one writer's budget
holds across both (the reservation is one UPDATE in the shared database), a 429 with
``retry-after`` that one server sees parks the model path on the other too (no request of its
own reaches the API), with a ``status`` frame saying so, and a writer token's
``max_connections`` counts the writer's connections on both.

The cluster is the test's own child (tests/pg_cluster.py); skipped, with the reason, when Debian's
postgresql is missing (``.ci/setup-postgres.sh``)."""

from __future__ import annotations

import asyncio
import signal

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from assistant.emulator import Emulator, EmulatorConfig, Fault
from server.ledger import SqlStore
from tests import serve_process
from tests.pg_cluster import MISSING, cluster, pg_bin
from tests.server.conftest import messages_requests
from tests.server.test_budgets import USAGE_ROUNDING, billed
from tests.server.test_writer_tokens import SECRET, mint

from .conftest import TOKEN, nginx_in_front_of, stop_process
from .test_budget_workers import type_until_offline

pytestmark = [
    pytest.mark.nginx,
    pytest.mark.timeout(240),
    pytest.mark.skipif(pg_bin() is None, reason=MISSING),
]
API_KEY = "sk-ant-api03-shared-postgres-test-key"
BUDGET = 0.0005


@pytest.fixture(scope="module")
def pg_url():
    with cluster() as url:
        yield url


async def _serve(tmp_path, name: str, emu: Emulator, url: str):
    """One ``assistant serve`` (one worker) on the emulator, the writer secret and ``url``."""
    home = tmp_path / name
    home.mkdir()
    env = {
        "ANTHROPIC_API_KEY": API_KEY,
        "ANTHROPIC_BASE_URL": emu.base_url,
        "ASSISTANT_JWT_SECRET": SECRET,
        "ASSISTANT_DATABASE_URL": url,
    }
    return await serve_process.start_serve(home, "--workers", "1", token=TOKEN, env=env)


async def test_two_servers_on_one_postgres_share_a_budget_and_a_park(tmp_path, pg_url):
    async with Emulator(EmulatorConfig(profile="instant", api_key=API_KEY)) as emu:
        a, a_url, _ = await _serve(tmp_path, "a", emu, pg_url)
        b, b_url, _ = await _serve(tmp_path, "b", emu, pg_url)
        try:
            ports = [int(u.split(":")[2].split("/")[0]) for u in (a_url, b_url)]
            async with nginx_in_front_of(ports) as port:
                lb = f"ws://127.0.0.1:{port}/v1/ws"
                # 1. One budget, four connections, round-robin over the two servers.
                alice = mint("alice", budget_usd_day=BUDGET)
                runs = await asyncio.gather(
                    *(type_until_offline(lb, alice, f"alice{n}") for n in range(4))
                )
                model_answers = sum(s.count("model") for s in runs)
                assert model_answers >= 2

                # 2. A 429 seen by server A parks the model path on server B.
                bob = {"Authorization": f"Bearer {mint('bob')}"}
                emu.inject(Fault("rate_limit", retry_after=30.0))
                async with connect(a_url, additional_headers=bob) as on_a:
                    assert orjson.loads(await on_a.recv())["type"] == "ready"
                    done = await serve_process.suggest_terminal(on_a, 1, "Bob asks server A for ")
                    assert done["source"] == "offline"  # the 429: the offline tier answered
                sent = len(messages_requests(emu))
                async with connect(b_url, additional_headers=bob) as on_b:
                    status = None
                    while status is None or status.get("state") != "rate_limited":
                        status = orjson.loads(await asyncio.wait_for(on_b.recv(), 10))
                    assert status["type"] == "status" and status["active"] == "statistical"
                    assert status["until"] is not None
                    for i in range(1, 4):
                        done = await serve_process.suggest_terminal(
                            on_b, i, f"Bob asks server B, time {i}, for "
                        )
                        assert done["source"] == "offline"
                assert len(messages_requests(emu)) == sent  # B sent nothing to the API

                # 3. A writer's max_connections counts its connections on both servers.
                carol = {"Authorization": f"Bearer {mint('carol', max_connections=2)}"}
                async with (
                    connect(a_url, additional_headers=carol) as one,
                    connect(b_url, additional_headers=carol) as two,
                ):
                    for ws in (one, two):
                        assert orjson.loads(await ws.recv())["type"] == "ready"
                    for url in (a_url, b_url):
                        async with connect(url, additional_headers=carol) as third:
                            with pytest.raises(ConnectionClosed) as info:
                                await asyncio.wait_for(third.recv(), 10)
                            assert info.value.rcvd.code == 1013
            for proc in (a, b):
                proc.send_signal(signal.SIGTERM)
                assert await asyncio.wait_for(proc.wait(), 60) == 0
        finally:
            await stop_process(a)
            await stop_process(b)
        store = SqlStore(pg_url)
        usage = {w["writer"]: w for w in store.usage(since=0.0)}
        park = store.parked("haiku")
        store.close()
        assert usage["alice"]["requests"] == model_answers
        assert usage["alice"]["cost_usd"] <= BUDGET
        assert usage["alice"]["cost_usd"] == pytest.approx(
            billed(emu), rel=1e-6, abs=USAGE_ROUNDING
        )
        assert park[1].startswith("rate_limited|")
