"""The CodeMirror 6 extension and the ProseMirror plugin (web/) on their demo pages, end to end:
chromium, the real server on loopback, the real Anthropic SDK inside it talking to the emulator.

Both demos run the same tests: a ghost after a pause, Tab, Ctrl+Z taking an accept back in one
step, Ctrl+Right, Esc, type-through, no stale ghost under fast typing, a reconnect, and a review
finding applied."""

from __future__ import annotations

import contextlib
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from assistant.config import Settings
from assistant.emulator import EmulatorConfig, EmulatorThread
from tests.retraction_case import RETRACTED_LABELS, RETRACTED_SEED, RETRACTED_TEXT

TOKEN = "demo-test-token"
EDITORS = ("codemirror", "prosemirror")
GHOST_SELECTOR = {"codemirror": ".cm-assistant-ghost", "prosemirror": ".assistant-ghost"}
CONTENT_SELECTOR = {"codemirror": ".cm-content", "prosemirror": ".ProseMirror"}

# The document as the server sees it, read from the editor's own state.
DOC_TEXT = {
    "codemirror": "() => window.assistantView.state.doc.toString()",
    "prosemirror": """() => {
      const doc = window.assistantView.state.doc;
      const leaf = (n) => (n.type.name === 'hard_break' ? '\\n' : '\\ufffc');
      return doc.textBetween(0, doc.content.size, '\\n\\n', leaf);
    }""",
}

# Replace the whole document with `text` (paragraphs split on newlines in ProseMirror).
SET_TEXT = {
    "codemirror": """(text) => {
      const v = window.assistantView;
      v.dispatch({changes: {from: 0, to: v.state.doc.length, insert: text},
                  selection: {anchor: text.length}});
    }""",
    "prosemirror": """(text) => {
      const v = window.assistantView;
      const schema = v.state.schema;
      const paras = text.split('\\n').map(
        (line) => schema.node('paragraph', null, line ? [schema.text(line)] : []));
      v.dispatch(v.state.tr.replaceWith(0, v.state.doc.content.size, paras));
    }""",
}


@contextlib.contextmanager
def emulated_server(config: EmulatorConfig) -> Iterator[object]:
    """The real server on loopback, the real SDK inside it talking to the emulator."""
    from server.runner import ServerThread

    with EmulatorThread(config) as emu:
        settings = Settings(
            api_key="test-key", base_url=emu.base_url, token=TOKEN, offline="statistical"
        )
        with ServerThread(settings) as srv:
            yield srv


@pytest.fixture(scope="module")
def server() -> Iterator[object]:
    with emulated_server(EmulatorConfig(profile="fast", seed=0)) as srv:
        yield srv


@pytest.fixture(scope="module")
def retracting_server() -> Iterator[object]:
    """A server whose review shows a finding, then withdraws it (tests/retraction_case.py)."""
    config = EmulatorConfig(profile="fast", seed=RETRACTED_SEED, review_labels=RETRACTED_LABELS)
    with emulated_server(config) as srv:
        yield srv


@pytest.fixture(params=EDITORS)
def demo(request, page, server):
    """The demo page for one editor, connected and focused; returns a driver."""
    return Demo(page, server, request.param)


class Demo:
    def __init__(self, page, server, editor: str) -> None:
        self.page = page
        self.server = server
        self.editor = editor
        self.ghost_selector = GHOST_SELECTOR[editor]
        page.goto(f"{server.http_url}/demo/{editor}#token={TOKEN}")
        page.wait_for_selector("#conn[data-state=connected]")
        page.click(CONTENT_SELECTOR[editor])

    def text(self) -> str:
        return self.page.evaluate(DOC_TEXT[self.editor])

    def set_text(self, text: str) -> None:
        self.page.evaluate(SET_TEXT[self.editor], text)

    def ghost(self) -> str:
        return self.page.evaluate(
            "(sel) => [...document.querySelectorAll(sel)].map((e) => e.textContent).join('')",
            self.ghost_selector,
        )

    def wait_for_final_ghost(self) -> str:
        """The last answer, final, is what the editor shows."""
        self.page.wait_for_function(
            """(sel) => {
              const log = window.assistantLog;
              const el = document.querySelector(sel);
              return log.length > 0 && log[log.length - 1].final && el !== null
                && el.textContent.length > 0 && el.textContent === log[log.length - 1].text;
            }""",
            arg=self.ghost_selector,
        )
        return self.ghost()

    def type_and_wait_for_ghost(self, text: str, delay: float = 15) -> str:
        self.page.keyboard.type(text, delay=delay)
        return self.wait_for_final_ghost()


