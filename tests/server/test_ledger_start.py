"""The SQLite ledger when several server processes open one file at once (``serve --workers N``
with ``ASSISTANT_DATABASE_URL=sqlite:///…``): every one of them starts. Switching the file to WAL
could fail at once with "database is locked" (12 of 300 rounds below), and that worker exited."""

import threading

from server.ledger import SqlStore

STORES = 8  # opened together, as 8 workers would
ROUNDS = 300  # fresh files: the race is in the first opening of one


def test_stores_opened_together_on_a_new_file_all_open(tmp_path):
    failures: list[str] = []
    for n in range(ROUNDS):
        url = f"sqlite:///{tmp_path}/ledger-{n}.db"
        start = threading.Barrier(STORES)

        def open_store(url: str = url, start: threading.Barrier = start) -> None:
            start.wait()
            try:
                store = SqlStore(url, "worker")
            except Exception as exc:  # noqa: BLE001 (collected, then asserted)
                failures.append(repr(exc))
            else:
                assert store.version >= 1
                store.close()

        threads = [threading.Thread(target=open_store) for _ in range(STORES)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == []
