"""Model rules from models.toml: the requests we build obey them, the emulator enforces them with
the API's own errors (through the real SDK and over raw HTTP), thinking blocks never reach the
user, the prompt cache works from each model's own minimum, and long prompts and retired models
are priced and announced."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import anthropic
import httpx2
import orjson
import pytest
from websockets.asyncio.client import connect

from assistant.config import Settings, retired_model_warnings, warn_retired_models
from assistant.emulator import Emulator, EmulatorConfig
from assistant.pricing import Usage, cost_usd, default_catalog, retirement_warnings
from assistant.providers.anthropic import AnthropicProvider, stream_messages
from assistant.providers.base import CompletionRequest, Final, TextChunk
from assistant.review.requests import review_params
from tests.serve_process import start_serve, stop_process

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-ant-test-rules-key-0123456789"
HAIKU_5_5 = "claude-haiku-5-5"
HAIKU_4_5 = "claude-haiku-4-5"
SONNET_5_5 = "claude-sonnet-5-5"
CANNED = " and the rest of the plan is ready."
USER = [{"role": "user", "content": "<text_before_cursor>Dear team, I</text_before_cursor>"}]


@contextlib.asynccontextmanager
async def running(**cfg):
    cfg.setdefault("profile", "instant")
    cfg.setdefault("api_key", KEY)
    async with Emulator(EmulatorConfig(**cfg)) as emu:
        yield emu


def sdk(emu: Emulator) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(api_key=KEY, base_url=emu.base_url, max_retries=0)


async def refusal(emu: Emulator, **params) -> str:
    """The error message of a request the emulator must refuse as the API does."""
    with pytest.raises(anthropic.BadRequestError) as info:
        await sdk(emu).messages.create(**params)
    err = info.value
    assert err.status_code == 400 and err.type == "invalid_request_error"
    assert err.body["type"] == "error" and err.body["error"]["message"]
    return err.body["error"]["message"]


def document(n_chars: int) -> str:
    words = "every morning the river carried small boats past the old mill and the bakery".split()
    out: list[str] = []
    i = 0
    while sum(len(w) + 1 for w in out) < n_chars:
        out.append(words[i % len(words)])
        i += 1
    return " ".join(out)[:n_chars]


# --- the data --------------------------------------------------------------------------------


def test_rules_and_prices_load_from_models_toml():
    cat = default_catalog()
    haiku = cat.price(HAIKU_5_5)
    assert (haiku.input, haiku.output, haiku.min_cacheable_tokens) == (0.10, 0.50, 512)
    assert not haiku.rules.sampling and not haiku.rules.prefill
    assert haiku.rules.thinking == "adaptive" and haiku.rules.thinking_default_on
    assert haiku.rules.default_effort == "medium" and haiku.rules.tokenizer_factor == 1.3
    assert haiku.rules.quiet_thinking() == {"thinking": {"type": "disabled"}}
    old = cat.price(HAIKU_4_5)
    assert old.rules.sampling and old.rules.quiet_thinking() == {} and old.long_context is None
    assert cat.rules(SONNET_5_5).quiet_thinking() == {"thinking": {"type": "between_tools"}}
    assert cat.rules("no-such-model") is None
    assert cat.roles == {"suggest": HAIKU_5_5, "review": SONNET_5_5}


def test_long_context_tier_prices_the_whole_request():
    short = Usage(input_tokens=100_000, output_tokens=1_000)
    long = Usage(input_tokens=60_000, output_tokens=1_000, cache_read_input_tokens=40_001)
    assert cost_usd(HAIKU_5_5, short) == pytest.approx((100_000 * 0.10 + 1_000 * 0.50) / 1e6)
    assert cost_usd(HAIKU_5_5, long) == pytest.approx(
        (60_000 * 0.50 + 1_000 * 2.50 + 40_001 * 0.05) / 1e6
    )
    # no long-context tier on Haiku 4.5
    assert cost_usd(HAIKU_4_5, long) == pytest.approx(
        (60_000 * 1.0 + 1_000 * 5.0 + 40_001 * 0.10) / 1e6
    )


def test_retired_and_retiring_models_are_named_at_start():
    settings = Settings(suggest_model=HAIKU_5_5, review_model="claude-sonnet-4-5")
    assert retired_model_warnings(settings, date(2026, 10, 1)) == []
    soon = retired_model_warnings(settings, date(2026, 11, 25))
    assert len(soon) == 1 and "claude-sonnet-4-5 retires on 2026-11-30" in soon[0]
    past = retired_model_warnings(settings, date(2026, 12, 1))
    assert len(past) == 1 and "was retired on 2026-11-30" in past[0]
    assert "review" in past[0] and SONNET_5_5 in past[0]  # says what to use instead
    assert retirement_warnings({"suggest": "unknown-model"}, date(2030, 1, 1)) == []

    class Sink:
        text = ""

        def write(self, s: str) -> None:
            self.text += s

        def flush(self) -> None:
            pass

    sink = Sink()
    warn_retired_models(settings, date(2026, 12, 1), sink)
    assert sink.text.startswith("assistant: warning: review model claude-sonnet-4-5 was retired")


def test_cli_warns_at_start_about_a_retired_configured_model(tmp_path):
    models = tmp_path / "models.toml"
    text = (ROOT / "assistant/data/models.toml").read_text()
    marker = '[models."claude-haiku-5-5"]\n'
    models.write_text(text.replace(marker, marker + 'retires = "2026-01-01"\n'))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "ASSISTANT_"))}
    env.update(
        PYTHONPATH=str(ROOT),
        ASSISTANT_MODELS=str(models),
        ASSISTANT_CONFIG=str(tmp_path / "none.toml"),
        ASSISTANT_OFFLINE="statistical",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "assistant", "suggest", "--offline"],
        input="We will meet tomor",
        capture_output=True,
        text=True,
        env=env,
        cwd=str(ROOT),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "warning: suggest model claude-haiku-5-5 was retired on 2026-01-01" in proc.stderr
    # the command still did its work (the warning does not stop it)


# --- the emulator enforces the rules ---------------------------------------------------------


async def test_haiku_5_5_refuses_sampling_prefill_and_budget_thinking():
    async with running() as emu:
        err = await refusal(
            emu, model=HAIKU_5_5, max_tokens=32, messages=USER, extra_body={"temperature": 0}
        )
        assert "temperature" in err
        await refusal(emu, model=HAIKU_5_5, max_tokens=32, messages=USER, extra_body={"top_p": 0.9})
        prefill = [*USER, {"role": "assistant", "content": "Here is"}]
        err = await refusal(emu, model=HAIKU_5_5, max_tokens=32, messages=prefill)
        assert "prefill" in err
        err = await refusal(
            emu,
            model=HAIKU_5_5,
            max_tokens=4096,
            messages=USER,
            extra_body={"thinking": {"type": "enabled", "budget_tokens": 2048}},
        )
        assert "adaptive" in err
        # disabled thinking only at low, medium and high effort
        await refusal(
            emu,
            model=HAIKU_5_5,
            max_tokens=32,
            messages=USER,
            extra_body={"thinking": {"type": "disabled"}, "output_config": {"effort": "max"}},
        )
        # the same requests are fine on Haiku 4.5 (sampling and prefill allowed)
        ok = await sdk(emu).messages.create(
            model=HAIKU_4_5, max_tokens=8, messages=prefill, extra_body={"temperature": 0}
        )
        assert ok.content[0].type == "text"


async def test_sonnet_5_5_refuses_disabled_thinking_and_points_to_between_tools():
    async with running() as emu:
        err = await refusal(
            emu,
            model=SONNET_5_5,
            max_tokens=64,
            messages=USER,
            extra_body={"thinking": {"type": "disabled"}},
        )
        assert "between_tools" in err
        await refusal(
            emu,
            model=SONNET_5_5,
            max_tokens=64,
            messages=USER,
            extra_body={"thinking": {"type": "between_tools"}, "output_config": {"effort": "max"}},
        )


def test_raw_http_temperature_request_to_the_emulator_process_gets_the_api_error():
    """The "done when" check: ``python -m assistant.emulator``, a plain HTTP client, a 400."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "assistant.emulator", "--profile", "instant"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=str(ROOT),
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("EMULATOR "), line
        base = line.split()[1]
        body = {"model": HAIKU_5_5, "max_tokens": 32, "temperature": 0, "messages": USER}
        r = httpx2.post(
            f"{base}/v1/messages",
            json=body,
            headers={"x-api-key": "any", "anthropic-version": "2026-10-21"},
            timeout=30,
        )
        assert r.status_code == 400
        payload = r.json()
        assert payload["type"] == "error"
        assert payload["error"]["type"] == "invalid_request_error"
        assert "temperature" in payload["error"]["message"]
        assert payload["request_id"] == r.headers["request-id"]
        del body["temperature"]
        body["thinking"] = {"type": "disabled"}
        assert httpx2.post(f"{base}/v1/messages", json=body, timeout=30).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# --- thinking blocks -------------------------------------------------------------------------


