"""What the status bar says about the connection, from ready and status frames, and the
command palette's editor commands."""

from __future__ import annotations

from assistant.endpoint import ws_endpoint
from tests.tui.conftest import TOKEN
from tui.app import EditorApp
from tui.client import ConnectionState, state_from_frame


def test_ready_and_status_frames_set_the_connection_state():
    assert state_from_frame({"type": "ready", "provider": "anthropic"}) == ConnectionState.CONNECTED
    assert (
        state_from_frame({"type": "ready", "provider": "offline"}) == ConnectionState.OFFLINE_ONLY
    )
    limited = {"type": "status", "state": "rate_limited", "active": "offline"}
    assert state_from_frame(limited) == ConnectionState.RATE_LIMITED
    down = {"type": "status", "state": "unavailable", "active": "offline"}
    assert state_from_frame(down) == ConnectionState.OFFLINE
    ok = {"type": "status", "state": "ok", "active": "anthropic"}
    assert state_from_frame(ok) == ConnectionState.CONNECTED
    assert state_from_frame({"type": "delta", "id": 1, "text": "x"}) is None


def test_ws_endpoint_accepts_a_bare_server_url():
    assert ws_endpoint("ws://127.0.0.1:8765") == "ws://127.0.0.1:8765/v1/ws"
    assert ws_endpoint("http://h:1/") == "ws://h:1/v1/ws"
    assert ws_endpoint("ws://h:1/v1/ws") == "ws://h:1/v1/ws"


async def test_rate_limited_status_shows_in_the_status_bar_and_palette_has_review(tmp_path):
    # No server at all: the editor still opens, says it is reconnecting, and keeps the text.
    app = EditorApp(tmp_path / "a.md", server_url="ws://127.0.0.1:9", token=TOKEN)
    async with app.run_test(size=(100, 24)) as pilot:
        await pilot.press(*"offline")
        assert app.editor.text == "offline"
        from tui.messages import ConnectionChanged, ServerFrame

        app.post_message(ConnectionChanged(ConnectionState.RATE_LIMITED))
        app.post_message(
            ServerFrame({"type": "status", "state": "rate_limited", "reason": "429 from Anthropic"})
        )
        await pilot.pause()
        assert app.status.connection == "rate limited"
        assert "429" in str(app.status.render())
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Deep review" in titles and "Save" in titles
