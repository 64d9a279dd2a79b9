"""A suggestion stops at its first sentence end (the engine shows nothing past it), keeps its
punctuation, and bills only what came before the stop (real SDK against the emulator)."""

from __future__ import annotations

from assistant.config import Settings
from assistant.emulator import Emulator, EmulatorConfig
from assistant.providers.anthropic import AnthropicProvider
from assistant.providers.base import CompletionRequest, Final, TextChunk

KEY = "sk-ant-test-emulator-key-0123456789"
REPLY = " the auditors had finished their report. Then the board voted on the budget for next year."


async def suggest(emu: Emulator, prefix: str) -> tuple[str, Final]:
    provider = AnthropicProvider(
        Settings(api_key=KEY, base_url=emu.base_url, suggest_timeout_s=10.0)
    )
    text, final = "", None
    try:
        async for event in provider.stream(CompletionRequest(prefix, max_tokens=40)):
            if isinstance(event, TextChunk):
                text += event.text
            else:
                final = event
    finally:
        await provider.aclose()
    assert final is not None
    return text, final


async def test_a_suggestion_stops_at_its_first_sentence_end_and_keeps_the_full_stop():
    cfg = EmulatorConfig(canned_text=REPLY, profile="instant", api_key=KEY)
    async with Emulator(cfg) as emu:
        text, final = await suggest(emu, "They postponed the vote until")
        assert text == " the auditors had finished their report."
        assert final.stop_reason == "stop_sequence"
        assert emu.requests[-1].body["stop_sequences"][-3:] == [". ", "! ", "? "]
        # Billed: the words up to the stop, not the second sentence (which the 40-token cap
        # would have let through).
        assert 0 < final.usage.output_tokens < 15


async def test_a_tag_echo_still_stops_without_adding_text():
    cfg = EmulatorConfig(
        canned_text=" fine</text_after_cursor> more", profile="instant", api_key=KEY
    )
    async with Emulator(cfg) as emu:
        text, final = await suggest(emu, "All is")
    assert (text, final.stop_reason) == (" fine", "stop_sequence")
