"""`assistant serve --emulator --emulator-predictor ... --emulator-oracle FILE` as a process:
any text file a user gives is what the emulated model knows; a bad file is a clear error."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from websockets.asyncio.client import connect

from tests.serve_process import serve_env, start_serve, stop_process

ROOT = Path(__file__).resolve().parents[2]
TEXT = (
    "Minutes of the allotment society.\n\n"
    "The water butts by the north gate leak again, and the committee agreed to replace them "
    "before the spring planting starts.\n"
)


TOKEN = "predictor-token-123456"


async def suggestion_for(ws, id_: int, prefix: str) -> dict:
    await ws.send(orjson.dumps({"type": "suggest", "id": id_, "prefix": prefix}).decode())
    while True:
        frame = orjson.loads(await asyncio.wait_for(ws.recv(), 30))
        if frame.get("id") == id_ and frame["type"] in ("done", "cancelled", "error"):
            return frame


@pytest.mark.parametrize("accuracy, right", [("1", True), ("0", False)])
async def test_serve_predicts_from_the_users_file(tmp_path, accuracy, right):
    notes = tmp_path / "notes.txt"
    notes.write_text(TEXT, encoding="utf-8")
    proc, ws_url, banner = await start_serve(
        tmp_path,
        "--emulator",
        "--emulator-predictor",
        "noisy",
        "--emulator-accuracy",
        accuracy,
        "--emulator-oracle",
        str(notes),
        token=TOKEN,
    )
    try:
        assert f"predictor noisy (P = {accuracy})" in banner.splitlines()[0]
        async with connect(ws_url, additional_headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
            assert orjson.loads(await ws.recv())["provider"] == "emulator"
            prefix = "The water butts by the north gate leak again, and the "
            done = await suggestion_for(ws, 1, prefix)
        assert done["type"] == "done" and done["source"] == "model" and done["text"]
        meant = TEXT[TEXT.index(prefix) + len(prefix) :]
        first = done["text"].split()[0]
        assert meant.startswith(first) is right, done["text"]
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        await stop_process(proc)


@pytest.mark.parametrize(
    "content, message",
    [(None, "does not exist"), (b"", "is empty"), (b"\x00\x01\x02ELF", "looks binary")],
)
def test_serve_refuses_an_unusable_file_with_a_clear_message(tmp_path, content, message):
    f = tmp_path / "given.txt"
    if content is not None:
        f.write_bytes(content)
    proc = subprocess.run(
        [sys.executable, "-m", "assistant", "serve", "--port", "0", "--emulator"]
        + ["--emulator-predictor", "noisy", "--emulator-oracle", str(f)],
        cwd=ROOT,
        env=serve_env(tmp_path, TOKEN),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("assistant serve: oracle file")
