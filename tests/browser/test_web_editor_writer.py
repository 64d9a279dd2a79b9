"""The web editor as a writer uses it (issue 22): Tab takes only ghost text that is on screen,
Tab never leaves the text, Ctrl+Right takes a word, a right-to-left ghost follows the typed
text, and at phone width the page does not scroll sideways and a ghost brings a touch Accept
button. Chromium, the real server on loopback, the real SDK inside it talking to the emulator,
whose oracle continues the passages below."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from assistant.config import Settings
from assistant.emulator import EmulatorConfig, EmulatorThread

TOKEN = "browser-writer-token"
ENGLISH = (
    "In the summer the children played on the beach while their parents watched from the "
    "dunes above them and the gulls circled over the harbour wall until the light went."
)
HEBREW = "בבוקר הלכנו לשוק הגדול וקנינו לחם טרי ופירות מתוקים לכל המשפחה שלנו."
NOTES = "\n".join(f"Line {n} of the notes." for n in range(30)) + "\n"

GHOST_SETTLED = """() => {
  const s = window.__shown;
  const g = document.getElementById('ghost').textContent;
  return s.length > 0 && s[s.length - 1].final && g.length > 0 && g === s[s.length - 1].text;
}"""

# Which characters of the ghost are drawn inside the textarea's box (and the window): the
# prefix of the ghost a writer can read.
GHOST_ON_SCREEN = """() => {
  const node = document.getElementById('ghost').firstChild;
  if (!node) return '';
  const box = document.getElementById('editor').getBoundingClientRect();
  const top = Math.max(box.top, 0), bottom = Math.min(box.bottom, innerHeight);
  const range = document.createRange();
  let seen = '';
  for (let i = 0; i < node.data.length; i++) {
    range.setStart(node, i); range.setEnd(node, i + 1);
    const rects = [...range.getClientRects()];
    if (rects.length && !rects.every(r => r.top >= top - 0.5 && r.bottom <= bottom + 0.5)) break;
    seen += node.data[i];
  }
  return seen;
}"""


@pytest.fixture(scope="module")
def server() -> Iterator[object]:
    from server.runner import ServerThread

    config = EmulatorConfig(profile="fast", seed=0, oracle_texts=(ENGLISH, HEBREW))
    with EmulatorThread(config) as emu:
        settings = Settings(
            api_key="test-key", base_url=emu.base_url, token=TOKEN, offline="statistical"
        )
        with ServerThread(settings) as srv:
            yield srv


def open_editor(page, server, text: str = "") -> None:
    page.goto(f"{server.http_url}/#token={TOKEN}")
    page.wait_for_selector("#conn[data-state=connected]")
    if text:
        page.fill("#editor", text)
    page.click("#editor")
    page.keyboard.press("Control+End")


def value(page) -> str:
    return page.input_value("#editor")


def ghost(page) -> str:
    return page.text_content("#ghost") or ""


def type_until_ghost(page, text: str) -> str:
    page.keyboard.type(text, delay=10)
    page.wait_for_function(GHOST_SETTLED)
    return ghost(page)


@pytest.mark.parametrize("height", [150, 64])
def test_tab_inserts_only_ghost_text_that_is_on_screen(page, server, height):
    """The caret on the last visible row, a ghost wrapping below it: what Tab inserts was all
    drawn inside the textarea (150 px: the view scrolls so all of it is; 64 px: it cannot fit,
    so only the rows in view are taken, the rest stays)."""
    page.set_viewport_size({"width": 1200, "height": 760})
    open_editor(page, server, NOTES)
    page.evaluate(
        f"""() => {{
          document.getElementById('editor-wrap').style.width = '260px';
          document.getElementById('editor').style.height = '{height}px';
        }}"""
    )
    typed = "In the summer the "
    whole = type_until_ghost(page, typed)
    assert len(whole) > 40  # wraps over several rows at 260 px
    before = value(page)
    page.wait_for_function(GHOST_ON_SCREEN)  # the writer sees (part of) it
    # two frames: what is painted once the page has placed the ghost
    page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    seen = page.evaluate(GHOST_ON_SCREEN)
    page.keyboard.press("Tab")
    inserted = value(page)[len(before) :]
    assert inserted, "nothing accepted"
    assert seen.startswith(inserted), (seen, inserted)
    if height == 64:
        assert len(inserted) < len(whole)
        assert ghost(page) == whole[len(inserted) :]  # the rest, for the next Tab
    assert page.page_errors == []


def test_tab_without_a_ghost_keeps_the_focus_and_the_typed_words(page, server):
    open_editor(page, server)
    page.keyboard.press("Tab")  # an empty page: no ghost can be there
    assert page.evaluate("document.activeElement.id") == "editor"
    page.keyboard.type("Dear Sam,", delay=10)
    page.keyboard.press("Escape")  # nothing to dismiss, or the ghost...
    page.keyboard.press("ArrowLeft")  # ...and a move: no ghost, none asked for
    page.keyboard.press("ArrowRight")
    assert ghost(page) == ""
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "editor"
    page.keyboard.press("Space")  # once pressed the Review button
    page.keyboard.press("Escape")
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Tab")
    page.keyboard.type("thanks for the notes", delay=10)
    page.keyboard.press("Escape")
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    assert value(page).startswith("Dear Sam, thanks for the notes\n")
    assert page.text_content("#review-status") == ""  # no review was started by a key
    # Esc then Tab is the way out of the text for a keyboard user
    page.keyboard.press("Escape")
    if ghost(page):
        page.keyboard.press("Escape")
    page.keyboard.press("Escape")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") != "editor"
    assert page.page_errors == []


def test_ctrl_right_accepts_the_next_word(page, server):
    open_editor(page, server)
    typed = "In the summer the "
    whole = type_until_ghost(page, typed)
    assert whole.startswith("children")
    page.keyboard.press("Control+ArrowRight")
    assert value(page) == typed + "children"
    assert ghost(page) == whole[len("children") :]
    page.keyboard.press("Control+ArrowRight")
    assert value(page).startswith(typed + "children played")
    assert page.page_errors == []


def test_a_right_to_left_ghost_follows_the_typed_text(page, server):
    open_editor(page, server)
    typed = HEBREW[: HEBREW.index("וקנינו")]
    page.keyboard.insert_text(typed)
    page.wait_for_function(GHOST_SETTLED)
    assert ghost(page).strip()
    geometry = """() => {
      const r = (id) => document.getElementById(id).getBoundingClientRect();
      const rects = (id) => [...document.getElementById(id).getClientRects()];
      return {before: rects('ghost-before').map(x => [x.left, x.right, x.top]),
              ghost: r('ghost'), layer: r('ghost-layer'),
              pad: parseFloat(getComputedStyle(document.getElementById('ghost-layer')).paddingRight)};
    }"""
    with_ghost = page.evaluate(geometry)
    # the same typed text without a ghost after it: it must not move when a ghost appears
    page.eval_on_selector("#ghost", "g => { g.textContent = ''; }")
    without = page.evaluate(geometry)
    assert with_ghost["before"] == without["before"], "the ghost moved the typed text"
    # a Hebrew paragraph runs from the right edge, and the ghost continues to its left
    typed_left = min(x[0] for x in with_ghost["before"])
    typed_right = max(x[1] for x in with_ghost["before"])
    assert typed_right == pytest.approx(with_ghost["layer"]["right"] - with_ghost["pad"], abs=2)
    assert with_ghost["ghost"]["right"] <= typed_left + 1
    # the textarea lays its text out by the same rules as the layer
    styles = page.evaluate(
        """() => ['editor', 'ghost-layer'].map(id => {
          const cs = getComputedStyle(document.getElementById(id));
          return [cs.unicodeBidi, cs.textAlign, cs.direction, cs.whiteSpace];
        })"""
    )
    assert styles[0] == styles[1]
    assert page.page_errors == []


def test_at_phone_width_nothing_scrolls_sideways_and_a_tap_accepts(phone, server):
    open_editor(phone, server)
    widths = phone.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], widths
    assert phone.is_hidden("#accept-btn")  # no ghost, no button
    typed = "In the summer the "
    whole = type_until_ghost(phone, typed)
    button = phone.locator("#accept-btn")
    assert button.is_visible()
    box = button.bounding_box()
    assert box["height"] >= 44 and box["width"] >= 44
    phone.tap("#accept-btn")
    assert value(phone) == typed + whole
    assert phone.evaluate("document.activeElement.id") == "editor"  # the keyboard stays up
    widths = phone.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], widths
    assert phone.page_errors == []
