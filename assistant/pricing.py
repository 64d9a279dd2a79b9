"""Token usage and its price, and what a request to each model may contain.

Prices and request rules live in ``data/models.toml`` (or the file named by
``ASSISTANT_MODELS``) so that a price change, a new model or a new API rule is a data edit. Every
request is costed, including cancelled ones, whose output is estimated from the streamed text and
flagged ``estimated``. A request whose prompt passes a model's long-context threshold is billed
wholly at the long-context prices.
"""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from importlib import resources
from pathlib import Path

THINKING_MODES = ("none", "budget", "adaptive")


@dataclass(frozen=True)
class LongContextPrice:
    """Prices for a whole request whose prompt is over ``threshold_tokens``."""

    threshold_tokens: int
    input: float
    output: float
    cache_write_5m: float
    cache_write_1h: float
    cache_read: float


@dataclass(frozen=True)
class ModelRules:
    """What a Messages request to one model may contain (see the header of models.toml).

    The provider builds its requests from these and the emulator refuses what they forbid, so a
    request that the real API would refuse fails a test here first.
    """

    sampling: bool = True
    prefill: bool = True
    thinking: str = "none"
    thinking_default_on: bool = False
    thinking_off: str = ""
    thinking_off_efforts: tuple[str, ...] = ()
    effort_levels: tuple[str, ...] = ()
    default_effort: str | None = None
    structured_output: bool = True
    tokenizer_factor: float = 1.0

    def __post_init__(self) -> None:
        if self.thinking not in THINKING_MODES:
            raise ValueError(f"thinking must be one of {THINKING_MODES}, not {self.thinking!r}")
        if self.tokenizer_factor <= 0:
            raise ValueError("tokenizer_factor must be positive")

    def quiet_thinking(self) -> dict:
        """Request fields that keep the model from thinking before it answers.

        Nothing for a model that does not think unless asked; the model's ``thinking_off`` type
        where it thinks by default and can be turned off; else the lowest effort level.
        """
        if not self.thinking_default_on:
            return {}
        if self.thinking_off:
            return {"thinking": {"type": self.thinking_off}}
        if self.effort_levels:
            return {"output_config": {"effort": self.effort_levels[0]}}
        return {}

    def tokens(self, base_tokens: float) -> int:
        """``base_tokens`` (Haiku 4.5's count, or an estimate of it) in this model's tokens."""
        return math.ceil(base_tokens * self.tokenizer_factor) if base_tokens > 0 else 0


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
    rules: ModelRules = ModelRules()
    long_context: LongContextPrice | None = None


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
        # Spelled out: dataclasses.asdict deep-copies field by field, and every done frame
        # with a usage calls this.
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "estimated": self.estimated,
        }


@dataclass(frozen=True)
class Catalog:
    roles: dict[str, str]
    prices: dict[str, ModelPrice]

    def price(self, model: str) -> ModelPrice:
        try:
            return self.prices[model]
        except KeyError:
            raise KeyError(f"no price for model {model!r}; add it to models.toml") from None

    def rules(self, model: str) -> ModelRules | None:
        """The model's request rules; None for a model the catalog does not know."""
        entry = self.prices.get(model)
        return entry.rules if entry is not None else None


def _model_entry(name: str, spec: dict) -> ModelPrice:
    spec = dict(spec)
    rules = spec.pop("rules", None)
    long_context = spec.pop("long_context", None)
    if rules is not None:
        rules = ModelRules(**{k: tuple(v) if isinstance(v, list) else v for k, v in rules.items()})
    return ModelPrice(
        model=name,
        **spec,
        rules=rules or ModelRules(),
        long_context=LongContextPrice(**long_context) if long_context else None,
    )


def load_catalog(path: str | Path | None = None) -> Catalog:
    path = path or os.environ.get("ASSISTANT_MODELS")
    if path:
        raw = tomllib.loads(Path(path).read_text())
    else:
        raw = tomllib.loads(resources.files("assistant").joinpath("data/models.toml").read_text())
    prices = {name: _model_entry(name, spec) for name, spec in raw["models"].items()}
    return Catalog(roles=dict(raw["roles"]), prices=prices)


@lru_cache(maxsize=1)
def default_catalog() -> Catalog:
    return load_catalog()


def cost_usd(
    model: str,
    usage: Usage,
    catalog: Catalog | None = None,
    cache_ttl: str = "5m",
    *,
    cache_write_1h_tokens: int = 0,
) -> float:
    """Dollars for one request's ``usage`` on ``model``. Cache writes are priced at the
    ``cache_ttl`` rate, except ``cache_write_1h_tokens`` of them (the usage's
    ``cache_creation.ephemeral_1h_input_tokens``) at the 1-hour rate. A prompt over the model's
    long-context threshold bills the whole request at the long-context prices, so cost a sum of
    requests request by request, not as one Usage."""
    entry = (catalog or default_catalog()).price(model)
    p: ModelPrice | LongContextPrice = entry
    prompt = usage.input_tokens + usage.cache_creation_input_tokens + usage.cache_read_input_tokens
    if entry.long_context is not None and prompt > entry.long_context.threshold_tokens:
        p = entry.long_context
    write = p.cache_write_1h if cache_ttl == "1h" else p.cache_write_5m
    written_1h = min(cache_write_1h_tokens, usage.cache_creation_input_tokens)
    return (
        usage.input_tokens * p.input
        + usage.output_tokens * p.output
        + (usage.cache_creation_input_tokens - written_1h) * write
        + written_1h * p.cache_write_1h
        + usage.cache_read_input_tokens * p.cache_read
    ) / 1_000_000


def estimate_tokens(text: str, factor: float = 1.0) -> int:
    """Rough token count for text we did not get a usage report for: about 4 chars a token on
    Haiku 4.5's tokenizer, times ``factor`` for a model whose tokenizer counts more."""
    if not text:
        return 0
    return max(1, math.ceil(len(text) / 4 * factor))


def retirement_warnings(
    models: dict[str, str], today: date, catalog: Catalog | None = None
) -> list[str]:
    """One line per configured model (``{role: model}``) that is retired or retires within 30
    days, so the server and the CLI can say so at start instead of failing on the first call."""
    cat = catalog or default_catalog()
    lines = []
    for role, model in models.items():
        entry = cat.prices.get(model)
        if entry is None or not entry.retires:
            continue
        retires = date.fromisoformat(entry.retires)
        suggestion = cat.roles.get(role)
        hint = (
            f"; the default {role} model is {suggestion}" if suggestion not in (None, model) else ""
        )
        if retires <= today:
            lines.append(f"{role} model {model} was retired on {retires}: requests will fail{hint}")
        elif (retires - today).days <= 30:
            lines.append(f"{role} model {model} retires on {retires}{hint}")
    return lines


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
