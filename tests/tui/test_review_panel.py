"""Deep review in the terminal editor: findings stream into the side panel, applying one edits
the text, a stale one is refused, Ctrl+R again cancels; and a screenshot of it all."""

from __future__ import annotations

import html
import re

from assistant.emulator import Fault
from tests.retraction_case import RETRACTED_LABELS, RETRACTED_SEED, RETRACTED_TEXT
from tests.tui.conftest import ARTIFACTS, TOKEN, stack, wait_until
from tui.app import EditorApp
from tui.widgets.review_panel import ReviewPanel, finding_row

DOC = "I recieve teh letter today.\nWe will definately reply.\n"


def is_review_request(rec) -> bool:
    body = rec.body if isinstance(rec.body, dict) else {}
    return "format" in (body.get("output_config") or {})


def panel_quotes(app: EditorApp) -> list[str]:
    return [f.quote for f in app.panel.rows()]


async def run_review(pilot, app: EditorApp) -> None:
    await wait_until(pilot, lambda: app.status.connection == "connected", what="connected")
    await pilot.press("ctrl+r")
    assert app.panel.has_class("visible")
    await wait_until(pilot, lambda: app.review_id is None, what="review_done")


async def test_review_lists_findings_and_applying_one_edits_the_text(tmp_path):
    path = tmp_path / "draft.md"
    path.write_text(DOC)
    async with stack() as (emu, srv):
        app = EditorApp(path, server_url=srv.ws_url, token=TOKEN)
        async with app.run_test(size=(120, 30)) as pilot:
            await run_review(pilot, app)
            assert panel_quotes(app) == ["recieve", "teh", "definately"]
            assert "3 findings" in str(app.panel.status.render())
            assert app.status.cost_usd > 0  # review_done's cost is in the session total
            review_requests = [r for r in emu.requests if is_review_request(r)]
            assert [r.model for r in review_requests] == ["claude-haiku-5-5"]  # Sonnet not needed
            assert "haiku $" in str(app.panel.status.render())  # the cost split by tier
            assert all("[haiku]" in finding_row(f).plain for f in app.panel.rows())
            # F2 to the list: the first finding is highlighted and its span selected.
            await pilot.press("f2")
            assert app.panel.option_list.has_focus
            await wait_until(pilot, lambda: app.editor.selected_text == "recieve", what="select")
            await pilot.press("enter")
            assert app.editor.text == DOC.replace("recieve", "receive")
            assert panel_quotes(app) == ["teh", "definately"]
            # The rest moved with the edit; "s" skips one, "a" applies the next.
            await pilot.press("s")
            assert panel_quotes(app) == ["definately"]
            await pilot.press("a")
            assert app.editor.text == "I receive teh letter today.\nWe will definitely reply.\n"
            assert panel_quotes(app) == []
            assert app.dirty  # applied, not saved
            await pilot.press("ctrl+z")  # one undoable edit each
            assert "definately" in app.editor.text


async def test_a_stale_finding_is_refused_and_the_text_untouched(tmp_path):
    path = tmp_path / "draft.md"
    path.write_text(DOC)
    async with stack() as (emu, srv):
        app = EditorApp(path, server_url=srv.ws_url, token=TOKEN)
        async with app.run_test(size=(120, 30)) as pilot:
            await run_review(pilot, app)
            teh = next(f for f in app.panel.rows() if f.quote == "teh")
            # The writer fixed it by hand meanwhile.
            start = app.editor.offset_to_location(teh.start)
            end = app.editor.offset_to_location(teh.end)
            app.editor.replace("the", start, end)
            before = app.editor.text
            await pilot.press("f2", "down")  # to the second finding, "teh"
            assert app.panel.current() is not None and app.panel.current().quote == "teh"
            await pilot.press("enter")
            await wait_until(pilot, lambda: len(app._notifications) > 0, what="a notification")
            assert app.editor.text == before
            message = list(app._notifications)[-1].message
            assert "no longer contains" in message and "teh" in message
            assert "teh" in panel_quotes(app)  # still listed; the user can skip it


