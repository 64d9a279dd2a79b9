"""The editor on protocol 1.1: it opens the document once and sends edits, the server's copy
stays the editor's text, a resync re-opens it, and a v1-only server still gets v1 frames."""

from __future__ import annotations

import pytest

from server import protocol
from tests.tui.conftest import TOKEN, stack, wait_until
from tui.app import EditorApp

TEXT = "The fox 😀 jumps. The fox"


@pytest.fixture
def doc(tmp_path):
    path = tmp_path / "notes.md"
    path.write_text(TEXT)
    return path


def server_documents(srv) -> list:
    return [c.documents.document for c in srv.hub.connections]


def answered(app: EditorApp) -> bool:
    done = app.last_done
    return app.suggest_id is not None and done is not None and done.get("id") == app.suggest_id


async def test_typing_keeps_the_servers_copy_equal_to_the_editor_text(doc):
    async with stack() as (emu, srv):
        app = EditorApp(doc, server_url=srv.ws_url, token=TOKEN)
        async with app.run_test(size=(100, 24)) as pilot:
            await wait_until(pilot, lambda: app.document.version is not None, what="open")
            app.editor.move_cursor(app.editor.document.end)
            await pilot.press("space", *"jumps", "backspace", "s", "space")
            await wait_until(pilot, lambda: answered(app), what="a suggestion by version")
            (copy,) = server_documents(srv)
            assert copy.text == app.editor.text == TEXT + " jumps "
            assert copy.version == app.document.version
            assert copy.cursor == len(app.editor.text)  # code points: the emoji is one


async def test_a_resync_reopens_the_document_and_the_suggestion_still_comes(doc):
    async with stack() as (emu, srv):
        app = EditorApp(doc, server_url=srv.ws_url, token=TOKEN)
        async with app.run_test(size=(100, 24)) as pilot:
            await wait_until(pilot, lambda: app.document.version is not None, what="open")
            for conn in srv.hub.connections:
                conn.documents.document = None  # the server lost its copy
            app.editor.move_cursor(app.editor.document.end)
            await pilot.press("space")
            await wait_until(pilot, lambda: answered(app), what="a suggestion after resync")
            assert app.last_done["type"] == "done"
            (copy,) = server_documents(srv)
            assert copy is not None and copy.text == app.editor.text == TEXT + " "
            assert app.status.note == ""  # the resync was handled, not shown as an error


async def test_a_server_that_speaks_only_v1_gets_v1_frames(doc, monkeypatch):
    v1_ready = protocol.ready_frame

    def ready_without_minor(*args, **kwargs):
        frame = v1_ready(*args, **kwargs)
        del frame["protocol_minor"]
        return frame

    monkeypatch.setattr(protocol, "ready_frame", ready_without_minor)
    async with stack() as (emu, srv):
        app = EditorApp(doc, server_url=srv.ws_url, token=TOKEN)
        async with app.run_test(size=(100, 24)) as pilot:
            await wait_until(pilot, lambda: app.client.ready is not None, what="ready")
            app.editor.move_cursor(app.editor.document.end)
            await pilot.press("space")
            await wait_until(pilot, lambda: answered(app), what="a v1 suggestion")
            assert app.document.version is None
            assert server_documents(srv) == [None]  # never opened: prefix/suffix frames
