"""Prompt caching and token usage, as the Messages API reports them.

A ``cache_control`` breakpoint on a system or message block makes everything up to and
including that block a cacheable prefix. Prefixes shorter than the model's minimum (from
models.toml) are silently not cached. A hit refreshes the entry's time to live. Tokens are counted
in the model's own tokens: the emulator's word pieces times the model's tokenizer factor, so the
same text is about 30% more tokens on Haiku 5.5 than on Haiku 4.5, as on the API.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass

from .request_rules import min_cacheable_tokens, model_rules
from .text import block_text, count_tokens

TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}


@dataclass(frozen=True)
class _Block:
    key_part: str
    tokens: int
    cache_ttl: str | None  # "5m"/"1h" when the block carries cache_control


def _blocks(body: dict) -> list[_Block]:
    """The prompt as a flat list of blocks in cache order: tools, system, messages."""
    out: list[_Block] = []
    rules = model_rules(body)

    def count_tokens_of(text: str) -> int:
        return rules.tokens(count_tokens(text))

    def ttl_of(block: object) -> str | None:
        if isinstance(block, dict):
            cc = block.get("cache_control")
            if isinstance(cc, dict) and cc.get("type") == "ephemeral":
                return "1h" if cc.get("ttl") == "1h" else "5m"
        return None

    tools = body.get("tools")
    if isinstance(tools, list):
        for tool in tools:
            text = json.dumps(tool, sort_keys=True, default=str)
            out.append(_Block("tool:" + text, count_tokens_of(text), ttl_of(tool)))
    system = body.get("system")
    if isinstance(system, str):
        out.append(_Block("system:" + system, count_tokens_of(system), None))
    elif isinstance(system, list):
        for block in system:
            text = block_text(block)
            out.append(_Block("system:" + text, count_tokens_of(text), ttl_of(block)))
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if not isinstance(message, dict):
                continue
            role = str(message.get("role"))
            content = message.get("content")
            if isinstance(content, str):
                out.append(_Block(f"{role}:" + content, count_tokens_of(content), None))
            elif isinstance(content, list):
                for block in content:
                    text = block_text(block)
                    out.append(_Block(f"{role}:" + text, count_tokens_of(text), ttl_of(block)))
    return out


def input_token_count(body: dict) -> int:
    """Every input token of the request (what count_tokens answers); at least 1."""
    return max(1, sum(b.tokens for b in _blocks(body)))


@dataclass(frozen=True)
class InputUsage:
    input_tokens: int
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0


class PromptCache:
    """Which prompt prefixes are cached, per model, with an injectable clock."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._expires: dict[str, float] = {}

    def clear(self) -> None:
        self._expires.clear()

    def usage(self, body: dict) -> InputUsage:
        """Input usage of ``body``, recording its cacheable prefixes as cached."""
        model = str(body.get("model", ""))
        blocks = _blocks(body)
        total = max(1, sum(b.tokens for b in blocks))
        minimum = min_cacheable_tokens(model)
        now = self._clock()
        digest = hashlib.sha256(model.encode())
        breakpoints: list[tuple[str, int, str]] = []  # (key, prefix tokens, ttl)
        running = 0
        for block in blocks:
            digest.update(block.key_part.encode())
            digest.update(b"\x00")
            running += block.tokens
            if block.cache_ttl is not None and running >= minimum:
                breakpoints.append((digest.hexdigest(), running, block.cache_ttl))
        if not breakpoints:
            return InputUsage(total)
        read = 0
        for key, tokens, _ in breakpoints:
            if self._expires.get(key, float("-inf")) > now:
                read = max(read, tokens)
        longest = breakpoints[-1][1]
        created = longest - read if longest > read else 0
        for key, _, ttl in breakpoints:
            self._expires[key] = now + TTL_SECONDS[ttl]
        return InputUsage(total - read - created, created, read)
