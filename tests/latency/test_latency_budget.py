"""The latency budget, end to end: a real server, the real SDK against the emulator ("haiku"
profile: time to first token p50 300 ms, p95 800 ms, ~8 ms a token), typists replaying traces
over the WebSocket at their recorded pace.

Bounds carry wide margins for a loaded 2-core CI machine; docs/performance.md explains them.
"""

from __future__ import annotations

from assistant.bench.replay import replay, requested_prefix
from assistant.bench.suggestions import percentile
from assistant.bench.traces import Keystroke, load_passages
from assistant.config import Settings
from assistant.emulator import Emulator, EmulatorConfig

from .conftest import SLICES, slice_of

NO_MODEL = ("typethrough", "cache", "none")

# Budget (ms) for keystroke -> first visible suggestion character, end to end. The emulator alone
# takes 300 ms (p50) / 800 ms (p95) to the first token; the rest is debounce, server and network.
VISIBLE_P50_MS = 700.0
VISIBLE_P95_MS = 1500.0
# A writer's pause (300 ms without a key) -> a suggestion on screen, from the last key, on every
# predictor (a noisy model is often wrong, so the engine must ask again at the pause). Budget:
# the emulator's TTFT p50 300 ms plus the debounce and a loaded machine; p95 over its 800 ms.
PAUSE_VISIBLE_P50_MS = 700.0
PAUSE_VISIBLE_P95_MS = 1500.0
PAUSES_WITH_SUGGESTION = 0.5
# The server's own share, measured where no model call happens (type-through, cache).
OVERHEAD_P95_MS = 50.0
# Model calls and output tokens thrown away, per 100 keystrokes. A request per keystroke would be
# 100 calls; Continue-style debouncing ~20 on these traces (see `assistant bench`).
CALLS_PER_100_KEYS = 30.0
CANCELLED_TOKENS_PER_100_KEYS = 25.0


def visible_ms(run, sources=None):
    return [
        s.visible_ms
        for s in run.suggestions()
        if s.visible_ms is not None and (sources is None or s.shown_source in sources)
    ]


def test_replay_types_at_the_traces_pace(latency_run, latency_runs):
    for name, result in latency_run.results.items():
        assert result.keystrokes >= 50, name
        assert result.duration_s >= 35.0, name  # ~40 s of typing was not compressed
    for run in latency_runs.values():
        for name, result in run.results.items():
            u = result.usefulness
            # Accepted text skips the keystrokes that would have typed it, so the typist ends
            # sooner; the keys they do type keep the trace's pace.
            trace_keys_per_s = len(slice_events(run, name)) / 40.0
            typed_per_s = u.typed_keys / result.typing_s
            assert 0.6 * trace_keys_per_s <= typed_per_s <= 1.4 * trace_keys_per_s, (
                run.label,
                name,
                typed_per_s,
                trace_keys_per_s,
            )


def slice_events(run, name):
    typist, passage = name.split("-")
    start, seconds = next((s, sec) for t, p, s, sec in SLICES if (t, p) == (typist, passage))
    return slice_of(run.traces[name], start, seconds)[1]


def test_pause_to_visible_suggestion_within_budget(predictor_run):
    """From the last key before a pause (300 ms without a key, or an accept) to a suggestion on
    screen, at every predictor; and a suggestion is on screen at most pauses."""
    u = predictor_run.usefulness
    assert u.pauses >= 10, predictor_run.label
    values = u.pause_to_visible_ms
    assert percentile(values, 50) < PAUSE_VISIBLE_P50_MS, (predictor_run.label, sorted(values))
    assert percentile(values, 95) < PAUSE_VISIBLE_P95_MS, (predictor_run.label, sorted(values))
    assert u.visible_at_pause_share >= PAUSES_WITH_SUGGESTION, predictor_run.label


def test_typists_accept_right_ghosts_and_pass_wrong_ones(latency_runs):
    for run in latency_runs.values():
        u = run.usefulness
        assert u.shown >= 10 and u.accepted >= 1 and u.chars_saved > 0, run.label
        assert u.accepted <= u.shown and u.rejected <= u.shown
    if {"oracle", "noisy"} <= set(latency_runs):
        oracle, noisy = latency_runs["oracle"].usefulness, latency_runs["noisy"].usefulness
        assert oracle.acceptance_rate > noisy.acceptance_rate
        assert noisy.rejected > 0