async def test_thinking_streams_first_in_sdk_shapes_and_eats_max_tokens():
    async with running(canned_text=CANNED) as emu:
        c = sdk(emu)
        # Haiku 5.5 thinks by default: a suggestion-sized max_tokens leaves no room for text.
        async with c.messages.stream(model=HAIKU_5_5, max_tokens=32, messages=USER) as s:
            events = [e async for e in s]
            message = await s.get_final_message()
        starts = [e for e in events if e.type == "content_block_start"]
        assert starts[0].index == 0 and starts[0].content_block.type == "thinking"
        deltas = {e.delta.type for e in events if e.type == "content_block_delta"}
        assert {"thinking_delta", "signature_delta"} <= deltas
        assert message.content[0].type == "thinking" and message.content[0].thinking
        assert message.content[0].signature
        assert message.stop_reason == "max_tokens"
        assert all(b.text == "" for b in message.content if b.type == "text")
        assert message.usage.output_tokens == 32  # thinking tokens are billed as output

        # Room to think and answer: the text block follows at index 1.
        whole = await c.messages.create(model=HAIKU_5_5, max_tokens=400, messages=USER)
        assert [b.type for b in whole.content] == ["thinking", "text"]
        assert whole.content[1].text == CANNED

        # Thinking off: the reply is text only, as on Haiku 4.5.
        off = await c.messages.create(
            model=HAIKU_5_5,
            max_tokens=32,
            messages=USER,
            extra_body={"thinking": {"type": "disabled"}},
        )
        assert [b.type for b in off.content] == ["text"] and off.content[0].text == CANNED


