"""Provider faults through the real Anthropic SDK against the emulator, end to end.

For each fault: every suggest id still gets exactly one terminal frame, the clients get a
``status`` frame naming the degraded state, the offline tier answers (``source: offline``), the
server keeps off Anthropic for the backoff window (the emulator sees no /v1/messages request in
it), and after the window a suggestion comes from the model again with a ``status`` ``ok``.
The windows are short (retry-after 1 s, or the first 1 s backoff step), and the test paces on
frames: each keystroke waits for its terminal frame.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import pytest

from assistant.config import Settings
from assistant.emulator import Emulator, EmulatorConfig, Fault
from server.runner import ServerHandle

from .conftest import Client, open_client

SECRET_KEY = "sk-ant-test-SECRET-123"
CANNED = " the quarterly report is ready for the whole team to review today"
TYPING_GAP_S = 0.02  # a fast typist: one keystroke per terminal frame, at most 50 a second


def fault_settings(base_url: str, **over) -> Settings:
    base = dict(
        api_key=SECRET_KEY,
        base_url=base_url,
        token="fault-token",
        suggest_timeout_s=0.5,
        suggest_connect_timeout_s=0.5,
        offline="statistical",
        debounce_min_ms=1.0,
        debounce_max_ms=2.0,
    )
    base.update(over)
    return Settings(**base)


def messages(emu: Emulator) -> list:
    return [r for r in emu.requests if r.path == "/v1/messages"]


@dataclass
class Typed:
    sid: int
    terminal: dict
    before: list[dict]
    sent_at: float


async def keystroke(client: Client, n: int, within: float = 10.0) -> Typed:
    """One edit with a prefix never seen before (so no cache), and its terminal frame."""
    sent_at = time.monotonic()
    sid = await client.suggest(f"Note {n}: after the meeting we agreed that")
    term, before = await client.terminal(sid, within)
    return Typed(sid, term, before, sent_at)


def statuses(client: Client, since: int = 0) -> list[dict]:
    return [m for m in client.seen[since:] if m.get("type") == "status"]


async def until_the_model_answers(client: Client, n: int) -> int:
    """Keystrokes from ``n`` on until one is answered by the model with no window open (a cold
    process, its SDK import, first connection and word list, can blow the short suggest timeout
    once; then the window passes). Returns the last keystroke's number."""
    deadline = time.monotonic() + 15.0
    while True:
        healthy = await keystroke(client, n)
        assert healthy.terminal["type"] == "done", healthy.terminal
        if healthy.terminal["source"] == "model" and (
            not statuses(client) or statuses(client)[-1]["state"] == "ok"
        ):
            return n
        assert time.monotonic() < deadline, "the model never answered"
        n += 1
        await asyncio.sleep(0.05)


async def run_fault(fault: Fault, *, state: str, window_s: float, covered: bool = True) -> None:
    async with Emulator(EmulatorConfig(profile="instant", seed=0, canned_text=CANNED)) as emu:
        async with ServerHandle(fault_settings(emu.base_url)) as srv:
            client = await open_client(srv.ws_url, srv.token)
            n = await until_the_model_answers(client, 0)  # healthy first
            mark = len(client.seen)

            emu.inject(fault)
            before_fault = len(messages(emu))
            n += 1
            hit = await keystroke(client, n)
            faulted = messages(emu)[before_fault]
            assert faulted.fault == fault.kind
            await emu.wait_for_request_end(faulted, 10)
            if covered:
                # The offline tier answered the request Anthropic failed.
                assert hit.terminal["type"] == "done", hit.terminal
                assert hit.terminal["source"] == "offline", hit.terminal
            else:
                assert hit.terminal["type"] in ("done", "error", "cancelled"), hit.terminal
            # The status frame (it may trail the terminal frame by a moment).
            if not any(s["state"] == state for s in statuses(client, mark)):
                await client.recv_until(lambda m: m.get("type") == "status", 5)
            degraded = [s for s in statuses(client, mark) if s["state"] != "ok"]
            assert degraded and degraded[0]["state"] == state, statuses(client, mark)
            assert degraded[0]["active"] != "anthropic"
            window_opened = time.monotonic()

            # During the window: every keystroke answered offline, Anthropic left alone.
            recovered: Typed | None = None
            during = 0
            deadline = time.monotonic() + window_s + 8.0
            while time.monotonic() < deadline:
                n += 1
                await asyncio.sleep(TYPING_GAP_S)
                typed = await keystroke(client, n)
                assert typed.terminal["type"] in ("done", "cancelled"), typed.terminal
                if typed.terminal["type"] == "done" and typed.terminal["source"] == "model":
                    recovered = typed
                    break
                assert typed.terminal["type"] == "done", typed.terminal
                assert typed.terminal["source"] == "offline", typed.terminal
                during += 1
            assert recovered is not None, "no model suggestion after the backoff window"
            assert during >= 5, "the window was not exercised"

            # Backoff respected: after the failed request the next Anthropic request (the
            # probe) starts no earlier than the window allows.
            later = messages(emu)[before_fault + 1 :]
            assert later, "recovery without a request to Anthropic?"
            assert later[0].started >= window_opened + window_s - 0.3, (
                later[0].started - window_opened
            )
            assert all(r.fault is None for r in later)
            # ... and the status says so.
            if statuses(client)[-1]["state"] != "ok":
                await client.recv_until(
                    lambda m: m.get("type") == "status" and m["state"] == "ok", 5
                )
            assert statuses(client)[-1]["state"] == "ok"
            assert statuses(client)[-1]["active"] == "anthropic"
            await client.ping()
            # Nothing the clients saw carries the API key.
            assert SECRET_KEY not in repr(client.seen)


