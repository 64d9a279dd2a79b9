"""Which provider answers: Anthropic with the offline tier behind it, the offline tier alone, or
the built-in emulator standing in for Anthropic.

``start_providers`` is called from the app's lifespan, so the emulator (when asked for) runs on
the server's own event loop and everything is closed when the server stops.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from assistant.budget import worst_case_cost
from assistant.config import Settings
from assistant.pricing import Usage, cost_usd, default_catalog, estimate_tokens
from assistant.providers.base import CompletionRequest, Provider
from assistant.providers.factory import make_suggest_provider
from assistant.providers.prompts import prefix_window_chars, suggest_prompt_chars_bound
from assistant.providers.tiered import TieredProvider, TierStatus
from assistant.review.factory import make_reviewer

EMULATOR_KEY = "emulator-key"
StatusListener = Callable[[TierStatus], None]


def price(model: str, usage: Usage) -> float:
    """Dollars for ``usage``; 0 for a model the price table does not know."""
    try:
        return cost_usd(model, usage)
    except KeyError:
        return 0.0


# What a review prompt adds to the document (instructions, schema, passage markup), counted
# generously: the review's system prompts and schemas are about 6,000 characters.
REVIEW_PROMPT_OVERHEAD_CHARS = 20_000


def worst_case(model: str, prompt_chars: int, max_tokens: int) -> float:
    """:func:`worst_case_cost` with ``max_tokens`` in Haiku 4.5 tokens (as settings give them),
    0 for a model the price table does not know."""
    try:
        rules = default_catalog().price(model).rules
        return worst_case_cost(model, prompt_chars, rules.tokens(max_tokens))
    except KeyError:
        return 0.0


@dataclass
class ProviderSetup:
    provider: Provider
    label: str  # "anthropic" | "offline" | "emulator" (the ready frame's `provider`)
    settings: Settings  # effective settings (emulator base_url when there is one)
    offline: Provider | None = None
    reviewer: Any | None = None
    checker: Any | None = None  # checks as you type with the model (a key); None offline
    emulator: Any | None = None
    _owned: list = field(default_factory=list)

    @property
    def model(self) -> str:
        return getattr(self.provider, "model", "") or ""

    @property
    def anthropic(self) -> Provider | None:
        p = self.provider
        if isinstance(p, TieredProvider):
            p = p.primary
        return p if p is not None and getattr(p, "name", "") == "anthropic" else None

    @property
    def status(self) -> TierStatus | None:
        return self.provider.status if isinstance(self.provider, TieredProvider) else None

    def billable_now(self) -> bool:
        """Whether a request started now would (probably) go to Anthropic."""
        p = self.provider
        if isinstance(p, TieredProvider):
            return p.primary is not None and p.status.active == p.primary.name == "anthropic"
        return getattr(p, "name", "") == "anthropic"

    def estimate_cancelled(
        self, prefix: str, suffix: str, streamed: str, started: Usage | None = None
    ) -> tuple[str, Usage]:
        """Model and estimated usage of an Anthropic request cut short after ``streamed``;
        ``started``: the usage its message_start reported, when it came (its input as billed,
        cache writes included, where the estimate can only guess)."""
        a = self.anthropic
        model = getattr(a, "model", "") or self.settings.suggest_model
        if started is not None:  # nothing to build: the input is known
            from assistant.providers.anthropic import billed_so_far

            return model, billed_so_far(started, model, streamed)
        params_of = getattr(a, "params", None)
        if params_of is not None:
            try:
                from assistant.providers.anthropic import estimated_usage

                req = CompletionRequest(prefix, suffix, self.settings.suggest_max_tokens)
                return model, estimated_usage(params_of(req), streamed)
            except Exception:
                pass
        usage = Usage(
            input_tokens=estimate_tokens(prefix[-8000:] + suffix[:2000]),
            output_tokens=estimate_tokens(streamed),
            estimated=True,
        )
        return model, usage

    def suggestion_worst_case(self, prefix: str, suffix: str) -> tuple[str, float]:
        """The model and the most a suggestion request for this text can cost (its reservation)."""
        a = self.anthropic
        model = getattr(a, "model", "") or self.settings.suggest_model
        max_tokens = self.settings.suggest_max_tokens
        rules = getattr(a, "rules", None)
        if a is not None and rules is not None:
            try:
                window = prefix_window_chars(a.cache_min_tokens, rules.tokenizer_factor)
                chars = suggest_prompt_chars_bound(len(prefix), len(suffix), window)
                return model, worst_case_cost(model, chars, rules.tokens(max_tokens))
            except Exception:
                pass
        return model, worst_case(model, len(prefix) + len(suffix) + 8000, max_tokens)

    def review_worst_case(self, text: str) -> float:
        """The most a review of ``text`` can cost: the first reader and the checker each read all
        of it and write their whole ``review_max_tokens``."""
        s = self.settings
        chars = len(text) + REVIEW_PROMPT_OVERHEAD_CHARS
        models = {s.review_triage_model, s.review_model}
        return sum(worst_case(m, chars, s.review_max_tokens) for m in models)

    def until_unix(self, until: float | None) -> float | None:
        if until is None:
            return None
        return round(time.time() + (until - time.monotonic()), 3)

    async def aclose(self) -> None:
        for thing in reversed(self._owned):
            with contextlib.suppress(Exception):
                closer = getattr(thing, "aclose", None) or getattr(thing, "stop", None)
                if closer is not None:
                    result = closer()
                    if hasattr(result, "__await__"):
                        await result


def _label_of(provider: Provider) -> str:
    if isinstance(provider, TieredProvider):
        return "anthropic" if provider.primary is not None else "offline"
    return "anthropic" if getattr(provider, "name", "") == "anthropic" else "offline"


def _listen(provider: Provider, listener: StatusListener | None) -> None:
    if listener is None or not isinstance(provider, TieredProvider):
        return
    previous = provider.on_status

    def both(status: TierStatus) -> None:
        if previous is not None:
            previous(status)
        listener(status)

    provider.on_status = both


async def start_providers(
    settings: Settings,
    *,
    provider: Provider | None = None,
    reviewer: Any | None = None,
    label: str | None = None,
    emulator: Any = False,
    on_status: StatusListener | None = None,
) -> ProviderSetup:
    """Build (or adopt) the provider and reviewer. Adopted ones are not closed by us.
    ``emulator``: True for the built-in emulator's defaults, or an ``EmulatorConfig``."""
    owned: list = []
    emu = None
    if emulator and provider is None:
        from assistant.emulator import Emulator, EmulatorConfig

        config = emulator if isinstance(emulator, EmulatorConfig) else EmulatorConfig("haiku")
        emu = await Emulator(config).start()
        owned.append(emu)
        settings = settings.with_(base_url=emu.base_url, api_key=EMULATOR_KEY)
        label = label or "emulator"

    if provider is None:
        provider = make_suggest_provider(settings, on_status=on_status)
        offline = provider.fallback
        owned.append(provider)
    else:
        _listen(provider, on_status)
        offline = provider.fallback if isinstance(provider, TieredProvider) else None
        if offline is None and _label_of(provider) == "offline":
            offline = provider

    if reviewer is None:
        reviewer = make_reviewer(settings)
        owned.append(reviewer)
    checker = None
    if settings.checks == "auto" and settings.api_key and _label_of(provider) == "anthropic":
        from assistant.check.model import ModelChecker

        checker = ModelChecker(settings)
        owned.append(checker)
    setup = ProviderSetup(
        provider=provider,
        label=label or _label_of(provider),
        settings=settings,
        offline=offline,
        reviewer=reviewer,
        checker=checker,
        emulator=emu,
    )
    setup._owned = owned
    return setup