def first_word(text: str) -> str:
    stripped = text.lstrip()
    word = stripped.split()[0] if stripped.split() else ""
    return text[: len(text) - len(stripped) + len(word)]


def fetch(url: str) -> tuple[int, str, str]:
    """(status, content type, body) of a GET."""
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.headers["content-type"], r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["content-type"], e.read().decode()


def test_the_server_serves_both_demos_and_no_other(server):
    for editor in EDITORS:
        status, _, body = fetch(f"{server.http_url}/demo/{editor}")
        assert status == 200 and f"/static/bundles/{editor}.js" in body
        status, ctype, _ = fetch(f"{server.http_url}/static/bundles/{editor}.js")
        assert status == 200 and "javascript" in ctype
    assert fetch(f"{server.http_url}/demo/..%2Findex")[0] == 404
    assert fetch(f"{server.http_url}/demo/nothing")[0] == 404


def test_type_pause_tab_accepts_and_ctrl_z_takes_it_back_in_one_step(demo):
    page = demo.page
    assert "token" not in page.url
    typed = "Thanks for the quick "
    suggestion = demo.type_and_wait_for_ghost(typed)
    assert suggestion.strip()
    assert demo.text() == typed  # a ghost is drawn, never in the document
    page.keyboard.press("Tab")
    assert demo.text() == typed + suggestion
    page.keyboard.press("Control+z")
    assert demo.text() == typed
    page.keyboard.press("Control+z")
    assert demo.text() == ""  # the typing was its own step
    # typing right after an accept is a step of its own too
    suggestion = demo.type_and_wait_for_ghost(typed)
    page.keyboard.press("Tab")
    page.keyboard.type(" ok", delay=15)
    assert demo.text() == typed + suggestion + " ok"
    page.keyboard.press("Control+z")
    assert demo.text() == typed + suggestion
    page.keyboard.press("Control+z")
    assert demo.text() == typed
    assert page.page_errors == []


def test_ctrl_right_accepts_one_word(demo):
    page = demo.page
    typed = "Please send me the "
    suggestion = demo.type_and_wait_for_ghost(typed)
    word = first_word(suggestion)
    assert word and word != suggestion or len(suggestion.split()) == 1
    page.keyboard.press("Control+ArrowRight")
    assert demo.text() == typed + word
    page.keyboard.press("Control+z")
    assert demo.text() == typed
    assert page.page_errors == []


def test_escape_dismisses_and_tab_without_a_ghost_inserts_nothing(demo):
    page = demo.page
    typed = "The meeting is moved to "
    assert demo.type_and_wait_for_ghost(typed)
    page.keyboard.press("Escape")
    assert demo.ghost() == ""
    shown = page.evaluate("window.assistantLog.length")
    page.keyboard.press("Tab")
    assert demo.text() == typed
    assert demo.ghost() == ""
    assert page.evaluate("window.assistantLog.length") == shown
    assert page.page_errors == []


def test_typing_the_ghost_uses_it_up(demo):
    page = demo.page
    typed = "I will review the "
    suggestion = demo.type_and_wait_for_ghost(typed)
    # Every change of the ghost on screen, with the document at that moment.
    page.evaluate(
        """([sel, docText]) => {
          window.__ghosts = [];
          const read = new Function('return (' + docText + ')()');
          new MutationObserver(() => {
            const el = document.querySelector(sel);
            window.__ghosts.push([read(), el ? el.textContent : '']);
          }).observe(document.getElementById('editor'),
                     {subtree: true, childList: true, characterData: true});
        }""",
        [demo.ghost_selector, DOC_TEXT[demo.editor]],
    )
    page.keyboard.type(suggestion[0])
    page.wait_for_function(
        "(t) => window.__ghosts.some(([doc]) => doc === t)", arg=typed + suggestion[0]
    )
    seen = page.evaluate("window.__ghosts")
    first = next(g for doc, g in seen if doc == typed + suggestion[0])
    # the same update that took the key showed the rest of the ghost, before any new answer
    assert first == suggestion[1:]
    page.keyboard.press("Tab")
    assert demo.text().startswith(typed + suggestion[0])
    assert page.page_errors == []


