"""Per-writer daily budgets and the usage ledger, on one real server with the emulator behind it
(the real SDK): model suggestions until the budget is spent, then the offline tier with a
``status`` frame; a review refused with a clear error; the ledger equal to what the emulator
billed; another writer untouched; ``/v1/usage`` behind its admin token."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from types import SimpleNamespace

import httpx2 as httpx
import pytest
from websockets.asyncio.client import connect

from assistant.budget import (
    BudgetBook,
    Reservation,
    day_of,
    may_reserve,
    resets_at,
    worst_case_cost,
)
from assistant.emulator import Fault
from assistant.pricing import Usage, cost_usd
from server.ledger import MIGRATIONS, STALE_S, Ledger, Row, SqlStore
from server.runner import ServerHandle
from server.spending import LEASE_REQUESTS, WriterSpending

from .conftest import Client, make_settings, messages_requests
from .test_writer_tokens import SECRET, mint

BUDGET = 0.0005
ADMIN = "admin-token-0123456789abcdef"


# The usage report rounds each writer's dollars to 8 decimals (server/ledger.py): two writers'
# totals may each be half a hundred-millionth off what the emulator billed.
USAGE_ROUNDING = 1e-8


def billed(emu) -> float:
    """Dollars the emulator billed, request by request, from its own usage records."""
    total = 0.0
    for rec in messages_requests(emu):
        u = rec.usage
        usage = Usage(
            input_tokens=u.get("input_tokens", 0),
            output_tokens=u.get("output_tokens", 0),
            cache_creation_input_tokens=u.get("cache_creation_input_tokens", 0),
            cache_read_input_tokens=u.get("cache_read_input_tokens", 0),
        )
        total += cost_usd(rec.model, usage)
    return total


@contextlib.asynccontextmanager
async def writer_client(srv: ServerHandle, token: str):
    """A client connected with ``token``, past its ``ready`` frame."""
    async with connect(srv.ws_url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        c = Client(ws)
        await c.recv()
        yield c


async def type_until_offline(srv: ServerHandle, token: str, tag: str, limit: int = 80) -> dict:
    """One suggestion at a time (none superseded) until three come from the offline tier."""
    sources: list[str] = []
    statuses: list[dict] = []
    async with writer_client(srv, token) as c:
        for i in range(limit):
            fid = await c.suggest(f"{tag} note {i}: the quarterly report for region {i} shows ")
            done = await c.terminal(fid)
            assert done["type"] == "done", done
            sources.append(done["source"])
            if sources[-3:] == ["offline"] * 3:
                break
        statuses = [m for m in c.seen if m["type"] == "status"]
        review = await c.send({"type": "review", "id": 9999, "text": "A short text to review."})
        del review
        refusal = await c.terminal(9999)
    return {"sources": sources, "statuses": statuses, "review": refusal}


def test_the_reservation_rule_and_the_worst_case():
    book = BudgetBook()
    assert book.reserve("w", "2026-12-06", 1.0, 0.6)
    assert not book.reserve("w", "2026-12-06", 1.0, 0.6)  # 0.6 + 0.6 > 1
    book.settle("w", "2026-12-06", 0.6, 0.1)  # the request cost less than its worst case
    assert book.reserve("w", "2026-12-06", 1.0, 0.6)
    assert may_reserve(None, 10, 10, 10)
    assert book.reserve("w", "2026-12-07", 1.0, 1.0)  # a new UTC day, a new account
    # The worst case covers every input token at the dearest rate plus the whole max_tokens.
    worst = worst_case_cost("claude-haiku-5-5", 4000, 24)
    actual = cost_usd(
        "claude-haiku-5-5",
        Usage(cache_creation_input_tokens=1000, output_tokens=24),
        cache_ttl="1h",
    )
    assert worst >= actual
    assert day_of(resets_at(1_765_000_000.0)) != day_of(1_765_000_000.0)


def test_migrations_apply_once_and_rows_are_never_booked_twice(tmp_path):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    store = SqlStore(url)
    assert store.version == len(MIGRATIONS)
    store.close()
    store = SqlStore(url)  # a second start migrates nothing
    assert store.version == len(MIGRATIONS)
    assert store.reserve("w", "2026-12-06", 0.001, 0.0008)
    assert not store.reserve("w", "2026-12-06", 0.001, 0.0008)
    row = Row(
        "p-1", 1.0, "2026-12-06", "w", "c1", "claude-haiku-5-5", "suggestion", 10, 0, 0, 2,
        0.0002, False, False, reserved=0.0008,
    )  # fmt: skip
    assert store.write([row], {}) == 1
    assert store.write([row], {("w", "2026-12-06"): 5}) == 0  # the same batch again
    spent, reserved = store.account("w", "2026-12-06")
    assert spent == pytest.approx(0.0002) and reserved == pytest.approx(0.0)
    assert store.usage(since=0.0) == [
        {"writer": "w", "requests": 1, "cost_usd": 0.0002, "accepted_chars": 5}
    ]
    store.close()


async def test_a_spent_budget_turns_to_offline_and_spares_other_writers(emu, tmp_path):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    settings = make_settings(emu, jwt_secret=SECRET, database_url=url, admin_token=ADMIN)
    async with ServerHandle(settings) as srv:
        alice = await type_until_offline(srv, mint("alice", budget_usd_day=BUDGET), "alice")
        bob_sources = []
        async with writer_client(srv, mint("bob")) as c:
            for i in range(3):
                bob_sources.append(await c.terminal(await c.suggest(f"Bob {i} writes ")))
        async with httpx.AsyncClient() as http:
            refused = await http.get(f"{srv.http_url}/v1/usage")
            assert refused.status_code == 401
            wrong = await http.get(
                f"{srv.http_url}/v1/usage", headers={"Authorization": f"Bearer {srv.token}"}
            )
            assert wrong.status_code == 401  # the writers' static token is not the admin's
            bad = await http.get(
                f"{srv.http_url}/v1/usage?since=yesterday",
                headers={"Authorization": f"Bearer {ADMIN}"},
            )
            assert bad.status_code == 400
    sources = alice["sources"]
    assert sources[0] == "model" and sources[-3:] == ["offline"] * 3
    first_offline = sources.index("offline")
    assert set(sources[:first_offline]) == {"model"}
    spent = [s for s in alice["statuses"] if s["state"] == "budget_spent"]
    assert len(spent) == 1 and spent[0]["active"] == "statistical"
    assert spent[0]["until"] == pytest.approx(resets_at(spent[0]["until"] - 1))
    assert alice["review"]["type"] == "error" and alice["review"]["code"] == "budget_spent"
    assert [d["source"] for d in bob_sources] == ["model"] * 3

    store = SqlStore(url)
    usage = {w["writer"]: w for w in store.usage(since=0.0)}
    store.close()
    assert usage["alice"]["requests"] == first_offline
    assert usage["alice"]["cost_usd"] <= BUDGET
    assert usage["bob"]["requests"] == 3
    ledger_total = usage["alice"]["cost_usd"] + usage["bob"]["cost_usd"]
    assert ledger_total == pytest.approx(billed(emu), rel=1e-6, abs=USAGE_ROUNDING)
    # After the writer's day is spent, nothing more went to the model.
    assert len(messages_requests(emu)) == first_offline + 3


async def test_usage_endpoint_and_accepted_characters(emu, tmp_path):
    settings = make_settings(
        emu, jwt_secret=SECRET, database_url=f"sqlite:///{tmp_path / 'l.db'}", admin_token=ADMIN
    )
    async with ServerHandle(settings) as srv:
        async with writer_client(srv, mint("carol")) as c:
            fid = await c.suggest("Carol writes the opening of ")
            await c.terminal(fid)
            await c.send({"type": "accept", "id": fid, "chars": 7})
            await c.ping()
        async with httpx.AsyncClient() as http:

            async def writers(query: str = "") -> list:
                r = await http.get(
                    f"{srv.http_url}/v1/usage{query}", headers={"Authorization": f"Bearer {ADMIN}"}
                )
                assert r.status_code == 200
                return r.json()["writers"]

            await srv.hub.usage_ledger.sync()  # (rows wait up to FLUSH_EVERY_S for their batch)
            assert await writers("?writer=carol") == [
                {
                    "writer": "carol",
                    "requests": 1,
                    "cost_usd": pytest.approx(billed(emu), rel=1e-6, abs=USAGE_ROUNDING),
                    "accepted_chars": 7,
                }
            ]
            assert await writers("?writer=nobody") == []
            assert await writers("?since=2999-01-01") == []


def test_a_dead_processs_reservations_are_given_back(tmp_path):
    """A worker killed with requests in flight never books them: once it has not been seen for
    STALE_S, another process's heartbeat gives its holds back to the writers' budgets."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    dead, alive = SqlStore(url, "dead-process"), SqlStore(url, "live-process")
    dead.heartbeat(1000.0)
    assert dead.reserve("w", "2026-12-06", 0.001, 0.0006)
    assert dead.reserve("w", "2026-12-06", 0.001, 0.0003)
    row = Row(
        "dead-1", 1.0, "2026-12-06", "w", "c1", "claude-haiku-5-5", "suggestion", 10, 0, 0, 2,
        0.0001, False, False, reserved=0.0003,
    )  # fmt: skip
    dead.write([row], {})  # one of its two requests was booked before the kill
    assert not alive.reserve("w", "2026-12-06", 0.001, 0.0005)  # 0.0006 still held
    assert alive.heartbeat(1000.0 + STALE_S - 1) == 0  # not stale yet
    assert alive.heartbeat(1000.0 + STALE_S + 1) == 1
    spent, reserved = alive.account("w", "2026-12-06")
    assert spent == pytest.approx(0.0001) and reserved == pytest.approx(0.0)
    assert alive.reserve("w", "2026-12-06", 0.001, 0.0005)
    alive.retire()  # a clean stop gives back what it holds too
    assert alive.account("w", "2026-12-06")[1] == pytest.approx(0.0)
    dead.close()
    alive.close()


