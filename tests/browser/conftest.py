"""Browser tests: Debian's chromium driven by playwright (never a downloaded browser).

Every test here gets the ``browser`` marker and is skipped, with the reason, when
/usr/bin/chromium is missing (``.ci/setup-browser.sh`` installs it).
"""

from __future__ import annotations

import mimetypes
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("ASSISTANT_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "server" / "static"
ARTIFACTS = ROOT / "test-artifacts"
DOC_SCREENSHOT = ROOT / "docs" / "img" / "web-editor.png"

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(
        reason=f"{CHROMIUM} is missing: run .ci/setup-browser.sh (apt-get install chromium)"
    )
    for item in items:
        if _HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.browser)
            if not CHROMIUM.exists():
                item.add_marker(skip)


# Module scope: the sync API keeps an event loop running in this thread until it stops, and
# the asyncio tests collected after the browser tests need it gone.
@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def _page(browser, **context_options) -> Iterator[object]:
    """A page in a fresh context; its uncaught errors collect in ``page.page_errors``."""
    context = browser.new_context(**context_options)
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.page_errors = errors  # type: ignore[attr-defined]
    try:
        yield pg
    finally:
        context.close()


@pytest.fixture
def page(browser):
    yield from _page(browser, viewport={"width": 1200, "height": 760})


@pytest.fixture
def phone(browser):
    """A phone: 375 px wide, touch, a mobile viewport."""
    yield from _page(
        browser, viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True
    )


def offline_server(token: str) -> Iterator[object]:
    """The real server on loopback with the offline tier only (no model): for a module's tests
    of the page itself (``yield from`` it in a module-scoped fixture)."""
    from assistant.config import Settings
    from server.runner import ServerThread

    with ServerThread(Settings(token=token, offline="statistical")) as srv:
        yield srv


def open_web_editor(page, server, token: str) -> None:
    """The web editor at ``/`` with ``token``, once its connection is up."""
    page.goto(f"{server.http_url}/#token={token}")
    page.wait_for_selector("#conn[data-state=connected]")


class StaticSite:
    """A second, plain HTTP server on another port: serves server/static under /static/ and
    a few extra pages, so a page can be loaded from an origin the assistant server refuses."""

    def __init__(self, pages: dict[str, str] | None = None) -> None:
        self.pages = dict(pages or {})
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                path = self.path.split("?", 1)[0]
                if path in site.pages:
                    body, ctype = site.pages[path].encode(), "text/html; charset=utf-8"
                elif path.startswith("/static/") and "/.." not in path:
                    f = STATIC / path.removeprefix("/static/")
                    if not f.is_file():
                        self.send_error(404)
                        return
                    body = f.read_bytes()
                    ctype = mimetypes.guess_type(f.name)[0] or "application/octet-stream"
                    if f.suffix == ".js":
                        ctype = "text/javascript"
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> StaticSite:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def static_site() -> Iterator[StaticSite]:
    with StaticSite({"/blank.html": "<!doctype html><title>blank</title>"}) as site:
        yield site
