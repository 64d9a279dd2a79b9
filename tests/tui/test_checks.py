"""Corrections as you type in the terminal editor: a finished sentence's misspelling is
underlined, F8 applies the correction next to the cursor as one undoable edit, and a mark whose
text was edited is dropped, never applied."""

from __future__ import annotations

from assistant.config import Settings
from server.runner import ServerHandle
from tests.tui.conftest import TOKEN, wait_until
from tui.app import EditorApp
from tui.checks import CheckMarks
from tui.widgets.editor import GhostEditor


async def _type(pilot, text: str) -> None:
    for ch in text:
        await pilot.press("space" if ch == " " else ch)


async def test_f8_applies_the_underlined_correction_as_one_undo_step(tmp_path):
    path = tmp_path / "draft.md"
    path.write_text("")
    async with ServerHandle(Settings(token=TOKEN, offline="statistical")) as srv:
        app = EditorApp(path, server_url=srv.ws_url, token=TOKEN)
        async with app.run_test(size=(100, 20)) as pilot:
            await wait_until(pilot, lambda: app.status.connection.startswith("connected"))
            await _type(pilot, "We definately agree. Next")
            await wait_until(pilot, lambda: app.checks.marks, what="a check mark")
            (mark,) = app.checks.marks
            assert (mark.quote, mark.replacement) == ("definately", "definitely")
            assert app.editor._highlights[0][-1] == (3, 13, GhostEditor.MARK)  # underlined
            assert GhostEditor.MARK in app.editor._theme.syntax_styles
            await pilot.press("f8")  # the cursor is at the end of the line: the nearest mark
            assert app.editor.text == "We definitely agree. Next"
            assert app.checks.marks == []
            await pilot.press("ctrl+z")
            assert app.editor.text == "We definately agree. Next"  # one undo step


def test_an_edited_mark_is_dropped_and_marks_after_an_edit_move_with_it():
    marks = CheckMarks()
    text = "Teh cat. We definately agree."
    frame = {
        "sentence": {"start": 9, "end": 29},
        "findings": [{"start": 12, "end": 22, "quote": "definately", "replacement": "definitely"}],
    }
    marks.on_check(frame, text)
    marks.edited("The cat. " + text[9:])  # an edit before it: the mark stays on its word
    assert [(m.start, m.quote) for m in marks.marks] == [(12, "definately")]
    marks.edited("The big cat. " + text[9:])
    assert [(m.start, m.quote) for m in marks.marks] == [(16, "definately")]
    marks.edited("The big cat. We definitly agree.")  # the writer fixed it by hand
    assert marks.marks == []
    assert marks.nearest(16) is None
    marks.on_check({"sentence": {}, "findings": "junk"}, text)  # malformed: ignored
