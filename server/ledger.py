"""The usage ledger and the budget reservations, in SQLite or PostgreSQL, off the event loop.

Every model request becomes a row (time, writer, connection, model, role, tokens, cost,
cancelled) and every accepted character counts for its writer's day; ``assistant usage`` and
``/v1/usage`` read them back. The event loop never waits on the database for a row: rows go to a
list that one thread per process commits in batches, at most ``FLUSH_EVERY_S`` after the request
ended. A ``kill -9`` therefore loses at most the rows of requests that ended in the last
``FLUSH_EVERY_S`` (plus the batch being committed at that instant); every row carries an id made
of the process's random id and a counter, inserted with ``ON CONFLICT DO NOTHING``, so a batch
that is written again never books a request twice.

A budget reservation is the one thing a request waits for (only when its writer has a budget):
it must be decided by the database, so connections of one writer on every worker of every box
draw from one account. It is a single ``UPDATE … WHERE spent + reserved + amount <= budget``;
the row's settlement (spent += cost, reserved -= reservation) happens in the same transaction
that inserts the request's row, only when that insert is new.

``sqlite:///PATH`` (WAL: workers of one box share the file) is the default, under the user's
data directory; ``postgresql://…`` (psycopg 3) for several boxes. Schema versions are applied in
order at start and recorded in ``schema_version``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.budget import BudgetBook, day_of

# How long a finished request's row may wait for its batch: the loss a kill -9 can cause, and
# one commit per this long per process at most (a batch of 50 rows took 1 ms in WAL mode here).
FLUSH_EVERY_S = 0.1
BATCH_ROWS = 500  # a bigger backlog is written at once, not left for the next tick
LOG = logging.getLogger("assistant.server")

MIGRATIONS: list[list[str]] = [
    [  # 1: the ledger, the budget accounts, accepted characters
        """CREATE TABLE requests (
            id TEXT PRIMARY KEY,
            ts DOUBLE PRECISION NOT NULL,
            day TEXT NOT NULL,
            writer TEXT NOT NULL,
            conn TEXT NOT NULL,
            model TEXT NOT NULL,
            role TEXT NOT NULL,
            input_tokens BIGINT NOT NULL,
            cache_write_tokens BIGINT NOT NULL,
            cache_read_tokens BIGINT NOT NULL,
            output_tokens BIGINT NOT NULL,
            cost_usd DOUBLE PRECISION NOT NULL,
            cancelled INTEGER NOT NULL,
            estimated INTEGER NOT NULL
        )""",
        "CREATE INDEX requests_writer_ts ON requests (writer, ts)",
        "CREATE INDEX requests_ts ON requests (ts)",
        """CREATE TABLE budgets (
            writer TEXT NOT NULL,
            day TEXT NOT NULL,
            spent DOUBLE PRECISION NOT NULL DEFAULT 0,
            reserved DOUBLE PRECISION NOT NULL DEFAULT 0,
            PRIMARY KEY (writer, day)
        )""",
        """CREATE TABLE accepted (
            writer TEXT NOT NULL,
            day TEXT NOT NULL,
            chars BIGINT NOT NULL DEFAULT 0,
            PRIMARY KEY (writer, day)
        )""",
    ],
    [  # 2: the shared provider park (a 429/529 seen by one process holds for all)
        """CREATE TABLE provider_park (
            path TEXT PRIMARY KEY,
            until DOUBLE PRECISION NOT NULL,
            reason TEXT NOT NULL
        )""",
    ],
    [  # 3: what each live process holds reserved, so a dead one's holds can be given back
        """CREATE TABLE holds (
            process TEXT NOT NULL,
            writer TEXT NOT NULL,
            day TEXT NOT NULL,
            amount DOUBLE PRECISION NOT NULL DEFAULT 0,
            PRIMARY KEY (process, writer, day)
        )""",
        """CREATE TABLE processes (
            id TEXT PRIMARY KEY,
            seen DOUBLE PRECISION NOT NULL
        )""",
    ],
    [  # 4: open connections of writers whose token limits them, across processes and boxes
        """CREATE TABLE connections (
            process TEXT NOT NULL,
            conn TEXT NOT NULL,
            writer TEXT NOT NULL,
            PRIMARY KEY (process, conn)
        )""",
        "CREATE INDEX connections_writer ON connections (writer)",
    ],
]
# A process writes its heartbeat this often; one not seen for STALE_S (killed, or its box gone)
# has its reservations given back by whichever process notices first. A live ledger thread
# that is busy for STALE_S would lose its holds' accounting, so this is far above any batch.
HEARTBEAT_S = 5.0
STALE_S = 60.0


@dataclass(frozen=True)
class Row:
    """One model request, as the ledger keeps it. ``reserved`` is what its reservation held
    (given back when the row is booked)."""

    id: str
    ts: float
    day: str
    writer: str
    conn: str
    model: str
    role: str
    input_tokens: int
    cache_write_tokens: int
    cache_read_tokens: int
    output_tokens: int
    cost_usd: float
    cancelled: bool
    estimated: bool
    reserved: float = 0.0


def default_database_url() -> str:
    """``sqlite:///`` under the user's data directory (XDG_DATA_HOME, else ~/.local/share)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return f"sqlite:///{Path(base) / 'assistant' / 'ledger.db'}"