async def test_thinking_text_never_reaches_the_reader():
    """A reader that took the first block, or every delta, would show the model's thoughts."""
    async with running(canned_text=CANNED) as emu:
        params = {"model": SONNET_5_5, "max_tokens": 600, "messages": USER}  # thinking left on
        parts: list[str] = []
        final = None
        async for event in stream_messages(sdk(emu), params):
            if isinstance(event, TextChunk):
                parts.append(event.text)
            else:
                final = event
        rec = emu.requests[-1]
        assert rec.thinking_sent > 0, "the emulator should have thought first"
        assert "".join(parts) == CANNED == rec.text_sent
        assert isinstance(final, Final) and final.usage.output_tokens > len(parts)


# --- requests built from the rules -----------------------------------------------------------


async def test_haiku_5_5_suggestions_have_thinking_off_and_hit_the_cache_on_a_3kb_document():
    doc = document(3_000)
    reads = {}
    async with running(canned_text=CANNED) as emu:
        for model in (HAIKU_5_5, HAIKU_4_5):
            settings = Settings(
                api_key=KEY, base_url=emu.base_url, suggest_timeout_s=10.0, suggest_model=model
            )
            provider = AnthropicProvider(settings)
            try:
                finals = []
                for n in (0, 5, 11):  # three keystrokes later in the same document
                    text, final = "", None
                    async for ev in provider.stream(CompletionRequest(doc + " and" * n, "")):
                        if isinstance(ev, TextChunk):
                            text += ev.text
                        else:
                            final = ev
                    assert text == CANNED and final.source == "model"
                    finals.append(final)
            finally:
                await provider.aclose()
            reads[model] = [f.usage.cache_read_input_tokens for f in finals]
        bodies = [r.body for r in emu.requests if r.model == HAIKU_5_5]
    assert all(b["thinking"] == {"type": "disabled"} and "temperature" not in b for b in bodies)
    assert reads[HAIKU_5_5][0] == 0 and all(r > 0 for r in reads[HAIKU_5_5][1:])
    assert reads[HAIKU_4_5] == [0, 0, 0]  # 4,096-token minimum: an ordinary document never caches


