"""The web editor page end to end: chromium, the real server on loopback, the real Anthropic
SDK inside it talking to the emulator. Ghost text, Tab, Esc, type-through, cursor moves,
no stale suggestion under fast typing, deep review apply/skip/stale, foreign Origin refused."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from assistant.config import Settings
from assistant.emulator import EmulatorConfig, EmulatorThread
from tests.retraction_case import RETRACTED_LABELS, RETRACTED_SEED, RETRACTED_TEXT

from .conftest import ARTIFACTS, DOC_SCREENSHOT, StaticSite

TOKEN = "browser-test-token"

LAST_FINAL_GHOST = """() => {
  const s = window.__shown;
  const g = document.getElementById('ghost').textContent;
  return s.length > 0 && s[s.length - 1].final && g.length > 0 && g === s[s.length - 1].text;
}"""


@pytest.fixture(scope="module")
def server() -> Iterator[object]:
    from server.runner import ServerThread

    with EmulatorThread(EmulatorConfig(profile="fast", seed=0)) as emu:
        settings = Settings(
            api_key="test-key", base_url=emu.base_url, token=TOKEN, offline="statistical"
        )
        with ServerThread(settings) as srv:
            srv.emulator = emu
            yield srv


def open_editor(page, server) -> None:
    page.goto(f"{server.http_url}/#token={TOKEN}")
    page.wait_for_selector("#conn[data-state=connected]")
    page.click("#editor")


def ghost(page) -> str:
    return page.text_content("#ghost") or ""


def type_and_wait_for_ghost(page, text: str, delay: float = 15) -> str:
    page.keyboard.type(text, delay=delay)
    page.wait_for_function(LAST_FINAL_GHOST)
    return ghost(page)


def test_ghost_text_appears_inline_and_tab_accepts_it(page, server):
    open_editor(page, server)
    # the token left the address bar and lives in this tab's sessionStorage
    assert "token" not in page.url
    assert page.evaluate("sessionStorage.getItem('assistant.token')") == TOKEN

    typed = "Thanks for the quick "
    suggestion = type_and_wait_for_ghost(page, typed)
    assert suggestion.strip()
    # the layer lays out the typed text invisibly, then the suggestion, in the textarea's font
    assert page.text_content("#ghost-before") == typed
    fonts = page.evaluate(
        """() => [getComputedStyle(document.getElementById('editor')).font,
                  getComputedStyle(document.getElementById('ghost-layer')).font]"""
    )
    assert fonts[0] == fonts[1]
    # "offline" only if the emulated API missed the suggestion deadline on a loaded machine
    source = page.text_content("#source")
    assert source in ("model", "offline")
    assert page.text_content("#latency").endswith(" ms")
    if source == "model":
        assert float(page.text_content("#cost").lstrip("$")) > 0

    shown_before = page.evaluate("window.__shown.length")
    page.keyboard.press("Tab")
    accepted = typed + suggestion
    assert page.input_value("#editor") == accepted
    # the old ghost is gone; a next one may already be there, made for the accepted text
    now = page.evaluate(
        """() => ({ghost: document.getElementById('ghost').textContent,
                  shown: window.__shown.length, last: window.__shown.at(-1)})"""
    )
    if now["ghost"]:
        assert now["shown"] > shown_before
        assert now["last"]["before"] == accepted
        assert now["last"]["text"].startswith(now["ghost"])
    assert page.evaluate("document.activeElement.id") == "editor"  # Tab did not move focus
    assert page.page_errors == []


def test_escape_dismisses_and_tab_without_a_ghost_inserts_nothing(page, server):
    open_editor(page, server)
    typed = "The meeting is moved to "
    assert type_and_wait_for_ghost(page, typed)
    page.keyboard.press("Escape")
    assert ghost(page) == ""
    assert page.input_value("#editor") == typed
    page.keyboard.press("Tab")
    assert page.input_value("#editor") == typed
    assert page.page_errors == []


def test_cursor_move_clears_the_ghost(page, server):
    open_editor(page, server)
    assert type_and_wait_for_ghost(page, "Please send me the ")
    page.keyboard.press("ArrowLeft")
    assert ghost(page) == ""
    shown_before = page.evaluate("window.__shown.length")
    page.wait_for_timeout(300)  # a late answer for the old cursor position must not come back
    assert ghost(page) == ""
    assert page.evaluate("window.__shown.length") == shown_before


def test_typing_the_ghost_consumes_it_locally(page, server):
    open_editor(page, server)
    typed = "I will review the "
    suggestion = type_and_wait_for_ghost(page, typed)
    first = suggestion[0]
    # One key, then read the ghost in the same turn of the page's event loop as the input.
    rest = page.evaluate(
        """(ch) => {
          const ta = document.getElementById('editor');
          document.execCommand('insertText', false, ch);
          return document.getElementById('ghost').textContent;
        }""",
        first,
    )
    assert rest == suggestion[1:]
    assert page.input_value("#editor") == typed + first
    page.keyboard.press("Tab")
    assert page.input_value("#editor").startswith(typed + first)
    assert page.page_errors == []


def test_fast_typing_never_shows_a_stale_suggestion(page, server):
    open_editor(page, server)
    sentence = (
        "Thanks for the update on the launch plan. I think we should move the review "
        "to Thursday so that the whole team can join, and send the notes on Friday. "
    )
    # 30 ms a key (400 words a minute): faster than anyone types, slow enough that a loaded CI
    # machine still answers some keys before the next one (the race below must really run).
    page.keyboard.type(sentence, delay=30)
    page.wait_for_function(LAST_FINAL_GHOST)
    shown = page.evaluate("window.__shown")
    assert shown, "no suggestion was displayed"
    for s in shown:
        # displayed only while it answered the latest request, for the text then on screen
        assert s["id"] == s["latest"], s
        assert s["requestPrefix"] == s["before"], s
        assert s["caret"] == s["at"], s
    # the race was really run: ghosts came and went while keys were still arriving
    assert any(s["before"] != sentence for s in shown)
    last = shown[-1]
    assert last["before"] == sentence == page.input_value("#editor")
    ids = [s["id"] for s in shown]
    assert ids == sorted(ids)
    assert page.page_errors == []


def test_the_page_keeps_the_servers_copy_in_step_by_edits(page, server):
    """Protocol 1.1 from the page: after typing, deleting and typing astral characters, the
    document the server holds (built from open + edits in code points) is the textarea's."""
    open_editor(page, server)
    page.keyboard.type("Notes 😀 for the 𝄞 team. ", delay=10)
    page.keyboard.press("Backspace")
    page.keyboard.press("Backspace")
    page.keyboard.type("! We meet on Thursday ", delay=10)
    page.wait_for_function(LAST_FINAL_GHOST)
    value = page.input_value("#editor")
    client = page.evaluate(
        "({v: __assistant.client.documentVersion, d: __assistant.client.documents})"
    )
    assert client["d"] is True and client["v"] is not None

    async def server_copies():
        return [
            (c.documents.document.text, c.documents.document.version)
            for c in server.hub.connections
            if c.documents.document is not None
        ]

    assert (value, client["v"]) in server.call(server_copies())
    assert page.page_errors == []


