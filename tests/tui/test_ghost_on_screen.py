"""Tab takes only the ghost text that is on screen: a ghost that wraps past the bottom edge is
scrolled into view when it fits, and only the rows in view are accepted when it does not.

A writer on the last visible row once saw "…the children" and Tab inserted "children played on
the beach while"; these tests read the rows Textual renders and check every inserted
character was among them."""

from __future__ import annotations

import re

from textual.app import App, ComposeResult

from tests.tui.conftest import TOKEN, stack, wait_until
from tui.app import EditorApp
from tui.widgets.editor import GhostEditor

LINES = "\n".join(f"Line {n} of the notes." for n in range(40)) + "\nIn the summer the "
GHOST = "children played on the beach while their parents watched from the dunes above them"


class EditorOnly(App):
    def __init__(self, text: str, **kwargs) -> None:
        super().__init__()
        self.text = text
        self.kwargs = kwargs

    def compose(self) -> ComposeResult:
        yield GhostEditor(self.text, id="editor", **self.kwargs)


def screen_words(editor: GhostEditor) -> str:
    """The editor's rows as drawn now, joined with single spaces."""
    rows = [editor.render_line(y).text for y in range(editor.size.height)]
    return " ".join(" ".join(rows).split())


def words(text: str) -> str:
    return " ".join(text.split())


async def show_at_end(pilot, editor: GhostEditor, ghost: str) -> str:
    editor.move_cursor(editor.document.end)
    editor.scroll_cursor_visible()
    await pilot.pause()
    editor.show_ghost(ghost)
    await pilot.pause()
    return screen_words(editor)


async def test_a_ghost_wrapping_past_the_bottom_is_scrolled_into_view_then_taken_whole():
    app = EditorOnly(LINES)
    async with app.run_test(size=(40, 10)) as pilot:
        editor = app.query_one(GhostEditor)
        editor.focus()
        screen = await show_at_end(pilot, editor, GHOST)
        assert screen.endswith(words(GHOST))  # every row of it in view
        await pilot.press("tab")
        assert editor.text == LINES + GHOST


async def test_a_ghost_taller_than_the_view_is_taken_only_as_far_as_it_shows():
    app = EditorOnly(LINES)
    ghost = " ".join([GHOST] * 4)
    async with app.run_test(size=(30, 6)) as pilot:
        editor = app.query_one(GhostEditor)
        editor.focus()
        screen = await show_at_end(pilot, editor, ghost)
        await pilot.press("tab")
        inserted = editor.text[len(LINES) :]
        assert inserted, "the rows in view are taken"
        assert len(inserted) < len(ghost)
        assert words(inserted) in screen
        assert re.fullmatch(r"[\w ]*\w", inserted), "cut at a word"
        assert ghost.startswith(inserted)
        assert editor.suggestion == ghost[len(inserted) :]  # the rest stays for the next Tab
        # the next Tab takes the next screenful, again only what shows
        screen = screen_words(editor)
        before = editor.text
        await pilot.press("tab")
        more = editor.text[len(before) :]
        assert more and words(more) in screen


async def test_a_ghost_scrolled_out_of_view_is_not_taken():
    app = EditorOnly(LINES)
    async with app.run_test(size=(40, 10)) as pilot:
        editor = app.query_one(GhostEditor)
        editor.focus()
        await show_at_end(pilot, editor, GHOST)
        editor.scroll_to(y=0, animate=False, immediate=True)  # the mouse wheel, say
        await pilot.pause()
        assert "children" not in screen_words(editor)
        await pilot.press("tab")
        assert editor.text == LINES  # nothing unseen went in
        assert editor.suggestion == GHOST  # and the view is back on it
        assert screen_words(editor).endswith(words(GHOST))


async def test_without_soft_wrap_the_ghost_is_cut_at_the_right_edge_and_tab_takes_that():
    app = EditorOnly("In the summer the ", soft_wrap=False)
    async with app.run_test(size=(40, 10)) as pilot:
        editor = app.query_one(GhostEditor)
        editor.focus()
        screen = await show_at_end(pilot, editor, GHOST)
        await pilot.press("tab")
        inserted = editor.text[len("In the summer the ") :]
        assert inserted and words(inserted) in screen and len(inserted) < len(GHOST)


async def test_in_the_editor_at_60x20_tab_on_the_last_row_takes_only_what_shows(tmp_path):
    """The whole app against a real server (the emulator's oracle continues PASSAGE): the
    cursor on the last visible row, the ghost wrapping below it."""
    typed = "The quick brown "
    path = tmp_path / "draft.md"
    path.write_text("\n".join(f"Line {n} of the notes." for n in range(40)) + "\n" + typed[:-1])
    async with stack() as (emu, srv):
        app = EditorApp(path, server_url=srv.ws_url, token=TOKEN)
        async with app.run_test(size=(60, 20)) as pilot:
            await wait_until(pilot, lambda: app.status.connection == "connected", what="ready")
            editor = app.editor
            editor.move_cursor(editor.document.end)
            await pilot.press("space")
            await wait_until(
                pilot, lambda: editor.suggestion.endswith("bank."), what="the whole ghost"
            )
            await pilot.pause()
            screen = screen_words(editor)
            before = editor.text
            await pilot.press("tab")
            inserted = editor.text[len(before) :]
            assert inserted and words(inserted) in screen
