"""One writer's budget across ``--workers 2``: four connections typing at once draw on one
account in the shared SQLite ledger, the ledger stays within the budget and equals what the
emulator (reached through the real SDK) billed, and another writer is untouched."""

from __future__ import annotations

import asyncio
import signal

import orjson
import pytest
from websockets.asyncio.client import connect

from assistant.emulator import Emulator, EmulatorConfig
from server.ledger import SqlStore
from tests.serve_process import start_serve, stop_process, suggest_terminal
from tests.server.test_budgets import USAGE_ROUNDING, billed
from tests.server.test_writer_tokens import SECRET, mint

API_KEY = "sk-ant-api03-budget-workers-test-key"
BUDGET = 0.0005


async def type_until_offline(ws_url: str, token: str, tag: str) -> list[str]:
    """One suggestion at a time until three in a row come from the offline tier."""
    sources: list[str] = []
    async with connect(ws_url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        assert orjson.loads(await ws.recv())["type"] == "ready"
        for i in range(1, 120):
            prefix = f"{tag} writes note {i}: the quarterly figures for region {i} show "
            msg = await suggest_terminal(ws, i, prefix)
            assert msg["type"] == "done", msg
            sources.append(msg["source"])
            if sources[-3:] == ["offline"] * 3:
                return sources
    raise AssertionError(f"{tag} never reached the offline tier: {sources}")


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_four_connections_two_workers_one_budget(tmp_path):
    db = tmp_path / "ledger.db"
    config = EmulatorConfig(profile="instant", api_key=API_KEY)
    async with Emulator(config) as emu:
        proc, ws_url, _ = await start_serve(
            tmp_path,
            "--workers",
            "2",
            token="static-token-workers-budget",
            env={
                "ANTHROPIC_API_KEY": API_KEY,
                "ANTHROPIC_BASE_URL": emu.base_url,
                "ASSISTANT_JWT_SECRET": SECRET,
                "ASSISTANT_DATABASE_URL": f"sqlite:///{db}",
                "ASSISTANT_OFFLINE": "statistical",
            },
        )
        try:
            alice = mint("alice", budget_usd_day=BUDGET)
            runs = await asyncio.gather(
                *(type_until_offline(ws_url, alice, f"alice{n}") for n in range(4))
            )
            bob = await type_until_offline_or(ws_url, mint("bob"), 3)
            proc.send_signal(signal.SIGTERM)  # a drain: every worker writes its last batch
            assert await asyncio.wait_for(proc.wait(), 60) == 0
        finally:
            await stop_process(proc)
        store = SqlStore(f"sqlite:///{db}")
        usage = {w["writer"]: w for w in store.usage(since=0.0)}
        store.close()
        model_answers = sum(s.count("model") for s in runs)
        assert model_answers >= 2  # the budget bought model suggestions before it ran out
        assert usage["alice"]["requests"] == model_answers
        assert usage["alice"]["cost_usd"] <= BUDGET
        assert bob == ["model"] * 3
        assert usage["bob"]["requests"] == 3
        total = usage["alice"]["cost_usd"] + usage["bob"]["cost_usd"]
        assert total == pytest.approx(billed(emu), rel=1e-6, abs=USAGE_ROUNDING)


async def type_until_offline_or(ws_url: str, token: str, count: int) -> list[str]:
    sources = []
    async with connect(ws_url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        assert orjson.loads(await ws.recv())["type"] == "ready"
        for i in range(1, count + 1):
            msg = await suggest_terminal(ws, i, f"Bob starts paragraph {i} with ")
            sources.append(msg.get("source"))
    return sources