REVIEWED = "I saw teh cat yesterday and it was happy.\nAlot of people came to the party."


def test_review_findings_apply_skip_and_stale(page, server):
    open_editor(page, server)
    page.fill("#editor", REVIEWED)
    page.click("#review-btn")
    page.wait_for_selector(".finding >> nth=1")
    page.wait_for_function("() => document.getElementById('review-cancel').hidden")
    assert "finding" in page.text_content("#review-status")
    findings = page.locator(".finding")
    quotes = [findings.nth(i).locator("del").text_content() for i in range(findings.count())]
    assert "teh" in quotes and "Alot" in quotes
    teh = findings.nth(quotes.index("teh"))
    alot = findings.nth(quotes.index("Alot"))

    # edit the second quote by hand: its finding is stale and refused
    page.evaluate(
        """() => {
          const ta = document.getElementById('editor');
          const i = ta.value.indexOf('Alot');
          ta.focus();
          ta.setSelectionRange(i + 1, i + 1);
          document.execCommand('insertText', false, 'x');
        }"""
    )
    edited = page.input_value("#editor")
    assert "Axlot" in edited
    alot.locator("button.apply").click()
    assert "Not applied" in alot.locator(".note").text_content()
    assert page.input_value("#editor") == edited

    # the first one still applies, at its place shifted by nothing (the edit was after it)
    teh.locator("button.apply").click()
    assert page.input_value("#editor") == edited.replace("teh", "the", 1)
    assert "Applied" in teh.locator(".note").text_content()
    assert teh.locator("button.apply").is_disabled()
    assert page.page_errors == []


