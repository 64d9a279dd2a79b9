"""Ghost text in the terminal editor, driven through Textual's pilot against a real server that
is backed by the Anthropic emulator (the real SDK on both ends of the wire)."""

from __future__ import annotations

import pytest
from textual.app import App

from tests.tui.conftest import TOKEN, messages_requests, stack, wait_until
from tui.app import EditorApp
from tui.widgets.editor import GhostEditor

TYPED = "The quick brown "
GHOST = "fox jumps over the lazy dog near the river bank."


def accepted_chars(srv) -> float:
    value = srv.hub.metrics.registry.get_sample_value("assistant_accepted_chars_total")
    return value or 0.0


async def start(pilot, app: EditorApp) -> None:
    await wait_until(pilot, lambda: app.status.connection == "connected", what="connected")


async def type_and_wait_for_ghost(pilot, app: EditorApp) -> str:
    """The document holds TYPED but its last space; type that space at the end."""
    editor = app.editor
    editor.move_cursor(editor.document.end)
    await pilot.press("space")
    assert editor.text == TYPED
    return await wait_until(pilot, lambda: editor.suggestion, what="a ghost suggestion")


async def settle(pilot, app: EditorApp) -> None:
    """Wait until the latest suggest has had its answer (the server has nothing in flight)."""
    await wait_until(
        pilot,
        lambda: (
            app.suggest_id is not None
            and app.last_done is not None
            and app.last_done.get("id") == app.suggest_id
        ),
        what="the answer to the latest suggest",
    )


@pytest.fixture
def doc(tmp_path):
    path = tmp_path / "draft.md"
    path.write_text(TYPED.rstrip())
    return path


async def test_ghost_text_appears_after_typing_and_the_status_bar_says_where_from(doc):
    async with stack() as (emu, srv):
        app = EditorApp(doc, server_url=srv.ws_url, token=TOKEN)
        async with app.run_test(size=(100, 24)) as pilot:
            await start(pilot, app)
            ghost = await type_and_wait_for_ghost(pilot, app)
            await settle(pilot, app)
            assert GHOST.startswith(app.editor.suggestion)
            assert ghost
            assert app.editor.text == TYPED  # the ghost is not part of the text
            assert app.status.source in ("model", "typethrough", "cache")
            assert app.status.model == "claude-haiku-5-5"
            assert app.status.latency_ms is not None
            assert app.status.cost_usd > 0 and app.status.tokens > 0
            assert messages_requests(emu)


async def test_tab_accepts_the_whole_suggestion_and_reports_it(doc):
    async with stack() as (emu, srv):
        app = EditorApp(doc, server_url=srv.ws_url, token=TOKEN)
        async with app.run_test(size=(100, 24)) as pilot:
            await start(pilot, app)
            await type_and_wait_for_ghost(pilot, app)
            await settle(pilot, app)
            ghost = app.editor.suggestion
            await pilot.press("tab")
            assert app.editor.text == TYPED + ghost
            assert app.editor.cursor_location == (0, len(TYPED + ghost))
            await wait_until(pilot, lambda: accepted_chars(srv) == len(ghost), what="accept")


async def test_tab_without_a_suggestion_indents(doc):
    async with stack() as (emu, srv):
        app = EditorApp(doc, server_url=srv.ws_url, token=TOKEN)
        async with app.run_test(size=(100, 24)) as pilot:
            await start(pilot, app)
            assert app.editor.suggestion == ""
            await pilot.press("tab")
            assert app.editor.text.startswith(" ")
            assert app.editor.text.endswith(TYPED.rstrip())


async def test_ctrl_right_accepts_one_word(doc):
    async with stack() as (emu, srv):
        app = EditorApp(doc, server_url=srv.ws_url, token=TOKEN)
        async with app.run_test(size=(100, 24)) as pilot:
            await start(pilot, app)
            await type_and_wait_for_ghost(pilot, app)
            await settle(pilot, app)
            assert app.editor.suggestion.startswith("fox jumps")
            await pilot.press("ctrl+right")
            assert app.editor.text == TYPED + "fox"
            assert app.editor.suggestion.startswith(" jumps")
            await pilot.press("ctrl+right")
            assert app.editor.text == TYPED + "fox jumps"


