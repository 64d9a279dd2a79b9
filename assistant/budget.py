"""Per-writer daily budgets as arithmetic: the worst case a request can cost, the UTC day it is
booked on, and the rule a reservation obeys. No I/O: the server's ledger (``server/ledger.py``)
applies the same rule in one SQL statement so every worker of every box obeys it together, and
:class:`BudgetBook` is that rule in memory (the reference the stores are tested against).

Why reserve the worst case before a request goes out: a writer typing on several connections
(tabs, workers, boxes) has several requests in flight at once; booking only after the fact lets
each of them start against a budget the others are about to spend. Reserving first means the
spent-plus-reserved sum never passes the budget, and settling with the real usage (always at or
under the worst case) gives the unused part back.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .pricing import Catalog, default_catalog

# Characters per token assumed for the worst case: half the 4 the estimates use elsewhere
# (pricing.estimate_tokens), so a reservation covers text that tokenizes twice as densely.
WORST_CHARS_PER_TOKEN = 2.0


def day_of(unix: float) -> str:
    """The UTC day a request at ``unix`` is booked on, as YYYY-MM-DD."""
    return _day_name(int(unix // 86_400))  # Unix time has exactly 86,400 s a day


@functools.lru_cache(maxsize=8)
def _day_name(days: int) -> str:
    # Formatted once a day, not per model request (each books and reserves on its day).
    return datetime.fromtimestamp(days * 86_400, UTC).strftime("%Y-%m-%d")


def resets_at(unix: float) -> float:
    """The Unix time the budget of ``unix``'s UTC day resets (the next UTC midnight)."""
    day = datetime.fromtimestamp(unix, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return (day + timedelta(days=1)).timestamp()


def worst_case_cost(
    model: str, prompt_chars: int, max_output_tokens: int, catalog: Catalog | None = None
) -> float:
    """The most a request of ``prompt_chars`` characters and at most ``max_output_tokens``
    output tokens (as sent) can cost on ``model``: every input token at the dearest input rate
    (plain, or a one-hour cache write), long-context prices once the prompt may pass the
    threshold. KeyError for a model the price table does not know."""
    entry = (catalog or default_catalog()).price(model)
    tokens = math.ceil(prompt_chars / WORST_CHARS_PER_TOKEN * entry.rules.tokenizer_factor)
    prices = entry
    if entry.long_context is not None and tokens > entry.long_context.threshold_tokens:
        prices = entry.long_context
    dearest_input = max(prices.input, prices.cache_write_5m, prices.cache_write_1h)
    return (tokens * dearest_input + max(0, max_output_tokens) * prices.output) / 1_000_000


def may_reserve(budget: float | None, spent: float, reserved: float, amount: float) -> bool:
    """The rule: a reservation is granted while spent + reserved + it stays within the budget
    (no budget: always). The SQL stores say the same in their UPDATE's WHERE clause."""
    return budget is None or spent + reserved + amount <= budget + 1e-12


@dataclass
class Account:
    spent: float = 0.0
    reserved: float = 0.0


class BudgetBook:
    """Budgets in memory, per (writer, day): the reference for the stores, and what a server
    with no database shares between the connections of its one process."""

    def __init__(self) -> None:
        self.accounts: dict[tuple[str, str], Account] = {}

    def account(self, writer: str, day: str) -> Account:
        return self.accounts.setdefault((writer, day), Account())

    def reserve(self, writer: str, day: str, budget: float | None, amount: float) -> bool:
        acc = self.account(writer, day)
        if not may_reserve(budget, acc.spent, acc.reserved, amount):
            return False
        acc.reserved += amount
        return True

    def settle(self, writer: str, day: str, reserved: float, cost: float) -> None:
        """A reserved request ended: ``cost`` is spent, its reservation given back."""
        acc = self.account(writer, day)
        acc.reserved = max(0.0, acc.reserved - reserved)
        acc.spent += cost


@dataclass
class Reservation:
    """A request's claim on its writer's day: ``amount`` dollars held until the request is
    booked (:meth:`take`, once) or given back. ``granted`` False: the budget is spent."""

    writer: str
    day: str
    amount: float
    granted: bool = True

    def take(self) -> float:
        """What is still held, now handed to whoever books or gives it back (0 after)."""
        amount = self.amount if self.granted else 0.0
        self.amount = 0.0
        return amount


def usage_since(text: str | None) -> float:
    """``--since`` / ``?since=``: a UTC date (YYYY-MM-DD) or a full ISO time, as Unix time;
    none: the start of today (UTC). ValueError with a message for anything else."""
    if not text:
        now = datetime.now(UTC)
        return now.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"since must be a date (YYYY-MM-DD) or an ISO time, not {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