async def test_rate_limit_with_retry_after():
    await run_fault(Fault("rate_limit", retry_after=1), state="rate_limited", window_s=1.0)


async def test_rate_limit_without_retry_after_uses_the_first_backoff_step():
    await run_fault(Fault("rate_limit"), state="rate_limited", window_s=1.0)


async def test_overloaded_529():
    await run_fault(Fault("overloaded"), state="overloaded", window_s=1.0)


async def test_server_error_500():
    await run_fault(Fault("server_error"), state="unavailable", window_s=1.0)


async def test_error_event_before_any_text():
    await run_fault(Fault("error_mid_stream", after_tokens=0), state="overloaded", window_s=1.0)


async def test_hang_times_out_and_falls_back():
    await run_fault(Fault("hang"), state="unavailable", window_s=1.0)


async def test_abrupt_disconnect_before_any_text():
    await run_fault(Fault("disconnect"), state="unavailable", window_s=1.0)


@pytest.mark.parametrize(
    "fault",
    [
        Fault("error_mid_stream", after_tokens=3),
        Fault("disconnect", after_tokens=3),
        Fault("hang", after_tokens=3),
    ],
    ids=["error_mid_stream_after_text", "disconnect_after_text", "hang_after_text"],
)
async def test_faults_after_text_has_streamed_still_end_every_id(fault):
    """Text already shown cannot be silently replaced by another tier's: the id ends (error or
    a cut-short done), a status frame says Anthropic is degraded, and it recovers."""
    await run_fault(fault, state=_state_of(fault), window_s=1.0, covered=False)


async def test_a_slow_drip_past_the_deadline_ends_its_id_and_opens_no_window():
    """12+ tokens at 120 ms each pass the 0.5 s suggest deadline while the API is answering:
    that id ends (an error or a cut-short done), and no backoff window opens for anyone (at
    1,000 writers a loaded server passes the deadline on some streams; docs/reliability.md):
    the next keystroke is the model's."""
    async with Emulator(EmulatorConfig(profile="instant", seed=0, canned_text=CANNED)) as emu:
        async with ServerHandle(fault_settings(emu.base_url)) as srv:
            client = await open_client(srv.ws_url, srv.token)
            n = await until_the_model_answers(client, 0)
            mark = len(client.seen)
            emu.inject(Fault("slow", delay_ms=120))
            hit = await keystroke(client, n + 1)
            assert hit.terminal["type"] in ("done", "error"), hit.terminal
            assert messages(emu)[-1].fault == "slow"
            next_one = await keystroke(client, n + 2)
            assert next_one.terminal["type"] == "done", next_one.terminal
            assert next_one.terminal["source"] == "model", next_one.terminal
            assert [s for s in statuses(client, mark) if s["state"] != "ok"] == []


def _state_of(fault: Fault) -> str:
    return {"error_mid_stream": "overloaded"}.get(fault.kind, "unavailable")


async def test_auth_failure_parks_anthropic_and_the_offline_tier_serves():
    async with Emulator(EmulatorConfig(profile="instant", canned_text=CANNED)) as emu:
        async with ServerHandle(fault_settings(emu.base_url)) as srv:
            client = await open_client(srv.ws_url, srv.token)
            emu.inject(Fault("auth"))
            hit = await keystroke(client, 0)
            assert hit.terminal["type"] == "done" and hit.terminal["source"] == "offline"
            if not statuses(client):
                await client.recv_until(lambda m: m.get("type") == "status", 5)
            assert statuses(client)[0]["state"] == "auth_failed"
            count = len(messages(emu))
            for n in range(1, 20):
                typed = await keystroke(client, n)
                assert typed.terminal["source"] == "offline"
            assert len(messages(emu)) == count, "a bad key must not be retried"
            assert SECRET_KEY not in repr(client.seen)


async def test_every_id_ends_when_faults_hit_many_typing_clients():
    """Twenty clients typing through a mix of faults: no id without its terminal frame."""
    async with Emulator(EmulatorConfig(profile="fast", canned_text=CANNED)) as emu:
        async with ServerHandle(fault_settings(emu.base_url)) as srv:
            clients = [await open_client(srv.ws_url, srv.token) for _ in range(20)]
            for kind in ("rate_limit", "overloaded", "disconnect", "error_mid_stream", "hang"):
                emu.inject(Fault(kind, retry_after=0.3 if kind == "rate_limit" else None), 2)

            async def type_burst(c: Client, k: int) -> list[int]:
                ids = []
                for i in range(15):
                    ids.append(await c.suggest(f"Client {k} line {i} says that the"))
                    await asyncio.sleep(0.01)
                return ids

            sent = await asyncio.gather(*(type_burst(c, k) for k, c in enumerate(clients)))
            for c, ids in zip(clients, sent, strict=True):
                await c.terminal(ids[-1], 15)
                ends = {
                    m["id"]: m["type"]
                    for m in c.seen
                    if m.get("type") in ("done", "cancelled", "error")
                }
                missing = [i for i in ids if i not in ends]
                assert not missing, missing
                counts = [
                    sum(
                        1
                        for m in c.seen
                        if m.get("id") == i and m.get("type") in ("done", "cancelled", "error")
                    )
                    for i in ids
                ]
                assert set(counts) == {1}, counts
                await c.ping()