async def test_escape_dismisses_the_ghost(doc):
    async with stack() as (emu, srv):
        app = EditorApp(doc, server_url=srv.ws_url, token=TOKEN)
        async with app.run_test(size=(100, 24)) as pilot:
            await start(pilot, app)
            await type_and_wait_for_ghost(pilot, app)
            await settle(pilot, app)
            await pilot.press("escape")
            assert app.editor.suggestion == ""
            assert app.editor.text == TYPED
            assert app.editor.has_focus  # Esc does not wander off to another widget
            await pilot.pause(0.1)
            assert app.editor.suggestion == ""  # and nothing brings it back by itself


async def test_moving_the_cursor_clears_the_ghost(doc):
    async with stack() as (emu, srv):
        app = EditorApp(doc, server_url=srv.ws_url, token=TOKEN)
        async with app.run_test(size=(100, 24)) as pilot:
            await start(pilot, app)
            await type_and_wait_for_ghost(pilot, app)
            await settle(pilot, app)
            await pilot.press("left")
            assert app.editor.suggestion == ""
            assert app.editor.text == TYPED
            assert app.suggest_id is None  # any late frame for it is ignored


async def test_typing_the_ghost_consumes_it_locally_without_a_new_model_request(doc):
    async with stack() as (emu, srv):
        app = EditorApp(doc, server_url=srv.ws_url, token=TOKEN)
        async with app.run_test(size=(100, 24)) as pilot:
            await start(pilot, app)
            await type_and_wait_for_ghost(pilot, app)
            await settle(pilot, app)
            before = len(messages_requests(emu))
            ghost = app.editor.suggestion
            await pilot.press("f")
            # At once, before any reply: the typed character came off the ghost.
            assert app.editor.suggestion == ghost[1:]
            await pilot.press("o")
            assert app.editor.suggestion == ghost[2:]
            await settle(pilot, app)
            assert app.last_done["source"] == "typethrough"
            assert app.editor.suggestion == ghost[2:]
            assert len(messages_requests(emu)) == before


async def test_a_different_character_clears_the_ghost(doc):
    async with stack() as (emu, srv):
        app = EditorApp(doc, server_url=srv.ws_url, token=TOKEN)
        async with app.run_test(size=(100, 24)) as pilot:
            await start(pilot, app)
            await type_and_wait_for_ghost(pilot, app)
            await settle(pilot, app)
            await pilot.press("z")
            assert not app.editor.suggestion.startswith("ox")
            await pilot.press("backspace")
            assert app.editor.text == TYPED
            assert app.editor.suggestion == "" or app.suggest_id is not None


async def test_show_ghost_keeps_one_line_and_never_shows_blank_text(doc):
    async with stack() as (emu, srv):
        app = EditorApp(doc, server_url=srv.ws_url, token=TOKEN)
        async with app.run_test(size=(100, 24)) as pilot:
            editor: GhostEditor = app.editor
            editor.show_ghost("first line\nsecond line")
            assert editor.suggestion == "first line"
            editor.show_ghost("   ")
            assert editor.suggestion == ""
            await pilot.pause()


def visible_rows(editor: GhostEditor) -> list[str]:
    return [editor.render_line(y).text.rstrip() for y in range(editor.size.height)]


class JustTheEditor(App):
    """The editor widget alone: no server whose suggestions would race the test's ghost."""

    def compose(self):
        yield GhostEditor(id="editor")


