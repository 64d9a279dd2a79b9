"""The emulator's prompt cache bills as the API does, on Haiku 5.5's rules: the 512-token
minimum, the 5-minute (or 1-hour) lifetime refreshed by each hit, writes at $0.125/M (5 min) or
$0.20/M (1 h), reads at $0.01/M, at most 4 breakpoints, and a lookup that finds what an earlier
request cached up to 20 blocks before a breakpoint. Driven by the real SDK."""

from __future__ import annotations

import anthropic
import pytest

from assistant.emulator import Emulator, EmulatorConfig
from assistant.pricing import Usage, cost_usd, default_catalog

HAIKU_5_5 = "claude-haiku-5-5"


def words(n: int, start: int = 0) -> str:
    """``n`` one-piece words (the emulator counts each as one Haiku 4.5 token)."""
    return " ".join(f"w{(start + i) % 50}" for i in range(n))


def block(text: str, ttl: str | None = "5m") -> dict:
    out: dict = {"type": "text", "text": text}
    if ttl is not None:
        out["cache_control"] = {"type": "ephemeral"} | ({"ttl": "1h"} if ttl == "1h" else {})
    return out


def ask(c: anthropic.AsyncAnthropic, system: list[dict], user: list[dict] | None = None):
    return c.messages.create(
        model=HAIKU_5_5,
        max_tokens=8,
        system=system,
        messages=[
            {"role": "user", "content": user or "<text_before_cursor>Then</text_before_cursor>"}
        ],
        extra_body={"thinking": {"type": "disabled"}},
    )


def client(emu: Emulator) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(api_key="test", base_url=emu.base_url, max_retries=0)


async def test_haiku_5_5_caches_from_512_tokens_and_bills_writes_and_reads_at_its_prices():
    factor = default_catalog().rules(HAIKU_5_5).tokenizer_factor
    assert default_catalog().price(HAIKU_5_5).min_cacheable_tokens == 512
    under, over = 393, 394  # 393 * 1.3 rounds up to 511 tokens, 394 * 1.3 to 513
    assert -(-under * factor // 1) == 511
    async with Emulator(EmulatorConfig(canned_text="ok")) as emu:
        c = client(emu)
        for _ in range(2):
            short = await ask(c, [block(words(under))])
            assert short.usage.cache_creation_input_tokens == 0
            assert short.usage.cache_read_input_tokens == 0
        first = await ask(c, [block(words(over))])
        second = await ask(c, [block(words(over))])
    assert first.usage.cache_creation_input_tokens == 513
    assert first.usage.cache_creation.ephemeral_5m_input_tokens == 513
    assert first.usage.cache_creation.ephemeral_1h_input_tokens == 0
    assert (second.usage.cache_read_input_tokens, second.usage.cache_creation_input_tokens) == (
        513,
        0,
    )
    # Per million tokens (costed 10,000 at a time: one prompt stays under the long-context tier).
    written = Usage(cache_creation_input_tokens=10_000)
    assert 100 * cost_usd(HAIKU_5_5, written) == pytest.approx(0.125)
    assert 100 * cost_usd(HAIKU_5_5, written, cache_write_1h_tokens=10_000) == pytest.approx(0.20)
    assert 100 * cost_usd(HAIKU_5_5, Usage(cache_read_input_tokens=10_000)) == pytest.approx(0.01)


async def test_entries_live_5_minutes_from_their_last_hit_or_an_hour_when_asked():
    now = [0.0]
    async with Emulator(EmulatorConfig(canned_text="ok", clock=lambda: now[0])) as emu:
        c = client(emu)
        five = [block(words(600))]
        hour = [block(words(600, start=7), ttl="1h")]
        assert (await ask(c, five)).usage.cache_creation_input_tokens > 0
        written = await ask(c, hour)
        assert written.usage.cache_creation.ephemeral_1h_input_tokens == 780
        assert written.usage.cache_creation.ephemeral_5m_input_tokens == 0
        now[0] = 250.0  # a hit at 250 s keeps the 5-minute entry until 550 s
        assert (await ask(c, five)).usage.cache_read_input_tokens == 780
        now[0] = 540.0
        assert (await ask(c, five)).usage.cache_read_input_tokens == 780
        now[0] = 841.0  # 301 s after the last hit: gone, written again
        again = await ask(c, five)
        assert (again.usage.cache_read_input_tokens, again.usage.cache_creation_input_tokens) == (
            0,
            780,
        )
        now[0] = 3599.0  # the 1-hour entry, never hit since 0 s, is still there
        assert (await ask(c, hour)).usage.cache_read_input_tokens == 780


async def test_a_breakpoint_that_moves_forward_reads_the_last_write_and_writes_only_the_new_blocks():
    async with Emulator(EmulatorConfig(canned_text="ok")) as emu:
        c = client(emu)
        system = [block(words(600))]  # 780 tokens, cached on its own breakpoint
        chunks = [words(100, start=i) for i in range(25)]  # 130 tokens each

        def doc(upto: int) -> list[dict]:
            blocks = [block(t, ttl=None) for t in chunks[:upto]]
            blocks[-1] = block(chunks[upto - 1])
            return [*blocks, {"type": "text", "text": "live tail"}]

        first = await ask(c, system, doc(3))
        assert first.usage.cache_creation_input_tokens == 780 + 3 * 130
        step = await ask(c, system, doc(4))  # the last write is one block back: found
        assert step.usage.cache_read_input_tokens == 780 + 3 * 130
        assert step.usage.cache_creation_input_tokens == 130
        far = await ask(c, system, doc(25))  # 21 blocks on: out of the lookback, system found
        assert far.usage.cache_read_input_tokens == 780
        assert far.usage.cache_creation_input_tokens == 25 * 130


async def test_more_than_4_breakpoints_or_an_hour_after_5_minutes_is_a_400():
    async with Emulator(EmulatorConfig(canned_text="ok")) as emu:
        c = client(emu)
        with pytest.raises(anthropic.BadRequestError, match="maximum of 4 blocks"):
            await ask(c, [block(words(10, start=i)) for i in range(5)])
        with pytest.raises(anthropic.BadRequestError, match="ttl='1h'"):
            await ask(c, [block(words(10)), block(words(10, start=3), ttl="1h")])
        four = await ask(c, [block(words(200, start=i)) for i in range(4)])
    assert four.usage.cache_creation_input_tokens == 4 * 260
