"""The terminal editor's rough edges found by a new user (issue 22): the review panel closes,
narrow terminals keep the text wide, the status bar never hides ``modified``, Esc typed fast
before a letter still dismisses, a resize keeps the cursor in view, Ctrl+Home/End, the quit
dialog fits at 60 columns, a file in a missing directory is refused and save-as rescues a text
whose file cannot be written."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from pathlib import Path

from textual.geometry import Region
from textual.widgets import Button, Input

from assistant.cli import main as cli_main
from assistant.suggest.usefulness import Usefulness
from tests.tui.conftest import TOKEN, stack, wait_until
from tests.tui.test_ghost_on_screen import EditorOnly
from tui import files
from tui.app import EditorApp
from tui.widgets.choice import ChoiceScreen
from tui.widgets.editor import GhostEditor
from tui.widgets.save_as import SaveAsScreen

DOC = "I recieve teh letter today.\nWe will definately reply.\n"
LONG = "\n".join(f"Paragraph {n} goes on about the harbour and the boats." for n in range(80))


def row_text(widget) -> str:
    """What the widget draws on its first row."""
    width = widget.size.width
    return widget.render_lines(Region(0, 0, width, 1))[0].text


@contextlib.asynccontextmanager
async def editing(path: Path, size: tuple[int, int], text: str | None = DOC):
    """The editor on ``path`` (holding ``text``) against a real server, connected:
    yields (emulator, app, pilot)."""
    if text is not None:
        await asyncio.to_thread(path.write_text, text)
    async with stack() as (emu, srv):
        app = EditorApp(path, server_url=srv.ws_url, token=TOKEN)
        async with app.run_test(size=size) as pilot:
            await wait_until(pilot, lambda: app.status.connection == "connected", what="connected")
            yield emu, app, pilot


async def review(pilot, app: EditorApp) -> None:
    await pilot.press("ctrl+r")
    await wait_until(pilot, lambda: app.review_id is None, what="review_done")
    await pilot.pause()


async def test_the_review_panel_closes_and_the_text_gets_its_width_back(tmp_path):
    async with editing(tmp_path / "draft.md", (100, 30), DOC) as (
        emu,
        app,
        pilot,
    ):
        full = app.editor.size.width
        await review(pilot, app)
        assert app.panel.display and app.editor.size.width < full
        await pilot.press("f3")
        await pilot.pause()
        assert not app.panel.display
        assert app.editor.size.width == full
        assert app.editor.has_focus
        await pilot.press("f3")  # and back, findings still listed
        await pilot.pause()
        assert app.panel.display and app.panel.rows()


async def test_at_60_columns_the_panel_goes_under_the_text(tmp_path):
    async with editing(tmp_path / "draft.md", (60, 20), DOC) as (
        emu,
        app,
        pilot,
    ):
        await review(pilot, app)
        assert app.panel.display
        assert app.editor.size.width >= 50  # was 7 beside a 52-column panel
        assert app.editor.size.height >= 5
        assert app.panel.region.y >= app.editor.region.bottom  # under it
        await pilot.resize_terminal(120, 30)  # wide again: beside it
        await pilot.pause()
        assert app.panel.region.x >= app.editor.region.right


async def test_the_status_bar_always_shows_modified_and_the_cost(tmp_path):
    async with editing(tmp_path / "draft.md", (100, 24), DOC) as (
        emu,
        app,
        pilot,
    ):
        status = app.status
        status.source, status.model, status.latency_ms = "model", "claude-haiku-5-5", 412
        status.note = "rate limited by Anthropic, offline answering"
        status.record_usage({"input_tokens": 123_456, "output_tokens": 7_890}, 1.2345)
        status.record_usefulness(
            Usefulness(shown=120, accepted=87, accepted_chars=13_000, accept_keys=87)
        )
        await pilot.press("x")  # an unsaved change
        await pilot.pause()
        row = row_text(status)
        assert "modified" in row
        assert "$1.2345" in row and "131,346 tok" in row
        for width in (60, 40):
            await pilot.resize_terminal(width, 24)
            await pilot.pause()
            assert "modified" in row_text(status)


async def test_escape_typed_fast_before_a_letter_still_dismisses_the_ghost():
    app = EditorOnly("The ")
    async with app.run_test(size=(60, 10)) as pilot:
        editor = app.query_one(GhostEditor)
        editor.focus()
        editor.move_cursor(editor.document.end)
        editor.show_ghost("garden was full of roses")
        await pilot.pause()
        # The terminal sent ESC g; Textual's parser reads that as Alt+G.
        await pilot.press("alt+g")
        assert editor.suggestion == ""  # dismissed, not typed through
        assert editor.text == "The g"
        await pilot.press("alt+ctrl+g")  # not a character: nothing inserted
        assert editor.text == "The g"
        editor.show_ghost("Ardens were full of roses")  # typed through, were it not Esc
        await pilot.pause()
        await pilot.press("alt+shift+a")  # ESC A
        assert editor.suggestion == ""
        assert editor.text == "The gA"


async def test_a_resize_keeps_the_cursor_in_view_and_ctrl_home_end_move_through_the_text():
    app = EditorOnly(LONG)
    async with app.run_test(size=(100, 30)) as pilot:
        editor = app.query_one(GhostEditor)
        editor.focus()
        await pilot.press("ctrl+end")
        assert editor.cursor_location == editor.document.end

        def cursor_in_view() -> bool:
            y = editor.wrapped_document.location_to_offset(editor.cursor_location).y
            top = editor.scroll_offset.y
            return top <= y < top + editor.scrollable_content_region.height

        await pilot.pause()
        assert cursor_in_view()
        await pilot.resize_terminal(60, 20)  # every line wraps: the rows below double
        await wait_until(pilot, cursor_in_view, what="the cursor back in view", limit_s=5)
        await pilot.resize_terminal(120, 40)
        await wait_until(pilot, cursor_in_view, what="the cursor back in view", limit_s=5)
        await pilot.press("ctrl+home")
        assert editor.cursor_location == (0, 0)
        await pilot.pause()
        assert editor.scroll_offset.y == 0


async def test_the_quit_dialog_fits_at_60_columns(tmp_path):
    async with editing(tmp_path / "draft.md", (60, 20), DOC) as (
        emu,
        app,
        pilot,
    ):
        await pilot.press("x", "ctrl+q")
        await wait_until(pilot, lambda: isinstance(app.screen, ChoiceScreen), what="dialog")
        await pilot.pause()
        screen = app.screen.region
        assert screen.contains_region(app.screen.query_one("#choice-box").region)
        buttons = list(app.screen.query(Button))
        assert len(buttons) == 3
        for button in buttons:
            assert screen.contains_region(button.region), button.label
            assert button.content_region.width >= len(str(button.label)), button.label
        await pilot.press("escape")
        assert app.editor.text.startswith("x")


def test_a_file_in_a_missing_directory_is_refused_up_front(tmp_path, capsys):
    missing = tmp_path / "no-such-dir" / "draft.md"
    try:
        files.open_file(missing)
    except FileNotFoundError as exc:
        assert "no-such-dir" in str(exc) and "does not exist" in str(exc)
    else:
        raise AssertionError("opened a file whose directory does not exist")
    assert cli_main(["edit", str(missing)]) == 2  # before any server starts
    err = capsys.readouterr().err
    assert "does not exist" in err and "Traceback" not in err
    files.open_file(tmp_path / "new.md")  # a new file in a real directory still opens


async def test_save_as_rescues_a_text_whose_directory_went_away(tmp_path):
    folder = tmp_path / "gone"
    folder.mkdir()
    elsewhere = tmp_path / "kept.md"
    async with editing(folder / "draft.md", (80, 24), "Draft") as (emu, app, pilot):
        app.editor.move_cursor(app.editor.document.end)
        await pilot.press(*" and more")
        shutil.rmtree(folder)
        await pilot.press("ctrl+s")  # fails: save-as is offered at once
        await wait_until(pilot, lambda: isinstance(app.screen, SaveAsScreen), what="save as")
        box = app.screen.query_one(Input)
        box.value = str(tmp_path / "missing-too" / "x.md")
        await pilot.press("enter")
        assert isinstance(app.screen, SaveAsScreen)  # refused: that directory is missing
        box.value = str(elsewhere)
        await pilot.press("enter")
        await wait_until(pilot, lambda: not isinstance(app.screen, SaveAsScreen), what="saved")
        assert elsewhere.read_text() == "Draft and more"
        assert app.path == elsewhere and not app.dirty
        await pilot.press("f4")  # and on demand
        await wait_until(pilot, lambda: isinstance(app.screen, SaveAsScreen), what="save as")
        await pilot.press("escape")
        assert app.editor.text == "Draft and more"


async def test_no_ghost_is_offered_with_words_after_the_cursor_on_its_line(tmp_path):
    """As docs/editor.md says: a Markdown paragraph is one line, so inside one there is no
    ghost (and no model call); at the end of the line there is."""
    async with editing(
        tmp_path / "draft.md", (100, 24), "The quick brown fox near the river bank.\n"
    ) as (
        emu,
        app,
        pilot,
    ):
        app.editor.move_cursor((0, len("The quick brown ")))

        def answered() -> bool:
            done = app.last_done
            return done is not None and done.get("id") == app.suggest_id

        def calls() -> int:
            return len([r for r in emu.requests if r.path == "/v1/messages"])

        before = calls()
        await pilot.press("a", "space")
        await wait_until(pilot, answered, what="the answer to the suggest")
        assert app.last_done.get("text") in ("", None)
        assert app.editor.suggestion == ""
        assert calls() == before  # the model was not asked
        app.editor.move_cursor((0, len(app.editor.document.get_line(0))))
        await pilot.press("space", "T", "h", "e", "space")
        await wait_until(pilot, lambda: app.editor.suggestion, what="a ghost at the end")
        assert calls() > before
