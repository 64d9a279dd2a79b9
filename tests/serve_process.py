"""``assistant serve`` as a real process, for the tests that need the command itself (its flags,
its banner, its workers, its signals): started with a clean environment, returned once its banner
is out."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def serve_env(tmp_path: Path, token: str, **extra: str) -> dict[str, str]:
    """This environment without any Anthropic or assistant settings (no key, no config file, the
    statistical offline tier), with ``token`` as the server's token and ``extra`` on top."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "ASSISTANT_"))}
    env.update(
        PYTHONPATH=str(ROOT),
        ASSISTANT_CONFIG=str(tmp_path / "none.toml"),
        ASSISTANT_OFFLINE="statistical",
        ASSISTANT_TOKEN=token,
        XDG_DATA_HOME=str(tmp_path / "data"),  # the usage ledger's default SQLite file
    )
    env.update(extra)
    return env


async def start_serve(
    tmp_path: Path,
    *args: str,
    token: str,
    env: dict[str, str] | None = None,
    own_group: bool = False,
    preexec_fn=None,
) -> tuple[asyncio.subprocess.Process, str, str]:
    """``assistant serve --port 0 *args`` with :func:`serve_env` (plus ``env``), in a process
    group of its own when ``own_group`` (as a shell runs it). Returns the process once its banner
    is out, with its WebSocket URL and the banner."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "assistant",
        "serve",
        "--port",
        "0",
        *args,
        cwd=str(ROOT),
        env=serve_env(tmp_path, token, **(env or {})),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=own_group,
        preexec_fn=preexec_fn,
    )
    out = []
    while True:
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        if not line:
            err = (await proc.stderr.read()).decode()
            raise AssertionError(f"serve exited before printing its URL: {err[-2000:]}")
        out.append(line)
        if line.startswith("token:"):
            break
    ws_url = next(x for x in out if x.startswith("websocket:")).split()[-1]
    return proc, ws_url, "".join(out)


async def stop_process(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


async def suggest_terminal(ws, fid: int, prefix: str, timeout: float = 30.0) -> dict:  # noqa: ASYNC109
    """Send a v1 ``suggest`` on a raw websockets connection; its terminal frame."""
    import orjson

    await ws.send(orjson.dumps({"type": "suggest", "id": fid, "prefix": prefix}).decode())
    while True:
        msg = orjson.loads(await asyncio.wait_for(ws.recv(), timeout))
        if msg.get("id") == fid and msg["type"] in ("done", "error", "cancelled"):
            return msg
