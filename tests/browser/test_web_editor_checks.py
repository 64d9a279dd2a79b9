"""Corrections as you type in the web editor (chromium, the real server on loopback, offline
tier): a finished sentence's misspelling is underlined, F8 or a click on the hint applies it as
one undoable edit, and a mark whose text was edited is dropped, never applied."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .conftest import offline_server, open_web_editor

TOKEN = "browser-checks-token"


@pytest.fixture(scope="module")
def server() -> Iterator[object]:
    yield from offline_server(TOKEN)


def open_editor(page, server) -> None:
    open_web_editor(page, server, TOKEN)
    page.click("#editor")


def value(page) -> str:
    return page.evaluate("document.getElementById('editor').value")


def test_f8_applies_the_underlined_correction_as_one_undo_step(page, server):
    open_editor(page, server)
    page.keyboard.type("We definately agree. Next", delay=20)
    page.wait_for_function("() => window.__checks.marks.length === 1")
    assert page.text_content(".check-layer .flag") == "definately"
    decoration = page.evaluate(
        "getComputedStyle(document.querySelector('.check-layer .flag')).textDecorationStyle"
    )
    assert decoration == "wavy"
    assert "definitely" in page.text_content(".check-hint")
    page.keyboard.press("F8")
    assert value(page) == "We definitely agree. Next"
    assert page.evaluate("window.__checks.marks.length") == 0
    page.keyboard.press("Control+z")
    assert value(page) == "We definately agree. Next"  # one undo step
    assert page.page_errors == []


def test_a_click_on_the_hint_applies_and_an_edited_mark_is_dropped(page, server):
    open_editor(page, server)
    page.keyboard.type("I recieve it. We met untill noon. Ok", delay=20)
    page.wait_for_function("() => window.__checks.marks.length === 2")
    # the writer fixes "untill" by hand: its mark is dropped, not applied
    page.evaluate(
        """() => { const ta = document.getElementById('editor');
                   const at = ta.value.indexOf('untill') + 5; ta.setSelectionRange(at, at + 1); }"""
    )
    page.keyboard.press("Delete")
    assert page.evaluate("window.__checks.marks.map(m => m.quote)") == ["recieve"]
    page.evaluate("document.getElementById('editor').setSelectionRange(4, 4)")
    page.keyboard.press("ArrowRight")  # caret in "recieve": the hint offers it
    page.click(".check-hint .check-apply")
    assert value(page) == "I receive it. We met until noon. Ok"
    assert page.page_errors == []