def test_keystroke_to_visible_suggestion_within_budget(latency_run):
    everything = visible_ms(latency_run)
    model = visible_ms(latency_run, ("model",))
    assert len(model) >= 5 and len(everything) >= 100
    for values in (everything, model):
        assert percentile(values, 50) < VISIBLE_P50_MS, values
        assert percentile(values, 95) < VISIBLE_P95_MS, values


def test_server_overhead_is_a_small_fraction(latency_run):
    no_model = [s for s in latency_run.suggestions() if s.source in NO_MODEL]
    assert len(no_model) >= 50
    round_trip = [s.round_trip_ms for s in no_model]
    server_side = [s.server_latency_ms for s in no_model if s.server_latency_ms is not None]
    assert percentile(round_trip, 95) < OVERHEAD_P95_MS
    assert server_side and percentile(server_side, 95) < OVERHEAD_P95_MS
    model_ms = visible_ms(latency_run, ("model",))
    assert percentile(round_trip, 50) < 0.1 * percentile(model_ms, 50)


def test_no_stale_suggestion_and_one_terminal_per_id(latency_run, predictor_run):
    for run in (latency_run, predictor_run):
        for name, result in run.results.items():
            assert result.violations == [], (run.label, name)
            assert [s.id for s in result.suggestions] == list(range(1, result.keystrokes + 1))
            assert all(s.terminals == 1 for s in result.suggestions), (run.label, name)


def test_model_calls_and_cancelled_tokens_within_budget(latency_run):
    keys = latency_run.keystrokes
    calls = len(latency_run.records)
    assert calls >= 3  # the model was really asked
    assert 100 * calls / keys <= CALLS_PER_100_KEYS
    cancelled = [r for r in latency_run.records if r.client_disconnected]
    cancelled_tokens = sum(r.tokens_sent for r in cancelled)
    assert 100 * cancelled_tokens / keys <= CANCELLED_TOKENS_PER_100_KEYS
    total_out = sum(r.tokens_sent for r in latency_run.records)
    assert cancelled_tokens <= 0.5 * max(1, total_out)


def test_type_through_is_served_without_a_model_call(latency_run):
    asked = {requested_prefix(r.body) for r in latency_run.records}
    through = [s for s in latency_run.suggestions() if s.source == "typethrough"]
    assert len(through) >= 20
    assert all(s.text for s in through)
    assert not [s.prefix for s in through if s.prefix in asked]


async def test_cache_hit_after_a_correction_makes_no_model_call():
    """Type to a word boundary, wait for the suggestion, mistype, backspace: the suggestion
    comes back from the cache, and the emulator sees one request for that text, not two."""
    text = load_passages()["email"]
    start = text.index("Could you add")
    before = text[:start]
    cfg = EmulatorConfig(profile="haiku", seed=0, oracle_texts=(text,))
    keys = (
        Keystroke(0, "type", "C"),
        Keystroke(2500, "type", "x"),  # a suggestion arrived for "…C"; "x" does not fit it
        Keystroke(2700, "backspace"),
    )
    async with Emulator(cfg) as emu:
        from server.runner import ServerHandle

        settings = Settings(api_key="x", base_url=emu.base_url, offline="statistical")
        async with ServerHandle(settings) as srv:
            result = await replay(srv.ws_url, srv.token, keys, initial_text=before)
        records = [r for r in emu.requests if r.path == "/v1/messages"]
    first, typo, back = result.suggestions
    assert result.violations == []
    assert first.terminal == "done" and first.source == "model" and first.text
    assert back.prefix == first.prefix
    assert (back.terminal, back.source, back.text) == ("done", "cache", first.text)
    assert back.round_trip_ms is not None and back.round_trip_ms < OVERHEAD_P95_MS * 4
    asked = [requested_prefix(r.body) for r in records]
    assert asked.count(first.prefix) == 1