def test_fast_typing_never_shows_a_stale_suggestion(demo):
    page = demo.page
    sentence = (
        "Thanks for the update on the launch plan. I think we should move the review "
        "to Thursday so that the whole team can join, and send the notes on Friday. "
    )
    page.keyboard.type(sentence, delay=30)
    demo.wait_for_final_ghost()
    shown = page.evaluate("window.assistantLog")
    assert shown
    for s in shown:
        # shown only while it answered the latest request, for the text then in the editor
        assert s["id"] == s["latest"], s
        assert s["requestPrefix"] == s["before"], s
    assert any(s["before"] != sentence for s in shown)  # the race really ran
    assert shown[-1]["before"] == sentence == demo.text()
    ids = [s["id"] for s in shown]
    assert ids == sorted(ids)
    assert page.page_errors == []


def test_a_reconnect_reopens_the_document_and_suggests_again(demo, server):
    page = demo.page
    typed = "We should meet on "
    demo.type_and_wait_for_ghost(typed)
    page.evaluate(
        """() => {
          window.__states = [];
          window.assistantClient.addEventListener('state', (e) => window.__states.push(e.detail.state));
        }"""
    )

    async def kick() -> None:
        for conn in list(server.hub.connections):
            await conn.shutdown(1012)

    server.call(kick())
    page.wait_for_function("() => window.__states.includes('reconnecting')")
    page.wait_for_function("() => window.__states[window.__states.length - 1] === 'connected'")
    shown = page.evaluate("window.assistantLog.length")
    page.keyboard.type("Thu", delay=15)
    suggestion = demo.wait_for_final_ghost()
    assert page.evaluate("window.assistantLog.length") > shown
    page.keyboard.press("Tab")
    assert demo.text() == typed + "Thu" + suggestion

    async def server_copies():
        return [
            c.documents.document.text
            for c in server.hub.connections
            if c.documents.document is not None
        ]

    # the new connection got the whole document (open), then the edits
    page.keyboard.type(" x", delay=15)
    demo.wait_for_final_ghost()
    assert demo.text() in server.call(server_copies())
    assert page.page_errors == []


REVIEWED = "I saw teh cat yesterday and it was happy.\nAlot of people came to the party."


def apply_finding(demo, quote: str) -> None:
    page = demo.page
    if demo.editor == "codemirror":
        # the lint tooltip of the diagnostic over `quote`, and its Apply action
        page.hover(f".cm-lintRange >> text={quote}")
        page.click(".cm-tooltip-lint .cm-diagnosticAction")
    else:
        page.click(f".finding:has(del:text-is('{quote}')) button.apply")


def test_a_review_finding_is_applied_as_one_undo_step(demo):
    page = demo.page
    demo.set_text(REVIEWED)
    before = demo.text()
    page.click("#review-btn")
    page.wait_for_function(
        "() => document.getElementById('review-status').dataset.ended === 'true'"
    )
    assert "finding" in page.text_content("#review-status")
    apply_finding(demo, "teh")
    assert demo.text() == before.replace("teh", "the", 1)
    page.click(CONTENT_SELECTOR[demo.editor])
    page.keyboard.press("Control+z")
    assert demo.text() == before
    assert page.page_errors == []


def test_a_finding_follows_edits_and_an_edited_one_cannot_be_applied(demo):
    """Findings in both paragraphs: one moved by an edit before it applies at its new place,
    one whose quoted text was edited is withdrawn (its fix would now be wrong)."""
    page = demo.page
    demo.set_text(REVIEWED)
    page.click("#review-btn")
    page.wait_for_function(
        "() => document.getElementById('review-status').dataset.ended === 'true'"
    )
    # an edit before both findings, then one inside "teh"
    page.evaluate(
        """(editor) => {
          const v = window.assistantView;
          if (editor === 'codemirror') {
            v.dispatch({changes: {from: 0, insert: 'Hello. '}, userEvent: 'input.type'});
            const i = v.state.doc.toString().indexOf('teh');
            v.dispatch({changes: {from: i + 1, insert: 'x'}, userEvent: 'input.type'});
          } else {
            v.dispatch(v.state.tr.insertText('Hello. ', 1));
            let at = null;
            v.state.doc.descendants((n, pos) => {
              if (n.isText && at === null && n.text.includes('teh')) at = pos + n.text.indexOf('teh');
            });
            v.dispatch(v.state.tr.insertText('x', at + 1));
          }
        }""",
        demo.editor,
    )
    before = demo.text()
    assert "txeh" in before and before.startswith("Hello. ")
    if demo.editor == "codemirror":
        assert page.locator(".cm-lintRange >> text=txeh").count() == 0
    else:
        assert page.locator(".finding:has(del:text-is('teh'))").count() == 0
    apply_finding(demo, "Alot")  # in the second paragraph
    assert demo.text() == before.replace("Alot", "A lot")
    assert page.page_errors == []