def test_review_request_follows_each_models_rules():
    sonnet = review_params("Some text.", model=SONNET_5_5, max_tokens=4096)
    assert sonnet["extra_body"] == {"thinking": {"type": "between_tools"}}
    assert sonnet["output_config"]["format"]["type"] == "json_schema"
    assert sonnet["max_tokens"] == 5325  # 4,096 Haiku 4.5 tokens on a 1.3x tokenizer
    older = review_params("Some text.", model="claude-sonnet-4-6", max_tokens=4096)
    assert "extra_body" not in older and older["max_tokens"] == 4096


async def test_assistant_serve_emulator_serves_model_suggestions_from_haiku_5_5(tmp_path):
    proc, ws_url, _ = await start_serve(
        tmp_path,
        "--emulator",
        token="rules-token-abcdef123456",
        env={"ASSISTANT_SUGGEST_MODEL": HAIKU_5_5},
    )
    try:
        async with connect(
            ws_url, additional_headers={"Authorization": "Bearer rules-token-abcdef123456"}
        ) as ws:
            ready = orjson.loads(await ws.recv())
            assert ready["model"] == HAIKU_5_5
            await ws.send(
                json.dumps({"type": "suggest", "id": 1, "prefix": "Dear team, I", "suffix": ""})
            )
            while True:
                frame = orjson.loads(await asyncio.wait_for(ws.recv(), 30))
                if frame.get("id") == 1 and frame["type"] in ("done", "error", "cancelled"):
                    break
        assert frame["type"] == "done", frame
        assert frame["source"] == "model" and frame["model"] == HAIKU_5_5
        assert frame["text"]
    finally:
        await stop_process(proc)


def test_bench_lead_in_gives_each_typist_their_own_existing_document():
    from assistant.bench.suggestions import lead_in_text

    passages = ("One short passage about the river.", "Another about the mill and the bakery.")
    docs = [lead_in_text(3_000, passages, i) for i in range(12)]
    assert all(2_990 <= len(d) <= 3_002 and d.endswith("\n\n") for d in docs)
    assert len({d[:2_048] for d in docs}) == 12  # no typist reads another's prompt-cache entry
    assert lead_in_text(0, passages) == ""


def test_bench_lead_in_never_holds_the_text_the_typist_will_type():
    """The offline tier learns n-grams from the document: a lead-in holding the passage being
    typed would let it read what it is asked to predict (it made the statistical engine look
    62 % better on 3 KB documents)."""
    from assistant.bench.suggestions import lead_in_text
    from assistant.bench.traces import load_passages, load_traces

    passages = tuple(load_passages().values())
    for t in load_traces():
        doc = lead_in_text(3_000, passages, 1, typed=t.final_text)
        assert len(doc) >= 2_990
        first_sentence = t.final_text.strip().split(". ")[0][:60]
        assert first_sentence not in doc, t.name
    # One passage of the user's own: the lead-in comes from the shipped passages instead.
    mine = "A passage of my own about the harbour and its boats, typed at the end."
    assert mine not in lead_in_text(3_000, (mine,), typed=mine)
