"""The web editor keeps the writer's text in the browser: a reload, a closed tab or a crash
loses no word, a second tab beside the first starts empty, and when the browser will not keep
the text the page says so and asks before it is left. Chromium against the real server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .conftest import offline_server, open_web_editor

TOKEN = "browser-draft-token"
TEXT = "Dear Sam, the draft I promised is here. It covers the budget"
DRAFT_OF = """(text) => Object.keys(localStorage).some(
  (k) => k.startsWith('assistant.draft.') && JSON.parse(localStorage.getItem(k)).text === text)"""
NO_DRAFT = "() => !Object.keys(localStorage).some((k) => k.startsWith('assistant.draft.'))"


@pytest.fixture(scope="module")
def server() -> Iterator[object]:
    yield from offline_server(TOKEN)


def open_editor(page, server) -> None:
    open_web_editor(page, server, TOKEN)


def type_text(page, text: str) -> None:
    page.click("#editor")
    page.keyboard.type(text, delay=5)
    page.wait_for_function(DRAFT_OF, arg=text)  # saved 200 ms after the last key


def test_a_reload_brings_the_text_and_the_caret_back(page, server):
    open_editor(page, server)
    type_text(page, TEXT)
    page.keyboard.press("Escape")
    page.keyboard.press("Home")  # the caret, saved with the text as the page is left
    page.reload()
    page.wait_for_selector("#conn[data-state=connected]")
    assert page.input_value("#editor") == TEXT
    assert page.evaluate("document.getElementById('editor').selectionStart") == 0
    assert page.text_content("#draft-status").startswith("Draft restored from this browser")
    # The restored text is the server's document too: a suggestion comes for it.
    page.click("#editor")
    page.keyboard.press("End")
    page.keyboard.type(" for", delay=5)
    page.wait_for_function(
        "() => window.__shown.some((s) => s.final) || "
        "document.getElementById('source').textContent !== '–'"
    )
    assert page.page_errors == []


def test_a_text_cleared_to_nothing_is_not_brought_back(page, server):
    open_editor(page, server)
    type_text(page, TEXT)
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.wait_for_function(NO_DRAFT)
    page.reload()
    page.wait_for_selector("#conn[data-state=connected]")
    assert page.input_value("#editor") == ""
    assert page.text_content("#draft-status") == ""


def test_a_closed_tab_comes_back_in_the_next_and_a_tab_beside_it_starts_empty(page, server):
    open_editor(page, server)
    type_text(page, TEXT)
    context = page.context
    beside = context.new_page()  # the first tab is open: its text stays its own
    open_editor(beside, server)
    assert beside.input_value("#editor") == ""
    for tab in (beside, page):  # then the writer closes the tab with the text, as a tab closes
        with tab.expect_event("close"):
            tab.close(run_before_unload=True)
    after = context.new_page()
    open_editor(after, server)
    assert after.input_value("#editor") == TEXT
    assert after.text_content("#draft-status").startswith("Draft restored")
    # It is that tab's draft now, and only one copy is kept.
    assert (
        after.evaluate(
            "Object.keys(localStorage).filter((k) => k.startsWith('assistant.draft.')).length"
        )
        == 1
    )


def test_when_the_browser_will_not_keep_the_text_it_says_so_and_asks_before_leaving(page, server):
    page.add_init_script(
        """(() => {
          const set = Storage.prototype.setItem;
          Storage.prototype.setItem = function (key, value) {
            if (String(key).startsWith('assistant.draft.')) {
              throw new DOMException('full', 'QuotaExceededError');
            }
            return set.call(this, key, value);
          };
        })();"""
    )
    open_editor(page, server)
    page.click("#editor")
    page.keyboard.type(TEXT, delay=5)
    page.wait_for_function("() => window.__assistant.draft.unsaved")
    status = page.locator("#draft-status")
    assert status.text_content() == (
        "Not saved in this browser (storage full): keep this tab open, or copy your text"
    )
    assert "bad" in (status.get_attribute("class") or "")
    with page.expect_event("dialog") as asked:
        page.close(run_before_unload=True)
    assert asked.value.type == "beforeunload"
    asked.value.dismiss()  # the writer stays
    assert page.input_value("#editor") == TEXT and not page.is_closed()


def test_without_web_locks_a_tab_marks_itself_alive_instead(page, server):
    # A page that is not a secure context (plain http to another host) has no navigator.locks.
    page.context.add_init_script("Object.defineProperty(navigator, 'locks', {value: undefined})")
    open_editor(page, server)
    assert page.evaluate("navigator.locks") is None
    type_text(page, TEXT)
    beside = page.context.new_page()
    open_editor(beside, server)
    assert beside.input_value("#editor") == ""  # the first tab's mark is fresh
    context = page.context
    page.close()  # it marks itself no more; as if its last mark were long ago (a crash):
    beside.evaluate(  # (the empty tab beside never marks itself)
        "Object.keys(localStorage).filter((k) => k.startsWith('assistant.alive.'))"
        ".forEach((k) => localStorage.setItem(k, '0'))"
    )
    after = context.new_page()
    open_editor(after, server)
    assert after.input_value("#editor") == TEXT


def test_at_most_ten_drafts_are_kept_the_newest(page, server):
    open_editor(page, server)
    page.evaluate(  # twelve drafts of tabs long gone, saved a second apart
        """() => { for (let i = 0; i < 12; i++) localStorage.setItem('assistant.draft.old' + i,
             JSON.stringify({text: 'draft ' + i, cursor: 0, saved: 1000 * (i + 1)})); }"""
    )
    page.reload()  # this tab has none: it takes over the newest (draft 11) and keeps ten
    page.wait_for_selector("#conn[data-state=connected]")
    assert page.input_value("#editor") == "draft 11"
    kept = page.evaluate(
        """() => Object.keys(localStorage).filter((k) => k.startsWith('assistant.draft.'))
             .map((k) => JSON.parse(localStorage.getItem(k)).text).sort()"""
    )
    # Draft 11 is this tab's now; the two oldest (0 and 1) are gone.
    assert kept == sorted(["draft 11", *(f"draft {i}" for i in range(2, 11))])
