"""What the server logs at info (connections, refusals, failures) and what only at debug (each
suggestion request): an operator at info pays for lines about events, not about keystrokes."""

from __future__ import annotations

import logging

from assistant.emulator import Fault
from server.logs import log_level
from server.runner import ServerHandle

from .conftest import client, emulator, make_settings


def _events(caplog) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "assistant.server"]


async def test_requests_are_debug_lines_and_a_failure_is_one_line(caplog):
    caplog.set_level(logging.INFO, logger="assistant.server")
    async with emulator(canned_text=" the report") as emu:
        async with ServerHandle(make_settings(emu)) as srv, client(srv) as c:
            for prefix in ("Please send me", "Please send me the", "Please send me the rest"):
                done = await c.terminal(await c.suggest(prefix))
                assert done["type"] == "done"
            served = len([r for r in emu.requests if r.path == "/v1/messages"])
            emu.inject(Fault("server_error"))
            await c.terminal(await c.suggest("And then "))
    events = _events(caplog)
    assert served >= 1
    assert ("connection_open" in {e for _, e in events}) and (
        "connection_close" in {e for _, e in events}
    )
    assert "suggest_request" not in {e for _, e in events}
    # The API's failure is one line (the tier's change of state), not one per request.
    assert [lvl for lvl, e in events if e == "provider_status"] == [logging.WARNING]


async def test_debug_logs_every_request(caplog):
    caplog.set_level(logging.DEBUG, logger="assistant.server")
    async with emulator(canned_text=" the report") as emu:
        async with ServerHandle(make_settings(emu)) as srv, client(srv) as c:
            await c.terminal(await c.suggest("Please send me"))
    assert (logging.DEBUG, "suggest_request") in _events(caplog)


def test_log_level_from_the_environment():
    assert log_level({}) == logging.INFO
    assert log_level({"ASSISTANT_LOG_LEVEL": "debug"}) == logging.DEBUG
    assert log_level({"ASSISTANT_LOG_LEVEL": "Warning"}) == logging.WARNING
    assert log_level({"ASSISTANT_LOG_LEVEL": "loud"}) == logging.INFO