async def test_a_reservation_given_back_goes_with_the_next_batch_and_before_the_next_reserve(
    tmp_path,
):
    """A request the offline tier answered gives its reservation back without a transaction of
    its own (``Ledger.release_later``), yet the writer's next reservation sees it given back."""
    ledger = await Ledger(f"sqlite:///{tmp_path / 'ledger.db'}").start()
    try:
        day = "2026-12-06"
        assert await ledger.reserve("w", day, 0.001, 0.0006)
        assert not await ledger.reserve("w", day, 0.001, 0.0006)  # 0.0006 held
        ledger.release_later("w", day, 0.0006)
        ledger.release_later("w", day, 0.0)  # nothing held: nothing changes
        assert await ledger.reserve("w", day, 0.001, 0.0006)  # given back first
        ledger.release_later("w", day, 0.0006)
        await ledger.sync()
        spent, reserved = await ledger.call("account", "w", day)
        assert spent == pytest.approx(0.0) and reserved == pytest.approx(0.0)
    finally:
        await ledger.aclose()


async def test_a_review_cancelled_mid_stream_is_booked_as_cancelled(emu, tmp_path):
    """The API bills a review request that was cut short for what it read: the writer's
    ledger and budget get its estimate (a cancel just before the end used to book nothing, so
    cancelled reviews spent the operator's key past any budget)."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    settings = make_settings(emu, jwt_secret=SECRET, database_url=url)
    emu.inject(Fault("hang", after_tokens=4))  # the first request streams a little, then stalls
    text = "The quarterly report are late. " * 40
    async with ServerHandle(settings) as srv:
        async with writer_client(srv, mint("rita", budget_usd_day=1.0)) as c:
            rid = c.new_id()
            await c.send({"type": "review", "id": rid, "text": text})
            await c.until(lambda m: m["type"] == "review_delta" and m["id"] == rid)
            await c.send({"type": "cancel_review", "id": rid})
            assert (await c.terminal(rid))["type"] == "cancelled"
            await c.ping()
        await srv.hub.usage_ledger.sync()
    store = SqlStore(url)
    rows = [r for r in store.rows() if r[1] == "rita"]
    spent, reserved = store.account("rita", day_of(time.time()))
    store.close()
    (row,) = rows
    _, _, model, role, cost, cancelled = row
    (request,) = [r for r in messages_requests(emu) if r.fault == "hang"]  # (not the warm-up)
    assert model == request.model and role == "haiku" and cancelled == 1
    # About what the request read: the document is ~1,240 characters, the prompt around it more.
    read = {k: request.usage[k] for k in ("input_tokens", "cache_creation_input_tokens")}
    assert read["cache_creation_input_tokens"] > len(text) // 4  # the document, cached
    # The input as message_start reported it, the output estimated from what streamed.
    assert cost_usd(model, Usage(**read)) < cost <= cost_usd(model, Usage(**read, output_tokens=50))
    assert spent == pytest.approx(cost) and reserved == pytest.approx(0.0)


async def test_a_suggestion_cancelled_after_its_start_is_booked_with_the_input_billed(
    emu, tmp_path
):
    """A suggestion cancelled once the API has started answering is booked with the input
    message_start reported, cache writes included, as the API bills it (the estimate counted
    the cached part of the prompt as a read, a twelfth of a write's price)."""
    path = tmp_path / "ledger.db"
    settings = make_settings(emu, jwt_secret=SECRET, database_url=f"sqlite:///{path}")
    emu.inject(Fault("hang", after_tokens=2))
    async with ServerHandle(settings) as srv:
        async with writer_client(srv, mint("sam")) as c:
            fid = await c.suggest("Sam writes: the quarterly report for the north office shows ")
            await c.until(lambda m: m["type"] == "delta" and m["id"] == fid)
            await c.send({"type": "cancel", "id": fid})
            assert (await c.terminal(fid))["type"] == "cancelled"
            await c.ping()
        await srv.hub.usage_ledger.sync()
    (request,) = [r for r in messages_requests(emu) if r.fault == "hang"]
    with sqlite3.connect(path) as db:
        (row,) = db.execute(
            "SELECT input_tokens, cache_write_tokens, cache_read_tokens, output_tokens,"
            " cancelled, estimated FROM requests WHERE writer = 'sam'"
        ).fetchall()
    u = request.usage
    assert row[:3] == (
        u["input_tokens"],
        u.get("cache_creation_input_tokens", 0),
        u.get("cache_read_input_tokens", 0),
    )
    assert row[1] > 0  # the system prompt's first request writes the cache
    assert row[3] >= 1 and row[4:] == (1, 1)


def record_reservations(store: SqlStore) -> list[tuple]:
    """Every ``reserve_up_to`` the server's store is asked, its arguments in order (the store
    still answers)."""
    asked: list[tuple] = []
    real = store.reserve_up_to

    def recorded(*args):
        asked.append(args)
        return real(*args)

    store.reserve_up_to = recorded
    return asked


async def test_a_writers_requests_draw_on_a_lease_given_back_when_they_leave(emu, tmp_path):
    """One reservation in the database covers LEASE_REQUESTS requests of the writer on this
    process; spent plus held stays within the budget, the ledger equals what was billed, and
    what the process still holds goes back when the writer's last connection closes."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    settings = make_settings(emu, jwt_secret=SECRET, database_url=url)
    async with ServerHandle(settings) as srv:
        store = srv.hub.usage_ledger.store
        asked = record_reservations(store)
        async with writer_client(srv, mint("lena", budget_usd_day=1.0)) as c:
            sources = []
            # Not a whole number of leases: the last one is still partly held when lena stops
            # (12 requests of one worst case each drew exactly three leases to nothing).
            n = 2 * LEASE_REQUESTS + 2
            for i in range(n):
                done = await c.terminal(await c.suggest(f"Lena's note {i}: the report shows "))
                sources.append(done["source"])
            await srv.hub.usage_ledger.sync()
            spent, held = store.account("lena", day_of(time.time()))
            assert 0 < spent and spent + held <= 1.0
            assert held > 0  # the lease, while lena is here
        # The server's side of the close runs on this loop: wait for it (at most 5 s).
        async with asyncio.timeout(5):
            while srv.hub.connections:  # noqa: ASYNC110 (no event for it: the hub's state, polled)
                await asyncio.sleep(0.01)
        await srv.hub.usage_ledger.sync()
        spent_after, held_after = store.account("lena", day_of(time.time()))
    assert sources == ["model"] * n
    assert len(asked) <= n // LEASE_REQUESTS + 1
    assert held_after == pytest.approx(0.0) and spent_after == pytest.approx(spent)
    assert spent == pytest.approx(billed(emu), rel=1e-6, abs=USAGE_ROUNDING)


async def test_a_review_holds_only_its_own_worst_case(emu, tmp_path):
    """A suggestion's reservation asks for a lease of LEASE_REQUESTS worst cases; a review's
    asks for its own alone (4 of a long document's would hold much of a day's budget)."""
    settings = make_settings(emu, jwt_secret=SECRET, database_url=f"sqlite:///{tmp_path / 'l.db'}")
    async with ServerHandle(settings) as srv:
        asked = record_reservations(srv.hub.usage_ledger.store)
        async with writer_client(srv, mint("rosa", budget_usd_day=1.0)) as c:
            rid = c.new_id()
            await c.send({"type": "review", "id": rid, "text": "The report are late. " * 20})
            assert (await c.terminal(rid, timeout=30))["type"] == "review_done"
            await c.terminal(await c.suggest("Rosa writes: the quarterly report shows "))
    (*_, review_amount, review_ask), (*_, amount, ask) = asked
    assert review_ask == review_amount > amount
    assert ask == pytest.approx(amount * LEASE_REQUESTS)


def test_a_closing_connections_give_back_goes_to_the_database_not_the_lease():
    """Requests of a connection that is closing end after it: what they give back must not stay
    with the process (its writer may have no connection here left to draw on it, nor to give
    it back when leaving); while the connection is open it feeds the writer's lease."""
    released = []
    ledger = SimpleNamespace(release_later=lambda *args: released.append(args))
    hub = SimpleNamespace(setup=None, metrics=None, usage_ledger=ledger, budget_leases={})
    spending = WriterSpending(hub, "c1", "nina", 1.0, outbox=None, stats=None)
    day = day_of(time.time())
    spending.give_back(Reservation("nina", day, 0.0002))
    assert hub.budget_leases == {("nina", day): pytest.approx(0.0002)} and released == []
    spending.closed = True
    spending.give_back(Reservation("nina", day, 0.0003))
    assert released == [("nina", day, 0.0003)]
    assert hub.budget_leases == {("nina", day): pytest.approx(0.0002)}


async def test_a_ledger_that_cannot_answer_fails_closed_for_budgeted_writers_only(emu, tmp_path):
    settings = make_settings(emu, jwt_secret=SECRET, database_url=f"sqlite:///{tmp_path / 'l.db'}")
    async with ServerHandle(settings) as srv:
        store = srv.hub.usage_ledger.store

        def unreachable(*args):
            raise sqlite3.OperationalError("disk I/O error")

        # the database fails as it would: an OperationalError
        store.reserve = store.reserve_up_to = unreachable
        async with writer_client(srv, mint("dora", budget_usd_day=1.0)) as c:
            done = await c.terminal(await c.suggest("Dora writes to the team about "))
            status = next(m for m in c.seen if m["type"] == "status")
        assert done["source"] == "offline"
        assert status["state"] == "budget_spent" and "cannot be reached" in status["reason"]
        async with writer_client(srv, mint("eli")) as c:
            done = await c.terminal(await c.suggest("Eli writes to the team about "))
        assert done["source"] == "model"  # no budget: the ledger is not asked first


async def test_without_a_database_one_process_keeps_budgets_and_totals_in_memory(emu):
    settings = make_settings(emu, jwt_secret=SECRET, admin_token=ADMIN)  # no database_url
    async with ServerHandle(settings) as srv:
        alice = await type_until_offline(srv, mint("alice", budget_usd_day=BUDGET), "alice")
        await srv.hub.usage_ledger.sync()
        usage = await srv.hub.usage_ledger.call("usage", None, 0.0)
    first_offline = alice["sources"].index("offline")
    assert usage == [
        {
            "writer": "alice",
            "requests": first_offline,
            "cost_usd": pytest.approx(billed(emu), rel=1e-6, abs=USAGE_ROUNDING),
            "accepted_chars": 0,
        }
    ]
    assert usage[0]["cost_usd"] <= BUDGET