def describe(url: str) -> str:
    """The URL without a password, for logs and messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://…@{rest.rsplit('@', 1)[1]}"
    return url


# ---------------------------------------------------------------------------------- stores


class MemoryStore:
    """No database (``assistant edit``'s own server, tests): one process's budgets
    (``BudgetBook``) and its requests counted per writer and day, not kept row by row, so a
    long-lived process does not grow with its requests (its batches never fail, so no id is
    ever written twice)."""

    def __init__(self) -> None:
        self.book = BudgetBook()
        self.totals: dict[tuple[str, str], list] = {}  # (writer, day) -> [requests, cost]
        self.accepted: dict[tuple[str, str], int] = {}
        self.parks: dict[str, tuple[float, str]] = {}
        self.connections: dict[str, str] = {}  # conn -> writer

    def reserve(self, writer: str, day: str, budget: float, amount: float) -> bool:
        return self.book.reserve(writer, day, budget, amount)

    def reserve_up_to(
        self, writer: str, day: str, budget: float, amount: float, ask: float
    ) -> float:
        for want in (ask, amount) if ask > amount else (amount,):
            if self.book.reserve(writer, day, budget, want):
                return want
        return 0.0

    def write(
        self,
        rows: list[Row],
        accepted: dict[tuple[str, str], int],
        releases: dict[tuple[str, str], float] | None = None,
    ) -> int:
        for (writer, day), amount in (releases or {}).items():
            self.book.settle(writer, day, amount, 0.0)
        for row in rows:
            total = self.totals.setdefault((row.writer, day_of(row.ts)), [0, 0.0])
            total[0] += 1
            total[1] += row.cost_usd
            self.book.settle(row.writer, row.day, row.reserved, row.cost_usd)
        for key, chars in accepted.items():
            self.accepted[key] = self.accepted.get(key, 0) + chars
        return len(rows)

    def heartbeat(self, now: float, stale_s: float = STALE_S) -> int:
        return 0  # one process: nobody else's holds

    def retire(self) -> None:
        pass

    def open_connection(self, writer: str, conn: str, limit: int) -> bool:
        if sum(1 for w in self.connections.values() if w == writer) >= limit:
            return False
        self.connections[conn] = writer
        return True

    def close_connection(self, conn: str) -> None:
        self.connections.pop(conn, None)

    def account(self, writer: str, day: str) -> tuple[float, float]:
        acc = self.book.account(writer, day)
        return acc.spent, acc.reserved

    def park(self, path: str, until: float, reason: str) -> None:
        if self.parks.get(path, (0.0, ""))[0] < until:
            self.parks[path] = (until, reason)

    def parked(self, path: str) -> tuple[float, str]:
        return self.parks.get(path, (0.0, ""))

    def claim_probe(self, path: str, now: float, lease: float) -> bool:
        until, _ = self.parks.get(path, (0.0, ""))
        if until > now:
            return False
        if path in self.parks:
            self.parks[path] = (now + lease, "probing|another process is probing")
        return True

    def unpark(self, path: str, now: float, lease: float) -> None:
        if self.parks.get(path, (0.0, ""))[0] <= now + lease:
            self.parks.pop(path, None)

    def usage(self, writer: str | None = None, since: float = 0.0) -> list[dict]:
        since_day = day_of(since)  # (whole days: no row times are kept)
        return summarise(
            [
                (w, n, cost)
                for (w, d), (n, cost) in self.totals.items()
                if d >= since_day and writer in (None, w)
            ],
            [
                (w, c)
                for (w, d), c in self.accepted.items()
                if d >= since_day and writer in (None, w)
            ],
        )

    def close(self) -> None:
        pass


def summarise(requests: list[tuple], accepted: list[tuple]) -> list[dict]:
    """``[{"writer", "requests", "cost_usd", "accepted_chars"}]`` by writer, from (writer,
    requests, cost) and (writer, chars) tuples."""
    by: dict[str, dict] = {}

    def entry(w: str) -> dict:
        return by.setdefault(w, {"writer": w, "requests": 0, "cost_usd": 0.0, "accepted_chars": 0})

    for w, n, cost in requests:
        e = entry(w)
        e["requests"] += int(n)
        e["cost_usd"] += float(cost or 0.0)
    for w, chars in accepted:
        entry(w)["accepted_chars"] += int(chars or 0)
    for e in by.values():
        e["cost_usd"] = round(e["cost_usd"], 8)
    return [by[w] for w in sorted(by)]


SQLITE_BUSY_S = 10.0  # how long a statement waits for another process's lock


def _switch_to_wal(db: Any) -> None:
    """``PRAGMA journal_mode = WAL``, again while another process holds the file. The workers of
    ``serve --workers N`` open the same file together at start, and the switch can fail at once
    with "database is locked" without waiting on ``busy_timeout`` (while another connection
    recovers or switches the same file): 12 of 300 starts of 8 stores at once did, and that
    worker did not start (``tests/server/test_ledger_start.py``)."""
    import sqlite3

    deadline = time.monotonic() + SQLITE_BUSY_S
    pause = 0.005
    while True:
        try:
            db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(pause)  # the ledger's own thread, at start: no event loop waits on it
        pause = min(pause * 2, 0.1)


class SqlStore:
    """SQLite or PostgreSQL through DB-API; one connection, used by one thread."""

    def __init__(self, url: str, process: str = "") -> None:
        self.url = url
        self.process = process  # whose holds this connection's reservations are
        if url.startswith("sqlite:///"):
            import sqlite3

            path = Path(url[len("sqlite:///") :]).expanduser()
            path.parent.mkdir(parents=True, exist_ok=True)
            self.kind = "sqlite"
            self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            self.db.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_S * 1000)}")
            _switch_to_wal(self.db)
            # NORMAL in WAL mode: a committed transaction survives a process kill (only a power
            # cut can lose the last ones), at a fraction of FULL's fsyncs.
            self.db.execute("PRAGMA synchronous = NORMAL")
        elif url.startswith(("postgresql://", "postgres://")):
            import psycopg

            self.kind = "postgresql"
            self.db = psycopg.connect(url, autocommit=True)
        else:
            raise ValueError(
                f"ASSISTANT_DATABASE_URL must be sqlite:///PATH or postgresql://…, not {describe(url)}"
            )
        self._migrate()

    # -- plumbing --------------------------------------------------------------------------

    def _sql(self, statement: str) -> str:
        return statement.replace("?", "%s") if self.kind == "postgresql" else statement

    def _exec(self, cur: Any, statement: str, args: tuple = ()) -> Any:
        cur.execute(self._sql(statement), args)
        return cur

    @contextlib.contextmanager
    def _transaction(self):
        cur = self.db.cursor()
        if self.kind == "sqlite":
            cur.execute("BEGIN IMMEDIATE")  # the write lock now: no upgrade deadlock later
        else:
            cur.execute("BEGIN")
        try:
            yield cur
        except BaseException:
            with contextlib.suppress(Exception):
                cur.execute("ROLLBACK")
            raise
        cur.execute("COMMIT")

    def _migrate(self) -> None:
        with self._transaction() as cur:
            if self.kind == "postgresql":  # workers of several boxes may start together
                cur.execute("SELECT pg_advisory_xact_lock(20261206)")
            cur.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            cur.execute("SELECT MAX(version) FROM schema_version")
            current = cur.fetchone()[0] or 0
            for version, statements in enumerate(MIGRATIONS, start=1):
                if version <= current:
                    continue
                for statement in statements:
                    cur.execute(statement)
                self._exec(cur, "INSERT INTO schema_version (version) VALUES (?)", (version,))

    @property
    def version(self) -> int:
        cur = self.db.cursor()
        cur.execute("SELECT MAX(version) FROM schema_version")
        return cur.fetchone()[0] or 0

    # -- budgets ---------------------------------------------------------------------------

    def reserve(self, writer: str, day: str, budget: float, amount: float) -> bool:
        return self.reserve_up_to(writer, day, budget, amount, amount) > 0

    def reserve_up_to(
        self, writer: str, day: str, budget: float, amount: float, ask: float
    ) -> float:
        """Hold ``ask`` of the writer's day if the budget has it, else ``amount``, else nothing;
        returns what is held (one transaction)."""
        with self._transaction() as cur:
            self._exec(
                cur,
                "INSERT INTO budgets (writer, day) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (writer, day),
            )
            for want in (ask, amount) if ask > amount else (amount,):
                self._exec(
                    cur,
                    "UPDATE budgets SET reserved = reserved + ? WHERE writer = ? AND day = ?"
                    " AND spent + reserved + ? <= ?",
                    (want, writer, day, want, budget + 1e-12),
                )
                if cur.rowcount == 1:
                    self._exec(
                        cur,
                        "INSERT INTO holds (process, writer, day, amount) VALUES (?, ?, ?, ?)"
                        " ON CONFLICT (process, writer, day) DO UPDATE"
                        " SET amount = holds.amount + excluded.amount",
                        (self.process, writer, day, want),
                    )
                    return want
            return 0.0

    def _give_back(self, cur: Any, writer: str, day: str, reserved: float, cost: float) -> None:
        if reserved > 0:
            self._exec(
                cur,
                "UPDATE holds SET amount = CASE WHEN amount > ? THEN amount - ? ELSE 0 END"
                " WHERE process = ? AND writer = ? AND day = ?",
                (reserved, reserved, self.process, writer, day),
            )
        self._exec(
            cur,
            "INSERT INTO budgets (writer, day, spent, reserved) VALUES (?, ?, ?, 0)"
            " ON CONFLICT (writer, day) DO UPDATE SET spent = budgets.spent + excluded.spent,"
            " reserved = CASE WHEN budgets.reserved > ? THEN budgets.reserved - ? ELSE 0 END",
            (writer, day, cost, reserved, reserved),
        )

    def account(self, writer: str, day: str) -> tuple[float, float]:
        cur = self._exec(
            self.db.cursor(),
            "SELECT spent, reserved FROM budgets WHERE writer = ? AND day = ?",
            (writer, day),
        )
        found = cur.fetchone()
        return (float(found[0]), float(found[1])) if found else (0.0, 0.0)

    # -- rows --------------------------------------------------------------------------------

    def write(
        self,
        rows: list[Row],
        accepted: dict[tuple[str, str], int],
        releases: dict[tuple[str, str], float] | None = None,
    ) -> int:
        """Book ``rows`` (each once, by id), add ``accepted`` characters and give back
        ``releases`` (reservations of requests that will not be booked), in one transaction."""
        new = 0
        with self._transaction() as cur:
            for (writer, day), amount in (releases or {}).items():
                self._give_back(cur, writer, day, amount, 0.0)
            for r in rows:
                self._exec(
                    cur,
                    "INSERT INTO requests (id, ts, day, writer, conn, model, role, input_tokens,"
                    " cache_write_tokens, cache_read_tokens, output_tokens, cost_usd, cancelled,"
                    " estimated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (id) DO NOTHING",
                    (
                        r.id,
                        r.ts,
                        r.day,
                        r.writer,
                        r.conn,
                        r.model,
                        r.role,
                        r.input_tokens,
                        r.cache_write_tokens,
                        r.cache_read_tokens,
                        r.output_tokens,
                        r.cost_usd,
                        int(r.cancelled),
                        int(r.estimated),
                    ),
                )
                if cur.rowcount == 1:  # booked once: a batch written again changes nothing
                    new += 1
                    self._give_back(cur, r.writer, r.day, r.reserved, r.cost_usd)
            for (writer, day), chars in accepted.items():
                self._exec(
                    cur,
                    "INSERT INTO accepted (writer, day, chars) VALUES (?, ?, ?)"
                    " ON CONFLICT (writer, day) DO UPDATE SET chars = accepted.chars + excluded.chars",
                    (writer, day, chars),
                )
        return new

    def heartbeat(self, now: float, stale_s: float = STALE_S) -> int:
        """This process is alive; give back the holds of processes not seen for ``stale_s``
        (their requests will never be booked). Returns how many processes were reclaimed."""
        with self._transaction() as cur:
            self._exec(
                cur,
                "INSERT INTO processes (id, seen) VALUES (?, ?)"
                " ON CONFLICT (id) DO UPDATE SET seen = excluded.seen",
                (self.process, now),
            )
            self._exec(cur, "SELECT id FROM processes WHERE seen < ?", (now - stale_s,))
            dead = [found[0] for found in cur.fetchall()]
            for process in dead:
                self._reclaim(cur, process)
            return len(dead)

    def open_connection(self, writer: str, conn: str, limit: int) -> bool:
        """Count ``conn`` against ``writer``'s ``limit`` of open connections, everywhere; False
        (nothing recorded) when it has that many already."""
        with self._transaction() as cur:
            if self.kind == "postgresql":  # SQLite's BEGIN IMMEDIATE already serialises this
                self._exec(cur, "SELECT pg_advisory_xact_lock(hashtext(?))", (writer,))
            self._exec(cur, "SELECT COUNT(*) FROM connections WHERE writer = ?", (writer,))
            if cur.fetchone()[0] >= limit:
                return False
            self._exec(
                cur,
                "INSERT INTO connections (process, conn, writer) VALUES (?, ?, ?)",
                (self.process, conn, writer),
            )
            return True

    def close_connection(self, conn: str) -> None:
        with self._transaction() as cur:
            self._exec(
                cur, "DELETE FROM connections WHERE process = ? AND conn = ?", (self.process, conn)
            )

    def retire(self) -> None:
        """This process stops: whatever it still holds goes back (nothing, after a drain)."""
        with self._transaction() as cur:
            self._reclaim(cur, self.process)

    def _reclaim(self, cur: Any, process: str) -> None:
        self._exec(
            cur,
            "SELECT writer, day, amount FROM holds WHERE process = ? AND amount > 0",
            (process,),
        )
        for writer, day, amount in cur.fetchall():
            self._exec(
                cur,
                "UPDATE budgets SET reserved = CASE WHEN reserved > ? THEN reserved - ?"
                " ELSE 0 END WHERE writer = ? AND day = ?",
                (amount, amount, writer, day),
            )
        self._exec(cur, "DELETE FROM holds WHERE process = ?", (process,))
        self._exec(cur, "DELETE FROM connections WHERE process = ?", (process,))
        self._exec(cur, "DELETE FROM processes WHERE id = ?", (process,))

    # -- the shared provider park ------------------------------------------------------------

    def park(self, path: str, until: float, reason: str) -> None:
        with self._transaction() as cur:
            self._exec(
                cur,
                "INSERT INTO provider_park (path, until, reason) VALUES (?, ?, ?)"
                " ON CONFLICT (path) DO UPDATE SET until = excluded.until, reason = excluded.reason"
                " WHERE provider_park.until < excluded.until",
                (path, until, reason),
            )

    def claim_probe(self, path: str, now: float, lease: float) -> bool:
        """Whether this process may probe ``path`` now: its window is over and no other process
        holds the probe (the claim holds it for ``lease`` seconds)."""
        with self._transaction() as cur:
            self._exec(
                cur,
                "UPDATE provider_park SET until = ?, reason = ? WHERE path = ? AND until <= ?",
                (now + lease, "probing|another process is probing", path, now),
            )
            if cur.rowcount == 1:
                return True
            self._exec(cur, "SELECT until FROM provider_park WHERE path = ?", (path,))
            return cur.fetchone() is None

    def unpark(self, path: str, now: float, lease: float) -> None:
        """The primary answered: clear a window no longer than a probe's lease (a longer one was
        published since by another process, and stands)."""
        with self._transaction() as cur:
            self._exec(
                cur, "UPDATE provider_park SET until = 0 WHERE path = ? AND until <= ?",
                (path, now + lease),
            )  # fmt: skip

    def parked(self, path: str) -> tuple[float, str]:
        cur = self._exec(
            self.db.cursor(), "SELECT until, reason FROM provider_park WHERE path = ?", (path,)
        )
        found = cur.fetchone()
        return (float(found[0]), str(found[1])) if found else (0.0, "")

    # -- reading -------------------------------------------------------------------------------

    def usage(self, writer: str | None = None, since: float = 0.0) -> list[dict]:
        requests = self._by_writer("COUNT(*), SUM(cost_usd)", "requests", "ts", since, writer)
        accepted = self._by_writer("SUM(chars)", "accepted", "day", day_of(since), writer)
        return summarise(requests, accepted)

    def _by_writer(
        self, columns: str, table: str, since_column: str, since: Any, writer: str | None
    ) -> list[tuple]:
        where, args = f"{since_column} >= ?", [since]
        if writer is not None:
            where, args = where + " AND writer = ?", [*args, writer]
        cur = self._exec(
            self.db.cursor(),
            f"SELECT writer, {columns} FROM {table} WHERE {where} GROUP BY writer",
            tuple(args),
        )
        return cur.fetchall()

    def rows(self) -> list[tuple]:
        cur = self.db.cursor()
        cur.execute("SELECT id, writer, model, role, cost_usd, cancelled FROM requests")
        return cur.fetchall()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.db.close()


def open_store(url: str | None, process: str = "") -> MemoryStore | SqlStore:
    return MemoryStore() if not url else SqlStore(url, process)


# ------------------------------------------------------------------------ the async front


class Ledger:
    """One per process: the store, its thread, and the rows waiting for their batch.

    Only the reservations (:meth:`reserve`, :meth:`reserve_up_to`) and :meth:`call` talk to the
    store at once (from the thread, awaited by the request that needs the answer);
    :meth:`record`, :meth:`accepted` and :meth:`release_later` only append to the next batch."""

    def __init__(self, url: str | None) -> None:
        self.url = url
        self._ids = itertools.count(1)
        self._process = uuid.uuid4().hex[:12]
        self._rows: list[Row] = []
        self._accepted: dict[tuple[str, str], int] = {}
        self._releases: dict[tuple[str, str], float] = {}  # (writer, day) -> $ to give back
        self._jobs: list[tuple[Any, tuple, asyncio.Future, asyncio.AbstractEventLoop]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._opened = threading.Event()
        self.store: MemoryStore | SqlStore | None = None
        self.error: BaseException | None = None
        self.written = 0  # rows committed by this process
        self.failed_batches = 0

    async def start(self) -> Ledger:
        self._thread = threading.Thread(target=self._run, name="ledger", daemon=True)
        self._thread.start()
        await asyncio.get_running_loop().run_in_executor(None, self._opened.wait)
        if self.error is not None:
            raise self.error
        return self

    # -- the hot path ------------------------------------------------------------------------

    def new_id(self) -> str:
        return f"{self._process}-{next(self._ids)}"

    def record(self, row: Row) -> None:
        with self._lock:
            self._rows.append(row)
            if len(self._rows) >= BATCH_ROWS:
                self._wake.set()

    def accepted(self, writer: str, chars: int, now: float | None = None) -> None:
        key = (writer, day_of(time.time() if now is None else now))
        with self._lock:
            self._accepted[key] = self._accepted.get(key, 0) + chars

    async def reserve(self, writer: str, day: str, budget: float, amount: float) -> bool:
        return await self._call("reserve", (writer, day, budget, amount))

    async def reserve_up_to(
        self, writer: str, day: str, budget: float, amount: float, ask: float
    ) -> float:
        return await self._call("reserve_up_to", (writer, day, budget, amount, ask))

    def release_later(self, writer: str, day: str, amount: float) -> None:
        """Give back a reservation with the next batch (nobody waits for it): a request the
        offline tier answered, or one that failed before it was billed. A transaction of its
        own for each was a database round trip on the loop's side for most reserved requests
        at 1,000 writers (the offline tier answers the pauses the model is too busy for)."""
        key = (writer, day)
        with self._lock:
            self._releases[key] = self._releases.get(key, 0.0) + amount

    async def sync(self) -> int:
        """Commit what is waiting now; the rows this process has written so far."""
        return await self._call("_sync", ())

    async def call(self, method: str, *args: Any) -> Any:
        """Any store method, on the ledger's thread (usage reports, the provider park)."""
        return await self._call(method, args)

    def _call(self, method: str, args: tuple) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        if self._stopping or self._thread is None or not self._thread.is_alive():
            fut.set_exception(RuntimeError("the usage ledger is not running"))
            return fut
        with self._lock:
            self._jobs.append((method, args, fut, loop))
        if not self._wake.is_set():  # the thread clears it before taking the jobs: ours with them
            self._wake.set()
        return fut

    # -- the thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self.store = open_store(self.url, self._process)
        except BaseException as exc:  # reported by start()
            self.error = exc
            self._opened.set()
            return
        self._opened.set()
        last_flush = time.monotonic()
        last_beat = -HEARTBEAT_S
        while True:
            if time.monotonic() - last_beat >= HEARTBEAT_S and not self._stopping:
                last_beat = time.monotonic()
                self._beat()
            self._wake.wait(FLUSH_EVERY_S)
            self._wake.clear()
            with self._lock:
                jobs, self._jobs = self._jobs, []
                settle_first = bool(self._rows or self._releases) and any(
                    job[0] in ("reserve", "reserve_up_to") for job in jobs
                )
            if settle_first:
                # A reservation waits for this process's finished requests to be booked: their
                # reservations come back first, so a writer is not refused on money its own
                # last request did not spend.
                last_flush = time.monotonic()
                self._flush()
            for method, args, fut, loop in jobs:
                self._answer(method, args, fut, loop)
            now = time.monotonic()
            with self._lock:
                due = self._rows or self._accepted or self._releases
                due = due and (
                    now - last_flush >= FLUSH_EVERY_S
                    or len(self._rows) >= BATCH_ROWS
                    or self._stopping
                )
            if due:
                last_flush = now
                self._flush()
            if self._stopping:
                with self._lock:
                    done = not (self._rows or self._accepted or self._releases or self._jobs)
                if done:
                    break
        with contextlib.suppress(Exception):
            self.store.retire()
        self.store.close()

    def _beat(self) -> None:
        try:
            reclaimed = self.store.heartbeat(time.time())
        except Exception:
            LOG.warning("ledger heartbeat failed", exc_info=True)
            return
        if reclaimed:
            LOG.warning("gave back the reservations of %d dead server process(es)", reclaimed)

    def _answer(self, method: str, args: tuple, fut: asyncio.Future, loop: Any) -> None:
        try:
            if method == "_sync":
                self._flush()
                result, error = self.written, None
            else:
                result, error = getattr(self.store, method)(*args), None
        except Exception as exc:
            result, error = None, exc

        def settle() -> None:
            if fut.done():
                return
            if error is not None:
                fut.set_exception(error)
            else:
                fut.set_result(result)

        with contextlib.suppress(RuntimeError):  # the loop has closed
            loop.call_soon_threadsafe(settle)

    def _flush(self) -> None:
        with self._lock:
            rows, self._rows = self._rows, []
            accepted, self._accepted = self._accepted, {}
            releases, self._releases = self._releases, {}
        try:
            self.written += self.store.write(rows, accepted, releases)
        except Exception:
            # Kept for the next batch (the ids make a retry harmless); a database that is down
            # must not take the suggestions with it.
            self.failed_batches += 1
            LOG.exception("ledger batch failed (%d rows kept for the next)", len(rows))
            with self._lock:
                self._rows[:0] = rows
                for key, chars in accepted.items():
                    self._accepted[key] = self._accepted.get(key, 0) + chars
                for key, amount in releases.items():
                    self._releases[key] = self._releases.get(key, 0.0) + amount
            time.sleep(min(1.0, 0.1 * self.failed_batches))  # off the loop: the ledger thread

    async def aclose(self) -> None:
        """Write what is waiting and stop the thread (at most 5 s)."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join, 5.0)
