"""Typists who accept ghost text (assistant/replay.py), end to end through the real server, and
the engine serving the rest of a partly accepted ghost with no new model call."""

from __future__ import annotations

from assistant.bench.replay import AcceptingTypist, replay
from assistant.bench.strategies import CopilotStyleEngine
from assistant.bench.traces import Keystroke
from assistant.config import Settings
from assistant.emulator import Emulator, EmulatorConfig
from assistant.suggest.engine import (
    Edit,
    ManualClock,
    ProviderChunk,
    ProviderDone,
    SuggestionEngine,
    Tick,
)

TARGET = "Dear Sam, thanks for everything you did."


def keys_for(text: str, start_ms: int, gap_ms: int) -> list[Keystroke]:
    return [Keystroke(start_ms + i * gap_ms, "type", c) for i, c in enumerate(text)]


def typist_events() -> tuple[Keystroke, ...]:
    # "Dear" quickly, then a 2 s pause (time to read a ghost), then the rest at 100 ms a key.
    return tuple(keys_for("Dear", 0, 100) + keys_for(TARGET[4:], 2300, 100))


async def run(canned: str):
    async with Emulator(EmulatorConfig(profile="fast", canned_text=canned)) as emu:
        from server.runner import ServerHandle

        settings = Settings(api_key="x", base_url=emu.base_url, offline="statistical")
        async with ServerHandle(settings) as srv:
            result = await replay(
                srv.ws_url,
                srv.token,
                typist_events(),
                name="accepting",
                typist=AcceptingTypist(TARGET),
            )
        calls = [r for r in emu.requests if r.path == "/v1/messages"]
    return result, calls


def test_the_engine_serves_the_rest_of_a_partly_accepted_ghost_as_type_through():
    clock = ManualClock(1.0)
    engine = SuggestionEngine(clock=clock)
    (start,) = [c for c in engine.handle(Edit("Dear ", "", 1)) if hasattr(c, "request_id")]
    engine.handle(ProviderChunk(start.request_id, "Sam, thanks for nothing"))
    engine.handle(ProviderDone(start.request_id))
    clock.advance(0.5)
    # Ctrl+Right takes "Sam,": the editor inserts it and asks again.
    cmds = engine.handle(Edit("Dear Sam,", "", 2))
    (shown,) = [c for c in cmds if getattr(c, "final", False)]
    assert (shown.source, shown.text) == ("typethrough", " thanks for nothing")
    assert engine.inflight_request is None and engine.stats.requests_started == 1


async def test_a_typist_accepts_word_by_word_while_the_ghost_agrees():
    result, calls = await run(" Sam, thanks for nothing at all.")
    assert result.violations == []
    accepts = [s for s in result.suggestions if s.key == "accept"]
    # " Sam,", " thanks", " for": three Ctrl+Right presses, then " nothing" is not what they
    # meant, so they type " everything ..." themselves.
    assert [s.prefix for s in accepts] == ["Dear Sam,", "Dear Sam, thanks", "Dear Sam, thanks for"]
    assert [s.source for s in accepts] == ["typethrough"] * 3  # the rest, with no model call
    asked_at_accepts = [s for s in accepts if s.source == "model"]
    assert not asked_at_accepts
    u = result.usefulness
    assert u.accept_keys == 3 and u.accepted_chars == len(" Sam, thanks for")
    assert u.chars_saved == u.accepted_chars - 3 and u.accepted == 1 and u.shown >= 1
    # The skipped keystrokes were not typed: the document still ends as meant.
    assert result.final_text == TARGET
    assert u.typed_keys == len(TARGET) - len(" Sam, thanks for")
    assert u.pauses >= 1 and u.pauses_with_suggestion >= 1
    assert len(calls) >= 1


async def test_a_typist_takes_a_ghost_that_matches_whole_with_one_tab():
    result, _ = await run(" Sam, thanks")
    accepts = [s for s in result.suggestions if s.key == "accept"]
    assert [s.prefix for s in accepts][:1] == ["Dear Sam, thanks"]
    assert result.usefulness.accept_keys >= 1
    assert result.final_text == TARGET and result.violations == []


async def test_a_wrong_ghost_is_never_accepted():
    result, _ = await run(" Bob, see you soon.")
    assert result.usefulness.accept_keys == 0 and result.usefulness.accepted == 0
    assert result.usefulness.rejected >= 1
    assert result.final_text == TARGET and result.keystrokes == len(TARGET)


def test_copilot_style_prefetches_what_follows_a_shown_suggestion():
    clock = ManualClock(1.0)
    engine = CopilotStyleEngine(clock=clock)
    engine.handle(Edit("Dear ", "", 1))
    clock.advance(0.02)
    (start,) = engine.handle(Tick())
    engine.handle(ProviderChunk(start.request_id, "Sam, thanks"))
    cmds = engine.handle(ProviderDone(start.request_id))
    shown, prefetch = cmds
    assert shown.text == "Sam, thanks" and prefetch.prefix == "Dear Sam, thanks"
    # Typing through keeps the prefetch; the accept (Tab) finds its answer.
    assert engine.handle(Edit("Dear S", "", 2))[-1].source == "typethrough"
    engine.handle(ProviderChunk(prefetch.request_id, " for everything"))
    assert engine.handle(ProviderDone(prefetch.request_id)) == []
    cmds = engine.handle(Edit("Dear Sam, thanks", "", 3))
    final = [c for c in cmds if getattr(c, "final", False)]
    assert [(c.source, c.text) for c in final] == [("cache", " for everything")]
    # An edit that leaves the suggestion drops the prefetch in flight ("any change cancels").
    assert engine.stats.requests_started == 3  # the first, its prefetch, the next prefetch