def test_no_ghost_during_an_ime_composition(demo):
    page = demo.page
    typed = "Thanks for the quick "
    suggestion = demo.type_and_wait_for_ghost(typed)
    composed = suggestion[:2]  # the ghost's own next characters: typing through would keep it
    cdp = page.context.new_cdp_session(page)
    latest = page.evaluate("window.assistantClient.latestSuggestId")
    shown = page.evaluate("window.assistantLog.length")
    # a composition starts: the ghost goes at once, and composing asks for nothing
    cdp.send(
        "Input.imeSetComposition", {"text": composed[0], "selectionStart": 1, "selectionEnd": 1}
    )
    assert page.evaluate("window.assistantView.composing") is True
    page.wait_for_function("(sel) => document.querySelector(sel) === null", arg=demo.ghost_selector)
    cdp.send("Input.imeSetComposition", {"text": composed, "selectionStart": 2, "selectionEnd": 2})
    assert page.evaluate("window.assistantClient.latestSuggestId") == latest
    assert demo.ghost() == ""
    assert page.evaluate("window.assistantLog.length") == shown
    # committed: the writer gets a suggestion for the composed text
    cdp.send("Input.insertText", {"text": composed})
    page.wait_for_function(
        "(t) => window.assistantLog.some((s) => s.before === t)", arg=typed + composed
    )
    assert demo.text() == typed + composed
    assert page.page_errors == []


@pytest.mark.parametrize("editor", EDITORS)
def test_a_finding_the_review_withdraws_is_gone_and_the_other_applies(
    page, retracting_server, editor
):
    demo = Demo(page, retracting_server, editor)
    demo.set_text(RETRACTED_TEXT.rstrip("\n"))
    page.evaluate(
        """() => {
          window.__events = [];
          const c = window.assistantClient;
          c.addEventListener('finding', (e) => window.__events.push(['finding', e.detail.quote]));
          c.addEventListener('finding-retracted', (e) => window.__events.push(['retracted', e.detail.index]));
        }"""
    )
    page.click("#review-btn")
    page.wait_for_function(
        "() => document.getElementById('review-status').dataset.ended === 'true'"
    )
    events = page.evaluate("window.__events")
    assert ["finding", "Monday. The budjet"] in events and ["retracted", 0] in events, events
    quotes = page.evaluate("window.assistantFindings().map((f) => f.quote)")
    assert "Monday. The budjet" not in quotes and "budjet" in quotes, quotes
    before = demo.text()
    apply_finding(demo, "budjet")
    assert demo.text() == before.replace("budjet", "budget")
    assert page.page_errors == []


def test_across_paragraphs_and_marks_the_server_sees_the_text_and_tab_lands_in_place(demo, server):
    """Bold text (separate text nodes in ProseMirror), a new paragraph and a line break: the
    server's copy is the editor's text (paragraphs joined by a blank line in ProseMirror) and
    the accepted ghost lands at the cursor, in the last paragraph."""
    page = demo.page
    page.keyboard.type("We met on ", delay=15)
    page.keyboard.press("Control+b")
    page.keyboard.type("Monday", delay=15)
    page.keyboard.press("Control+b")
    page.keyboard.type(".", delay=15)
    page.keyboard.press("Enter")
    page.keyboard.type("The plan", delay=15)
    page.keyboard.press("Shift+Enter")
    suggestion = demo.type_and_wait_for_ghost("is to ")
    typed = demo.text()
    separator = "\n\n" if demo.editor == "prosemirror" else "\n"
    assert typed == f"We met on Monday.{separator}The plan\nis to "
    assert page.evaluate("window.assistantLog.at(-1).requestPrefix") == typed

    async def server_copies():
        return [
            c.documents.document.text
            for c in server.hub.connections
            if c.documents.document is not None
        ]

    assert typed in server.call(server_copies())
    page.keyboard.press("Tab")
    assert demo.text() == typed + suggestion
    if demo.editor == "prosemirror":
        assert page.evaluate("window.assistantView.state.doc.childCount") == 2
        assert page.locator(".ProseMirror strong").text_content() == "Monday"
    page.keyboard.press("Control+z")
    assert demo.text() == typed
    assert page.page_errors == []


