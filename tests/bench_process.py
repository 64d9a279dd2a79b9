"""``assistant bench --server`` as a real process, the way a CI job runs it against a deployment:
its exit code, its output and the JSON and JUnit files it writes."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree as ET

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class BenchRun:
    code: int
    out: str
    err: str
    report: dict
    junit: ET.Element | None

    def __str__(self) -> str:  # what an assertion shows
        return f"exit {self.code}\n{self.out[-3000:]}\n{self.err[-3000:]}"


TIMEOUT_S = 120.0


def _prepared(tmp_path: Path, env: dict[str, str] | None) -> tuple[Path, Path, dict[str, str]]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    out_json, out_xml = tmp_path / "bench.json", tmp_path / "bench.xml"
    for path in (out_json, out_xml):
        path.unlink(missing_ok=True)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "ASSISTANT_"))}
    clean.pop("SSL_CERT_FILE", None)
    clean.update(PYTHONPATH=str(ROOT), ASSISTANT_CONFIG=str(tmp_path / "none.toml"))
    clean.update(env or {})
    return out_json, out_xml, clean


def _written(out_json: Path, out_xml: Path) -> tuple[dict, ET.Element | None]:
    report = json.loads(out_json.read_text()) if out_json.exists() else {}
    junit = ET.fromstring(out_xml.read_text()) if out_xml.exists() else None
    return report, junit


async def bench_against(
    tmp_path: Path, url: str, *args: str, env: dict[str, str] | None = None
) -> BenchRun:
    """``assistant bench --server url *args --json … --junit …`` with no Anthropic or assistant
    settings (nor SSL_CERT_FILE) from this environment, plus ``env``; killed after 120 s."""
    out_json, out_xml, clean = _prepared(tmp_path, env)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "assistant",
        "bench",
        "--server",
        url,
        *args,
        "--json",
        str(out_json),
        "--junit",
        str(out_xml),
        cwd=str(ROOT),
        env=clean,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    report, junit = _written(out_json, out_xml)
    return BenchRun(proc.returncode, out.decode(), err.decode(), report, junit)
