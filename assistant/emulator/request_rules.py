"""What each model refuses, and how much it thinks, read from the same models.toml as the client.

The provider builds its requests from :class:`~assistant.pricing.ModelRules`; the emulator refuses
what those rules forbid with the API's own error (HTTP 400 ``invalid_request_error``), so a request
that the real API would refuse fails a test here instead of in front of a user. A model the catalog
does not know is held to no rules. Thinking is emulated too: a model that thinks streams a
thinking block before its text, and those tokens count against ``max_tokens``, so a suggestion
request that leaves thinking on comes back without text, as it would from the API.
"""

from __future__ import annotations

import hashlib
import math

from ..pricing import ModelRules, default_catalog
from .text import tokenize

SAMPLING_FIELDS = ("temperature", "top_p", "top_k")
DEFAULT_MIN_CACHEABLE_TOKENS = 4096  # a model the catalog does not know
# Emulated thinking length, in (Haiku 4.5) tokens, by effort level: enough at every level to use
# up a suggestion's whole max_tokens, as a real model's thinking would.
THINKING_TOKENS = {"low": 32, "medium": 96, "high": 192, "xhigh": 384, "max": 512}
_THOUGHT = (
    "The writer has paused mid-sentence, so the next words should carry on the same thought in"
    " the same voice, with nothing repeated from before the cursor. "
)


def rules_for(model: str | None) -> ModelRules | None:
    """The model's rules from the catalog; None for a model it does not know."""
    return default_catalog().rules(model) if model else None


def min_cacheable_tokens(model: str) -> int:
    entry = default_catalog().prices.get(model)
    return entry.min_cacheable_tokens if entry is not None else DEFAULT_MIN_CACHEABLE_TOKENS


def model_rules(body: dict) -> ModelRules:
    """The rules of the request's model, or none (a plain ModelRules) for an unknown model."""
    model = body.get("model")
    return rules_for(model if isinstance(model, str) else None) or ModelRules()


def _thinking_type(body: dict) -> str | None:
    thinking = body.get("thinking")
    return thinking.get("type") if isinstance(thinking, dict) else None


def _effort(body: dict) -> str | None:
    output_config = body.get("output_config")
    if isinstance(output_config, dict):
        effort = output_config.get("effort")
        return effort if isinstance(effort, str) else None
    return None


def rule_problem(body: dict, rules: ModelRules) -> str | None:
    """The API's error message for a Messages request the model refuses, else None."""
    for name in SAMPLING_FIELDS:
        if name in body and not rules.sampling:
            return (
                f"{name}: this model does not support sampling parameters;"
                " omit temperature, top_p and top_k"
            )
    messages = body.get("messages") or []
    if not rules.prefill and isinstance(messages[-1], dict):
        if messages[-1].get("role") == "assistant":
            return (
                "This model does not support assistant message prefill."
                " The conversation must end with a user message."
            )
    effort = _effort(body)
    if effort is not None and effort not in rules.effort_levels:
        if not rules.effort_levels:
            return "output_config.effort: this model does not support the effort parameter"
        return f"output_config.effort: {effort!r} is not one of {list(rules.effort_levels)}"
    kind = _thinking_type(body)
    if "thinking" in body and kind is None:
        return "thinking.type: Field required"
    if kind is not None:
        problem = _thinking_problem(body, kind, rules, effort or rules.default_effort)
        if problem:
            return problem
    output_config = body.get("output_config")
    if isinstance(output_config, dict) and "format" in output_config:
        if not rules.structured_output:
            return "output_config.format: structured outputs are not supported for this model"
    return None


def _thinking_problem(body: dict, kind: str, rules: ModelRules, effort: str | None) -> str | None:
    accepted = {"none": {"disabled"}, "budget": {"enabled", "disabled"}, "adaptive": {"adaptive"}}[
        rules.thinking
    ]
    if rules.thinking == "adaptive" and rules.thinking_off:
        accepted.add(rules.thinking_off)
    if kind not in accepted:
        if kind == "disabled" and rules.thinking_off:
            return (
                f'"thinking.type.disabled" is not supported for this model.'
                f' Use "thinking.type.{rules.thinking_off}" to turn off thinking.'
            )
        if kind == "enabled" and rules.thinking == "adaptive":
            return (
                '"thinking.type.enabled" is not supported for this model. Use'
                ' "thinking.type.adaptive" and "output_config.effort" to control thinking.'
            )
        return f'"thinking.type.{kind}" is not supported for this model.'
    if kind == rules.thinking_off and rules.thinking_off_efforts:
        if effort not in rules.thinking_off_efforts:
            return (
                f'"thinking.type.{kind}" is only supported at effort'
                f" {', '.join(rules.thinking_off_efforts)}"
            )
    if kind == "enabled":
        budget = body["thinking"].get("budget_tokens")
        max_tokens = body.get("max_tokens")
        if not isinstance(budget, int) or budget < 1024:
            return "thinking.budget_tokens: must be an integer of at least 1024"
        if isinstance(max_tokens, int) and budget >= max_tokens:
            return "thinking.budget_tokens: must be less than max_tokens"
    return None


def thinking_tokens(body: dict, rules: ModelRules | None) -> list[str]:
    """The thinking the model streams before its text (empty when it does not think)."""
    if rules is None or rules.thinking == "none":
        return []
    kind = _thinking_type(body)
    if kind is None:
        on = rules.thinking_default_on
    else:
        on = kind in ("adaptive", "enabled")
    if not on:
        return []
    effort = _effort(body) or rules.default_effort or "high"
    count = THINKING_TOKENS.get(effort, THINKING_TOKENS["high"])
    if kind == "enabled":
        count = min(count, int(body["thinking"].get("budget_tokens", count)))
    pieces = tokenize(_THOUGHT * math.ceil(count / len(tokenize(_THOUGHT))))
    return pieces[:count]


def signature(thought: str) -> str:
    """An opaque stand-in for the API's signature of a thinking block."""
    return "emu-sig-" + hashlib.sha256(thought.encode()).hexdigest()[:32]