def test_findings_shift_with_edits_before_them(page, server):
    open_editor(page, server)
    page.fill("#editor", REVIEWED)
    page.click("#review-btn")
    page.wait_for_function("() => document.getElementById('review-cancel').hidden")
    findings = page.locator(".finding")
    quotes = [findings.nth(i).locator("del").text_content() for i in range(findings.count())]
    alot = findings.nth(quotes.index("Alot"))
    page.evaluate(
        """() => {
          const ta = document.getElementById('editor');
          ta.focus();
          ta.setSelectionRange(0, 0);
          document.execCommand('insertText', false, 'Hello. ');
        }"""
    )
    findings.nth(quotes.index("teh")).locator("button.skip").click()
    alot.locator("button.apply").click()
    assert page.input_value("#editor") == "Hello. " + REVIEWED.replace("Alot", "A lot")


@pytest.fixture(scope="module")
def retracting_server() -> Iterator[object]:
    from server.runner import ServerThread

    config = EmulatorConfig(profile="fast", seed=RETRACTED_SEED, review_labels=RETRACTED_LABELS)
    with EmulatorThread(config) as emu:
        settings = Settings(
            api_key="test-key", base_url=emu.base_url, token=TOKEN, offline="statistical"
        )
        with ServerThread(settings) as srv:
            yield srv


def test_a_finding_sonnet_retracts_leaves_the_list_and_cannot_be_applied(page, retracting_server):
    open_editor(page, retracting_server)
    page.fill("#editor", RETRACTED_TEXT)
    # Every finding item the panel makes, kept here so the test can try a retracted one.
    page.evaluate(
        """() => {
          window.__items = [];
          const { client, review } = window.__assistant;
          client.addEventListener('finding', () => {
            const item = review.findings[review.findings.length - 1];
            if (item) window.__items.push(item);
          });
        }"""
    )
    page.click("#review-btn")
    page.wait_for_function("() => document.getElementById('review-cancel').hidden")
    seen = page.evaluate("window.__items.map(i => [i.index, i.quote, i.state])")
    # Haiku's finding was shown first, then withdrawn for Sonnet's narrower one.
    assert [0, "Monday. The budjet", "retracted"] in seen, seen
    findings = page.locator(".finding")
    quotes = [findings.nth(i).locator("del").text_content() for i in range(findings.count())]
    assert "Monday. The budjet" not in quotes
    assert page.locator('.finding[data-index="0"]').count() == 0
    assert "budjet" in quotes and "five people in total" in quotes
    assert page.text_content("#review-status").startswith("2 findings")

    # The withdrawn finding cannot be applied even through a handle kept on it.
    page.evaluate("() => window.__assistant.review.apply(window.__items.find(i => i.index === 0))")
    assert page.input_value("#editor") == RETRACTED_TEXT
    # Sonnet's own fix applies.
    findings.nth(quotes.index("budjet")).locator("button.apply").click()
    assert page.input_value("#editor") == RETRACTED_TEXT.replace("budjet", "budget")
    assert page.page_errors == []


