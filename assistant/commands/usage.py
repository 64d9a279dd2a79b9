"""``assistant usage``: what each writer spent and accepted, read from the usage ledger.

The same report as the server's ``/v1/usage``, for an operator at a shell on any box that can
reach the database (the ledger is shared by every worker and box, so one query sees them all).
"""

from __future__ import annotations

import sys

import orjson

from server.ledger import SqlStore, default_database_url, describe

from ..budget import usage_since
from ..config import load_settings


def run(args) -> int:
    try:
        settings = load_settings()
        since = usage_since(args.since)
    except ValueError as exc:
        print(f"assistant usage: {exc}", file=sys.stderr)
        return 2
    url = settings.database_url or default_database_url()
    if url.startswith("sqlite:///") and not _sqlite_file_exists(url):
        writers: list[dict] = []  # no server has written a ledger here yet
    else:
        try:
            store = SqlStore(url)
        except Exception as exc:  # a database that is down or a bad URL: say which, no trace
            print(f"assistant usage: cannot open {describe(url)}: {exc}", file=sys.stderr)
            return 1
        try:
            writers = store.usage(args.writer, since)
        finally:
            store.close()
    if args.json:
        print(orjson.dumps({"writers": writers}).decode())
        return 0
    if not writers:
        print("no requests recorded for that period")
        return 0
    print(f"{'writer':<32} {'requests':>9} {'cost_usd':>12} {'accepted_chars':>15}")
    for w in writers:
        print(
            f"{w['writer'][:32]:<32} {w['requests']:>9} {w['cost_usd']:>12.6f}"
            f" {w['accepted_chars']:>15}"
        )
    return 0


def _sqlite_file_exists(url: str) -> bool:
    from pathlib import Path

    return Path(url[len("sqlite:///") :]).expanduser().is_file()