HEAD = {
    "codemirror": "window.assistantView.state.selection.main.head",
    "prosemirror": "window.assistantView.state.selection.head",
}


def test_a_cursor_move_clears_the_ghost_and_stops_its_request(demo):
    page = demo.page
    typed = "Please send me the "
    assert demo.type_and_wait_for_ghost(typed)
    head = page.evaluate(HEAD[demo.editor])
    page.keyboard.press("ArrowLeft")
    # ProseMirror leaves arrow keys to the browser and reads the caret on selectionchange:
    # once the editor has the new caret, the ghost is gone in the same update
    page.wait_for_function(f"() => {HEAD[demo.editor]} !== {head}")
    assert demo.ghost() == ""
    # a key typed here asks for this place; moving away at once stops that request, so
    # nothing for it can surface (the client no longer listens for its id)
    page.keyboard.type("x")
    page.keyboard.press("ArrowLeft")
    page.wait_for_function(f"() => {HEAD[demo.editor]} === {head - 1}")
    latest = page.evaluate("window.assistantClient.latestSuggestId")
    assert page.evaluate(f"window.assistantClient._isLive({latest})") is False
    assert demo.ghost() == ""
    page.keyboard.press("End")
    page.wait_for_function(f"() => {HEAD[demo.editor]} === {head + 1}")
    suggestion = demo.type_and_wait_for_ghost("y")
    assert suggestion and demo.text() == typed[:-1] + "x " + "y"
    assert page.page_errors == []


@pytest.mark.parametrize("editor", EDITORS)
def test_a_wrong_token_is_refused_and_the_editor_still_edits(page, server, editor):
    page.goto(f"{server.http_url}/demo/{editor}#token=wrong")
    page.wait_for_selector("#conn[data-state=refused]")
    page.click(CONTENT_SELECTOR[editor])
    page.keyboard.type("Still my text. ", delay=10)
    page.keyboard.press("Tab")
    assert page.evaluate(DOC_TEXT[editor]) == "Still my text. "
    assert page.page_errors == []


# Type one character through the editor, then answer its request at once with `text` (as the
# client surfaces a server's final answer): a ghost whose content the test chooses.
TYPE_AND_ANSWER = {
    "codemirror": """(text) => {
      const v = window.assistantView;
      const at = v.state.selection.main.head;
      v.dispatch({changes: {from: at, insert: 'x'}, selection: {anchor: at + 1},
                  userEvent: 'input.type'});""",
    "prosemirror": """(text) => {
      const v = window.assistantView;
      v.dispatch(v.state.tr.insertText('x'));""",
}
ANSWER = """
      const c = window.assistantClient;
      c.dispatchEvent(new CustomEvent('suggestion', {detail: {
        id: c.latestSuggestId, text, final: true, source: 'model'}}));
    }"""


def test_a_ghost_with_a_paragraph_break_is_accepted_as_one_step(demo):
    page = demo.page
    demo.type_and_wait_for_ghost("The notes are ready ")
    page.evaluate(
        TYPE_AND_ANSWER[demo.editor] + ANSWER, "for Friday.\n\nNext, the plan\nand the notes"
    )
    assert demo.ghost() == "for Friday.\n\nNext, the plan\nand the notes"
    typed = demo.text()
    assert typed == "The notes are ready x"
    page.keyboard.press("Tab")
    assert demo.text() == typed + "for Friday.\n\nNext, the plan\nand the notes"
    if demo.editor == "prosemirror":  # a new paragraph, and a line break in it
        assert page.evaluate("window.assistantView.state.doc.childCount") == 2
        assert page.locator(".ProseMirror p:nth-child(2) br").count() == 1
    page.keyboard.press("Control+z")
    assert demo.text() == typed
    assert page.page_errors == []