FOREIGN_PAGE = """<!doctype html><title>foreign</title><p id="state">none</p>
<script type="module">
import { AssistantClient } from "/static/client.js";
const params = new URLSearchParams(location.hash.slice(1));
window.states = [];
const c = new AssistantClient({url: params.get("ws"), token: params.get("token"),
                               backoff: {initialMs: 50, maxMs: 200, factor: 2}});
c.addEventListener("state", (e) => {
  window.states.push(e.detail);
  const el = document.getElementById("state");
  el.textContent = e.detail.state + (e.detail.refused ? " (refused)" : "");
  el.dataset.state = e.detail.refused ? "refused" : e.detail.state;
});
c.connect();
</script>"""


def test_a_page_from_another_origin_is_refused(page, server):
    with StaticSite({"/foreign.html": FOREIGN_PAGE}) as site:
        page.goto(f"{site.url}/foreign.html#ws={server.ws_url}&token={TOKEN}")
        page.wait_for_selector("#state[data-state=refused]")
        page.wait_for_function("() => window.states.filter(s => s.refused).length >= 2")
        states = page.evaluate("window.states")
    assert all(s["state"] != "connected" for s in states)
    # the same token from the server's own page is admitted
    open_editor(page, server)
    assert page.text_content("#conn").startswith("connected")


def test_screenshot_with_a_ghost_and_review_findings(page, server):
    """test-artifacts/web-editor.png, and docs/img/web-editor.png when missing or when
    ASSISTANT_UPDATE_SCREENSHOT is set: the page as a user sees it."""
    page.set_viewport_size({"width": 1100, "height": 560})
    open_editor(page, server)
    page.fill("#editor", REVIEWED + "\n")
    page.click("#review-btn")
    page.wait_for_function("() => document.getElementById('review-cancel').hidden")
    assert page.locator(".finding").count() >= 2
    page.click("#editor")
    page.keyboard.press("Control+End")
    assert type_and_wait_for_ghost(page, "Thanks for the ")
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "web-editor.png"
    page.screenshot(path=str(shot))
    # the committed copy is refreshed on demand, so a test run leaves the tree clean
    if not DOC_SCREENSHOT.exists() or os.environ.get("ASSISTANT_UPDATE_SCREENSHOT"):
        DOC_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, DOC_SCREENSHOT)
    assert page.page_errors == []


def test_the_editor_with_a_wrong_token_shows_the_refusal(page, server):
    page.goto(f"{server.http_url}/#token=not-the-token")
    # State and label read in one go: the client retries, so "refused" alternates with
    # "reconnecting…" and two separate reads can straddle the change.
    page.wait_for_function(
        """() => {
            const c = document.querySelector('#conn');
            return c && c.dataset.state === 'refused' && c.textContent.includes('refused');
        }"""
    )
    # typing still works and loses nothing without a connection
    page.click("#editor")
    page.keyboard.type("Still here.")
    assert page.input_value("#editor") == "Still here."
    assert ghost(page) == ""
    assert page.page_errors == []


def test_the_editor_runs_under_its_content_security_policy(page, server):
    """The page is served with a strict CSP (no inline script or style, no eval, no framing):
    the editor connects, shows a ghost and reviews without one violation."""
    violations: list[str] = []
    page.on(
        "console",
        lambda msg: violations.append(msg.text) if "Security Policy" in msg.text else None,
    )
    response = page.goto(f"{server.http_url}/#token={TOKEN}")
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    page.wait_for_selector("#conn[data-state=connected]")
    page.click("#editor")
    assert type_and_wait_for_ghost(page, "Thanks for the quick ").strip()
    page.click("#review-btn")
    page.wait_for_function("() => document.getElementById('review-cancel').hidden")
    assert violations == []
