"""Prompt caching and token usage, as the Messages API reports and bills them.

The figures the bench reports (cost per typing hour) are only as honest as this file, so it
follows the prompt-caching page rule by rule:

- A ``cache_control`` breakpoint on a tool, system or message block makes everything up to and
  including that block a cacheable prefix; at most 4 breakpoints per request (a 5th is a 400).
- Prefixes shorter than the model's minimum (models.toml: 512 tokens on Haiku 5.5, 4,096 on
  Haiku 4.5) are silently not cached.
- An entry lives 5 minutes (``"ttl": "1h"``: an hour) from its last use: a hit refreshes it.
- A lookup at a breakpoint also finds a prefix cached at any of the 20 block boundaries before
  it, so a breakpoint that moves forward block by block reads what the last request wrote and
  writes only the blocks added since.
- A 1-hour breakpoint after a 5-minute one is a 400 (longer TTLs must come first).
- Usage says how much was read, how much written and, in ``cache_creation``, how much of the
  write was at each TTL (the 1-hour write costs more: $0.20/M against $0.125/M on Haiku 5.5).

Tokens are counted in the model's own tokens: the emulator's word pieces times the model's
tokenizer factor, so the same text is about 30% more tokens on Haiku 5.5 than on Haiku 4.5.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass

from .request_rules import min_cacheable_tokens, model_rules
from .text import block_text, count_tokens

TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}
MAX_BREAKPOINTS = 4
LOOKBACK_BLOCKS = 20  # block boundaries before a breakpoint that a lookup also checks


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


def cache_problem(body: dict) -> str | None:
    """The API's 400 message for a request whose cache breakpoints it refuses, else None."""
    ttls = [b.cache_ttl for b in _blocks(body) if b.cache_ttl is not None]
    if len(ttls) > MAX_BREAKPOINTS:
        return (
            f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. "
            f"Found {len(ttls)}."
        )
    if "5m" in ttls and "1h" in ttls[ttls.index("5m") :]:
        return "a ttl='1h' cache_control block must not come after a ttl='5m' cache_control block"
    return None


def input_token_count(body: dict) -> int:
    """Every input token of the request (what count_tokens answers); at least 1."""
    return max(1, sum(b.tokens for b in _blocks(body)))


@dataclass(frozen=True)
class InputUsage:
    input_tokens: int
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_1h_input_tokens: int = 0  # the part of the write kept for an hour

    def usage_fields(self) -> dict:
        """The input half of the API's ``usage`` object."""
        return {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.cache_creation_input_tokens
                - self.cache_creation_1h_input_tokens,
                "ephemeral_1h_input_tokens": self.cache_creation_1h_input_tokens,
            },
        }


class PromptCache:
    """Which prompt prefixes are cached, per model, with an injectable clock."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._expires: dict[str, float] = {}
        self._ttl: dict[str, float] = {}  # seconds an entry lives from its last use

    def clear(self) -> None:
        self._expires.clear()
        self._ttl.clear()

    def usage(self, body: dict) -> InputUsage:
        """Input usage of ``body``, recording its cacheable prefixes as cached."""
        model = str(body.get("model", ""))
        blocks = _blocks(body)
        total = max(1, sum(b.tokens for b in blocks))
        minimum = min_cacheable_tokens(model)
        now = self._clock()
        digest = hashlib.sha256(model.encode())
        prefixes: list[tuple[str, int]] = []  # (key, tokens) of the prefix ending at each block
        breakpoints: list[tuple[int, str]] = []  # (block index, ttl)
        running = 0
        for i, block in enumerate(blocks):
            digest.update(block.key_part.encode())
            digest.update(b"\x00")
            running += block.tokens
            prefixes.append((digest.hexdigest(), running))
            if block.cache_ttl is not None:
                breakpoints.append((i, block.cache_ttl))
        if not breakpoints:
            return InputUsage(total)
        # The longest live prefix at a breakpoint or up to LOOKBACK_BLOCKS boundaries before it.
        hit: int | None = None
        for at, _ in breakpoints:
            for j in range(at, max(-1, at - LOOKBACK_BLOCKS - 1), -1):
                key, tokens = prefixes[j]
                if self._expires.get(key, float("-inf")) > now:
                    if hit is None or tokens > prefixes[hit][1]:
                        hit = j
                    break
        read = prefixes[hit][1] if hit is not None else 0
        if hit is not None:  # a hit refreshes the entry's lifetime
            key = prefixes[hit][0]
            self._expires[key] = now + self._ttl[key]
        written = written_1h = 0
        covered = read
        for at, ttl in breakpoints:
            key, tokens = prefixes[at]
            if tokens < minimum:
                continue  # too short to cache: silently not cached
            live = self._expires.get(key, float("-inf")) > now
            self._ttl[key] = max(self._ttl[key], TTL_SECONDS[ttl]) if live else TTL_SECONDS[ttl]
            self._expires[key] = now + self._ttl[key]
            if tokens > covered:
                written += tokens - covered
                written_1h += tokens - covered if ttl == "1h" else 0
                covered = tokens
        return InputUsage(total - read - written, written, read, written_1h)
