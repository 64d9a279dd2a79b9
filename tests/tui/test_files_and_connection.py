"""Saving, the recovery copy, quitting with unsaved changes, and reconnecting after the server
goes away: nothing typed is ever lost."""

from __future__ import annotations

import os
import socket

import pytest

from server.runner import ServerHandle
from tests.tui.conftest import TOKEN, emulator, make_settings, stack, wait_until
from tui import files
from tui.app import EditorApp
from tui.widgets.choice import ChoiceScreen


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- files.py on its own -------------------------------------------------------------------


def test_atomic_write_keeps_permissions_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("old")
    os.chmod(path, 0o600)
    files.atomic_write(path, "new text\r\nwith CRLF kept")
    assert path.read_bytes() == b"new text\r\nwith CRLF kept"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert os.listdir(tmp_path) == ["notes.txt"]


def test_open_offers_only_a_newer_different_recovery_copy(tmp_path):
    path = tmp_path / "a.md"
    assert files.open_file(path) == files.OpenedFile("", False, None)
    files.write_recovery(path, "unsaved")
    assert files.open_file(path).recovery == "unsaved"  # no file yet: the copy is all there is
    path.write_text("saved")
    rec = files.recovery_path(path)
    os.utime(rec, (1, 1))  # older than the file
    assert files.open_file(path).recovery is None
    files.write_recovery(path, "saved")  # newer but the same text
    assert files.open_file(path).recovery is None


# --- in the app ----------------------------------------------------------------------------


async def test_save_is_atomic_and_removes_the_recovery_copy(tmp_path):
    path = tmp_path / "draft.md"
    async with stack() as (emu, srv):
        app = EditorApp(path, server_url=srv.ws_url, token=TOKEN, recovery_delay_s=0.05)
        async with app.run_test(size=(100, 24)) as pilot:
            await pilot.press(*"Hello")
            assert app.status.dirty
            rec = files.recovery_path(path)
            await wait_until(pilot, rec.exists, what="the recovery copy")
            assert rec.read_text() == "Hello"
            assert not path.exists()  # a missing file is created on the first save only
            await pilot.press("ctrl+s")
            assert path.read_text() == "Hello"
            assert not rec.exists()
            assert sorted(os.listdir(tmp_path)) == ["draft.md"]  # no temp files left
            assert not app.status.dirty
            await pilot.pause(0.1)  # a recovery write already scheduled must not come back
            assert not rec.exists()


async def test_a_newer_recovery_copy_is_offered_and_restored(tmp_path):
    path = tmp_path / "draft.md"
    path.write_text("saved text")
    files.write_recovery(path, "saved text and more that was never saved")
    async with stack() as (emu, srv):
        app = EditorApp(path, server_url=srv.ws_url, token=TOKEN)
        async with app.run_test(size=(100, 24)) as pilot:
            await wait_until(pilot, lambda: isinstance(app.screen, ChoiceScreen), what="offer")
            await pilot.click("#choice-restore")
            assert app.editor.text == "saved text and more that was never saved"
            assert app.dirty
            assert path.read_text() == "saved text"  # restoring does not save by itself


async def test_quit_asks_before_discarding_unsaved_changes(tmp_path):
    path = tmp_path / "draft.md"
    async with stack() as (emu, srv):
        app = EditorApp(path, server_url=srv.ws_url, token=TOKEN)
        async with app.run_test(size=(100, 24)) as pilot:
            await pilot.press(*"Keep me")
            await pilot.press("ctrl+q")
            await wait_until(pilot, lambda: isinstance(app.screen, ChoiceScreen), what="ask")
            await pilot.press("escape")  # cancel: back to the text
            assert not isinstance(app.screen, ChoiceScreen)
            assert app.is_running and app.editor.text == "Keep me"
            await pilot.press("ctrl+q")
            await wait_until(pilot, lambda: isinstance(app.screen, ChoiceScreen), what="ask")
            await pilot.click("#choice-save")
        assert path.read_text() == "Keep me"


async def test_reconnects_after_the_server_restarts_and_keeps_the_text(tmp_path):
    path = tmp_path / "draft.md"
    port = free_port()
    async with emulator() as emu:
        settings = make_settings(emu)
        srv = await ServerHandle(settings, port=port).start()
        app = EditorApp(
            path, server_url=srv.ws_url, token=TOKEN, backoff_initial_s=0.05, backoff_max_s=0.3
        )
        try:
            async with app.run_test(size=(100, 24)) as pilot:
                await wait_until(pilot, lambda: app.status.connection == "connected")
                await pilot.press(*"Before ")
                await srv.shutdown()
                await wait_until(
                    pilot, lambda: app.status.connection == "reconnecting", what="reconnecting"
                )
                await pilot.press(*"during ")  # typing goes on while the server is away
                assert app.editor.text == "Before during "
                srv = await ServerHandle(settings, port=port).start()
                await wait_until(pilot, lambda: app.status.connection == "connected", what="back")
                assert app.client.connections == 2
                await pilot.press(*"after")
                assert app.editor.text == "Before during after"
                # The new connection serves suggestions again.
                await wait_until(
                    pilot,
                    lambda: app.last_done is not None and app.last_done["id"] == app.suggest_id,
                    what="a suggestion over the new connection",
                )
        finally:
            await srv.shutdown()


@pytest.mark.parametrize("bad", [b"\xff\xfe not utf-8"])
def test_a_file_that_is_not_utf8_is_refused_not_mangled(tmp_path, bad):
    path = tmp_path / "binary.md"
    path.write_bytes(bad)
    with pytest.raises(UnicodeDecodeError):
        EditorApp(path, server_url="ws://127.0.0.1:9", token=TOKEN)
    assert path.read_bytes() == bad


async def test_a_frame_that_arrives_while_the_editor_shuts_down_is_dropped(tmp_path):
    """The connection's worker can post a frame that the app handles after its widgets are gone
    (it happened once in CI: a `done` frame on the way while the test's app exited). Handling it
    then must not crash the editor on its way out."""
    from tui.client import ConnectionState
    from tui.messages import ConnectionChanged, ServerFrame

    path = tmp_path / "notes.txt"
    path.write_text("kept")
    app = EditorApp(path, server_url=f"ws://127.0.0.1:{free_port()}/ws", token=TOKEN)
    async with app.run_test(size=(100, 20)):
        pass
    assert not app.is_running
    app.on_server_frame(ServerFrame({"type": "done", "id": 1, "text": " late"}))
    app.on_server_frame(ServerFrame({"type": "ready", "model": "m"}))
    app.on_connection_changed(ConnectionChanged(ConnectionState.RECONNECTING))
    assert path.read_text() == "kept"