async def test_a_retracted_finding_leaves_the_panel_and_is_not_applied(tmp_path, monkeypatch):
    path = tmp_path / "draft.md"
    path.write_text(RETRACTED_TEXT)
    shown = []
    add_finding = ReviewPanel.add_finding

    def record(panel, finding):
        shown.append(finding)
        add_finding(panel, finding)

    monkeypatch.setattr(ReviewPanel, "add_finding", record)
    cfg = {"seed": RETRACTED_SEED, "review_labels": RETRACTED_LABELS}
    async with stack(**cfg) as (emu, srv):
        app = EditorApp(path, server_url=srv.ws_url, token=TOKEN)
        async with app.run_test(size=(120, 30)) as pilot:
            await run_review(pilot, app)
            haiku = next(f for f in shown if f.quote == "Monday. The budjet")
            assert haiku.index == 0 and haiku.tier == "haiku"  # shown first, then retracted
            assert panel_quotes(app) == ["budjet", "five people in total"]
            assert "2 findings" in str(app.panel.status.render())
            # An apply the panel asked for before the retraction was handled does nothing.
            app.panel.post_message(ReviewPanel.ApplyRequested(haiku))
            await pilot.pause()
            assert app.editor.text == RETRACTED_TEXT
            # Sonnet's fix for the same word applies.
            await pilot.press("f2")
            assert app.panel.current().quote == "budjet"
            await pilot.press("enter")
            assert app.editor.text == RETRACTED_TEXT.replace("budjet", "budget")


async def test_ctrl_r_again_cancels_a_review_in_flight(tmp_path):
    path = tmp_path / "draft.md"
    path.write_text(DOC)
    async with stack() as (emu, srv):
        emu.inject(Fault("slow", delay_ms=200), count=10, match_model="claude-haiku-5-5")
        app = EditorApp(path, server_url=srv.ws_url, token=TOKEN)
        async with app.run_test(size=(120, 30)) as pilot:
            await wait_until(pilot, lambda: app.status.connection == "connected")
            await pilot.press("ctrl+r")
            assert app.review_id is not None
            rec = await wait_until(
                pilot,
                lambda: next((r for r in emu.requests if is_review_request(r)), None),
                what="the review request",
            )
            await pilot.press("ctrl+r")
            await wait_until(pilot, lambda: app.review_id is None, what="cancelled")
            assert "cancelled" in str(app.panel.status.render()).lower()
            await emu.wait_for_request_end(rec)
            assert rec.client_disconnected and not rec.completed


def _svg_text(svg: str) -> str:
    """The visible characters of an exported screenshot, one string (spaces normalised)."""
    texts = re.findall(r"<text[^>]*>(.*?)</text>", svg, flags=re.S)
    return html.unescape("".join(texts)).replace("\xa0", " ")


async def test_screenshot_shows_the_ghost_text_and_the_review_panel(tmp_path):
    path = tmp_path / "draft.md"
    path.write_text("I recieve teh letter today. The quick brown")
    async with stack() as (emu, srv):
        app = EditorApp(path, server_url=srv.ws_url, token=TOKEN)
        async with app.run_test(size=(120, 24)) as pilot:
            await run_review(pilot, app)
            app.editor.focus()
            app.editor.move_cursor(app.editor.document.end)
            await pilot.press("space")
            await wait_until(pilot, lambda: app.editor.suggestion, what="ghost")
            await wait_until(
                pilot,
                lambda: app.last_done is not None and app.last_done["id"] == app.suggest_id,
            )
            ghost = app.editor.suggestion
            await pilot.pause()
            svg = app.export_screenshot(title="assistant edit")
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "tui-ghost-and-review.svg").write_text(svg)
    screen = _svg_text(svg)
    assert "The quick brown " + ghost.split()[0] in screen  # text and ghost on one line
    assert "recieve → receive" in screen
    assert "teh → the" in screen
    assert "HIGH" in screen
    assert "claude-haiku-5-5" in screen  # the status bar