async def test_a_ghost_at_the_right_edge_wraps_onto_the_next_rows():
    words = "The committee met on Tuesday to review the budget for the coming year and agreed to"
    below = "The next line stays where it is."
    ghost = " fund the new library and repair the roads near the school"
    app = JustTheEditor()
    async with app.run_test(size=(40, 16)) as pilot:
        editor = app.query_one(GhostEditor)
        for cut in range(len(words), 0, -1):  # a paragraph that ends at a row's right edge
            para = words[:cut]
            editor.load_text(para + "\n" + below)
            editor.move_cursor((0, len(para)))
            await pilot.pause()
            x = editor.wrapped_document.location_to_offset(editor.selection.end).x
            if editor.wrap_width - x < len(" fund"):
                break
        else:
            raise AssertionError("no paragraph ends near the edge")
        editor.show_ghost(ghost)
        await pilot.pause()
        assert editor.suggestion == ghost  # all of it, none dropped
        rows = visible_rows(editor)
        shown = " ".join(" ".join(rows).split())
        assert (para + ghost + " " + below) in shown
        assert all(len(row) <= editor.wrap_width + 1 for row in rows)  # nothing clipped
        assert editor.text == para + "\n" + below
        editor.insert(" f")  # typing through it keeps the rest wrapped
        assert editor.suggestion == ghost[2:]
        assert (para + ghost + " " + below) in " ".join(" ".join(visible_rows(editor)).split())
        editor.clear_ghost()
        await pilot.pause()
        assert "library" not in " ".join(visible_rows(editor))  # and it goes away whole


async def test_without_soft_wrap_a_long_ghost_is_cut_at_a_word_that_fits(doc):
    async with stack() as (emu, srv):
        app = EditorApp(doc, server_url=srv.ws_url, token=TOKEN)
        async with app.run_test(size=(40, 12)) as pilot:
            editor: GhostEditor = app.editor
            editor.soft_wrap = False
            editor.move_cursor(editor.document.end)
            await pilot.pause()
            long_ghost = " jumps over the lazy dog near the river bank and beyond"
            editor.show_ghost(long_ghost)
            shown = editor.suggestion
            assert shown and long_ghost.startswith(shown) and len(shown) < len(long_ghost)
            assert long_ghost[len(shown)] == " "  # whole words only
            editor.show_ghost(" fits")
            assert editor.suggestion == " fits"
            await pilot.pause()


async def test_opening_a_document_warms_the_offline_tier_before_any_keystroke(doc):
    async with stack() as (emu, srv):
        warmed: list[tuple[str, str]] = []
        hub_warm = srv.hub.warm_offline

        def record(prefix: str, suffix: str, document_id: str) -> None:
            warmed.append((prefix, suffix))
            hub_warm(prefix, suffix, document_id)

        srv.hub.warm_offline = record
        app = EditorApp(doc, server_url=srv.ws_url, token=TOKEN)
        async with app.run_test(size=(100, 24)) as pilot:
            await start(pilot, app)
            await wait_until(pilot, lambda: warmed, what="the warm frame")
            assert app.suggest_id is None  # nothing typed, nothing asked
            # The cursor opens at the start; the warm is for the end, where writing goes on.
            assert app.editor.text_around_cursor()[0] == ""
            assert warmed == [(TYPED.rstrip(), "")]


async def test_the_status_bar_shows_the_share_accepted_and_the_chars_saved(doc):
    async with stack() as (emu, srv):
        app = EditorApp(doc, server_url=srv.ws_url, token=TOKEN)
        async with app.run_test(size=(160, 24)) as pilot:
            await start(pilot, app)
            await type_and_wait_for_ghost(pilot, app)
            await settle(pilot, app)
            await pilot.press("ctrl+right")
            await pilot.press("ctrl+right")
            assert app.editor.text == TYPED + "fox jumps"
            await pilot.press("x")  # away from the ghost: it leaves the screen, accepted
            await wait_until(pilot, lambda: app.status.shown == 1, what="one suggestion shown")
            assert app.status.accepted == 1
            assert app.status.chars_saved == len("fox jumps") - 2  # two Ctrl+Right presses
            assert "accepted 1/1 (100%)" in app.status.render().plain
            assert "7 chars saved" in app.status.render().plain
