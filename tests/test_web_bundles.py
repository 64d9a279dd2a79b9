"""The editor bundles the Python package ships (server/static/bundles/, server/static/client.js)
are what web/ builds, and a wheel carries them, so `pip install` alone serves the demos.

The build check needs node and web/node_modules (`.ci/setup-node.sh` installs both and rebuilds
in place); without them it is skipped, saying so. It builds into a temporary folder and compares
byte for byte with the files in server/static (which, after the setup's rebuild, makes it a
reproducibility check: two builds, same bytes), then checks those files are the ones git holds,
so a change to web/src that was not rebuilt and committed fails here."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WEB = ROOT / "web"
STATIC = ROOT / "server" / "static"
SHIPPED = ["bundles/codemirror.js", "bundles/prosemirror.js", "client.js"]
DEMO_PAGES = ["demo/page.html", "demo/demo.css"]


def test_the_committed_bundles_are_a_fresh_build(tmp_path):
    node = shutil.which("node")
    if node is None or not (WEB / "node_modules" / "esbuild").is_dir():
        pytest.skip("node or web/node_modules missing: run .ci/setup-node.sh")
    subprocess.run([node, "build.mjs", "--outdir", str(tmp_path)], cwd=WEB, check=True, timeout=120)
    for name in SHIPPED:
        fresh = (tmp_path / name).read_bytes()
        assert fresh == (STATIC / name).read_bytes(), (
            f"server/static/{name} is not what web/ builds: cd web && npm run build"
        )
    if shutil.which("git") and (ROOT / ".git").exists():
        paths = [str(STATIC / name) for name in SHIPPED]
        diff = subprocess.run(
            ["git", "diff", "--stat", "--", *paths], cwd=ROOT, capture_output=True, text=True
        )
        assert diff.returncode == 0 and diff.stdout == "", (
            f"the rebuilt bundles differ from the committed ones; commit them:\n{diff.stdout}"
        )


def test_the_client_is_the_packages_client():
    assert (STATIC / "client.js").read_bytes() == (WEB / "src" / "client.js").read_bytes()


@pytest.mark.slow
def test_a_wheel_carries_the_demos_and_their_bundles(tmp_path):
    """What `pip install` gets: the demo pages and the built bundles, no web/ sources needed.
    Built from a copy of the sources (setuptools' build/ folder in the tree would keep files
    since deleted, and this test must not leave one behind)."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for package in ("assistant", "server", "tui"):
        shutil.copytree(ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(src)],
        check=True,
        timeout=280,
    )
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in SHIPPED + DEMO_PAGES:
        assert f"server/static/{name}" in names, name
    assert not any(n.startswith("web/") for n in names)


def test_serve_prints_the_demo_urls_with_the_token():
    from assistant.commands.serve import banner
    from assistant.config import Settings

    lines = banner(Settings(token="tok-123", host="0.0.0.0"), 8765, "offline", 1).splitlines()
    demos = next(x for x in lines if x.startswith("editor demos:")).split()[2:]
    assert demos == [
        "http://127.0.0.1:8765/demo/codemirror#token=tok-123",
        "http://127.0.0.1:8765/demo/prosemirror#token=tok-123",
    ]
