"""Token usage and its price.

Prices live in ``data/models.toml`` (or the file named by ``ASSISTANT_MODELS``) so that a price
change is a data edit. Every request is costed, including cancelled ones, whose output is
estimated from the streamed text and flagged ``estimated``.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path


@dataclass(frozen=True)
class ModelPrice:
    model: str
    family: str
    input: float
    output: float
    cache_write_5m: float
    cache_write_1h: float
    cache_read: float
    min_cacheable_tokens: int = 0
    retires: str | None = None


@dataclass(frozen=True)
class Usage:
    """Tokens of one request, in the Anthropic usage shape."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    estimated: bool = False

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_creation_input_tokens + other.cache_creation_input_tokens,
            self.cache_read_input_tokens + other.cache_read_input_tokens,
            self.estimated or other.estimated,
        )

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Catalog:
    roles: dict[str, str]
    prices: dict[str, ModelPrice]

    def price(self, model: str) -> ModelPrice:
        try:
            return self.prices[model]
        except KeyError:
            raise KeyError(f"no price for model {model!r}; add it to models.toml") from None


def load_catalog(path: str | Path | None = None) -> Catalog:
    path = path or os.environ.get("ASSISTANT_MODELS")
    if path:
        raw = tomllib.loads(Path(path).read_text())
    else:
        raw = tomllib.loads(resources.files("assistant").joinpath("data/models.toml").read_text())
    prices = {name: ModelPrice(model=name, **spec) for name, spec in raw["models"].items()}
    return Catalog(roles=dict(raw["roles"]), prices=prices)


@lru_cache(maxsize=1)
def default_catalog() -> Catalog:
    return load_catalog()


def cost_usd(
    model: str, usage: Usage, catalog: Catalog | None = None, cache_ttl: str = "5m"
) -> float:
    """Dollars for ``usage`` on ``model``. Cache writes are priced at the 5-minute rate by default."""
    p = (catalog or default_catalog()).price(model)
    write = p.cache_write_1h if cache_ttl == "1h" else p.cache_write_5m
    return (
        usage.input_tokens * p.input
        + usage.output_tokens * p.output
        + usage.cache_creation_input_tokens * write
        + usage.cache_read_input_tokens * p.cache_read
    ) / 1_000_000


def estimate_tokens(text: str) -> int:
    """Rough token count for text we did not get a usage report for (about 4 chars a token)."""
    if not text:
        return 0
    return max(1, (len(text) + 3) // 4)


@dataclass
class Ledger:
    """Running totals by model: what a session, a connection or the whole server spent."""

    by_model: dict[str, Usage] = field(default_factory=dict)
    cost_by_model: dict[str, float] = field(default_factory=dict)
    requests: int = 0
    estimated_requests: int = 0

    def add(self, model: str, usage: Usage, catalog: Catalog | None = None) -> float:
        cost = cost_usd(model, usage, catalog)
        self.by_model[model] = self.by_model.get(model, Usage()) + usage
        self.cost_by_model[model] = self.cost_by_model.get(model, 0.0) + cost
        self.requests += 1
        self.estimated_requests += usage.estimated
        return cost

    @property
    def total_cost(self) -> float:
        return sum(self.cost_by_model.values())

    @property
    def total(self) -> Usage:
        out = Usage()
        for u in self.by_model.values():
            out = out + u
        return out
