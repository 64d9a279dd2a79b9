"""The terminal editor: composes the ghost-text editor, the review panel and the status bar, and
turns what happens in them into protocol frames (and frames back into what they show).

The connection runs as a worker in the app's event loop (:class:`tui.client.AssistantClient`);
its frames arrive as messages, so the editor never waits on the network. Only frames for the
latest suggestion id are shown. The text is only ever in the editor and on disk: saves are
atomic, a recovery copy is kept while there are unsaved changes, and a lost connection just
shows "reconnecting" while typing goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from pathlib import Path

from textual import work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer

from assistant.review.findings import Finding, StaleFinding, locate_finding, rebase_finding
from assistant.review.frames import finding_from_frame, format_tiers, tiers_from_frame
from assistant.suggest.usefulness_frames import FrameUsefulness

from . import files
from .checks import CheckMarks
from .client import AssistantClient, ConnectionState
from .document_sync import DocumentSync, fits, speaks_documents
from .messages import ConnectionChanged, ServerFrame
from .widgets.choice import ChoiceScreen
from .widgets.editor import GhostEditor
from .widgets.review_panel import ReviewPanel
from .widgets.save_as import SaveAsScreen
from .widgets.status_bar import StatusBar


class EditorApp(App):
    CSS_PATH = Path(__file__).with_name("app.tcss")
    TITLE = "assistant"
    BINDINGS = [
        Binding("ctrl+s", "save", "Save", priority=True),
        # Most terminals send Ctrl+Shift+S as Ctrl+S; F4 works in all of them.
        Binding("f4,ctrl+shift+s", "save_as", "Save as", priority=True),
        Binding("ctrl+r", "review", "Review", priority=True),
        Binding("f2", "toggle_focus", "Findings", priority=True),
        Binding("f3", "toggle_panel", "Panel", priority=True),
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("escape", "cancel_review", "Cancel review", show=False),
        Binding("f8", "apply_check", "Correct", priority=True),
    ]
    # Below 90 columns the review panel goes under the text instead of beside it (app.tcss):
    # at 60 columns a 52-column panel left the text 7 cells wide.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (90, "-wide")]

    def __init__(
        self,
        path: str | Path,
        *,
        server_url: str,
        token: str | None = None,
        recovery_delay_s: float = 1.0,
        backoff_initial_s: float = 0.2,
        backoff_max_s: float = 5.0,
    ) -> None:
        super().__init__()
        self.path = Path(path)
        self.opened = files.open_file(self.path)  # raises on unreadable/non-UTF-8: nothing lost
        self.saved_text = self.opened.text
        self.recovery_delay_s = recovery_delay_s
        self.client = AssistantClient(
            server_url,
            token,
            on_frame=lambda frame: self.post_message(ServerFrame(frame)),
            on_state=lambda state: self.post_message(ConnectionChanged(state)),
            backoff_initial_s=backoff_initial_s,
            backoff_max_s=backoff_max_s,
        )
        self.limits: dict = {}
        self.suggest_id: int | None = None  # the latest suggest sent; only its frames are shown
        self.ghost_id: int | None = None  # the suggestion the ghost on screen came from
        self._streamed: dict[int, str] = {}
        self._last_sent: tuple | None = None  # what the latest suggest asked about
        self.document = DocumentSync()  # protocol 1.1: what the server holds of the text
        self._resynced = False  # the latest suggest is already a retry after a resync
        self.review_id: int | None = None
        self._review_chars = 0
        self._recovery_timer: Timer | None = None
        self.recovery_writes = 0
        self.frames_seen = 0
        self.last_done: dict | None = None  # the last done frame for the latest suggestion
        self.usefulness = FrameUsefulness()  # the session's accepted share and chars saved
        self.checks = CheckMarks()  # the server's corrections as you type, underlined

    # -- composition ----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Horizontal(id="main"):
            yield GhostEditor(self.opened.text, id="editor")
            yield ReviewPanel(id="review")
        yield StatusBar(id="status")
        yield Footer()

    @property
    def editor(self) -> GhostEditor:
        return self.query_one("#editor", GhostEditor)

    @property
    def panel(self) -> ReviewPanel:
        return self.query_one("#review", ReviewPanel)

    @property
    def status(self) -> StatusBar:
        return self.query_one("#status", StatusBar)

    @property
    def dirty(self) -> bool:
        return self.editor.text != self.saved_text

    def on_mount(self) -> None:
        self.sub_title = str(self.path) + ("" if self.opened.exists else " (new file)")
        self.editor.focus()
        self.run_worker(self.client.run(), name="connection", group="connection")
        if self.opened.recovery is not None:
            self.push_screen(
                ChoiceScreen(
                    f"A recovery copy of {self.path.name} with unsaved changes from an earlier "
                    "session is newer than the file. Restore it?",
                    [("restore", "Restore it"), ("discard", "Discard it")],
                ),
                self._recovery_answer,
            )

    def _recovery_answer(self, choice: str | None) -> None:
        if choice == "restore" and self.opened.recovery is not None:
            self.editor.load_text(self.opened.recovery)
            self.status.dirty = self.dirty
            self.notify("Recovered the unsaved text. Save it with Ctrl+S.")
        elif choice == "discard":
            files.discard_recovery(self.path)

    async def on_unmount(self) -> None:
        await self.client.close()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Deep review", "Review the whole document (Ctrl+R)", self.action_review)
        if self.review_id is not None:
            yield SystemCommand("Cancel review", "Stop the review in flight", self.cancel_review)
        yield SystemCommand("Save", "Save the file (Ctrl+S)", self.action_save)
        yield SystemCommand("Save as", "Save under another name (F4)", self.action_save_as)
        yield SystemCommand(
            "Review panel", "Show or hide the review panel (F3)", self.action_toggle_panel
        )
        yield SystemCommand("Reconnect", "Reconnect to the server now", self.client.reconnect_now)

    # -- edits -> suggest / cancel / accept -----------------------------------------------------

    def on_ghost_editor_edited(self, message: GhostEditor.Edited) -> None:
        if self.checks.marks or self.checks.text:
            self.checks.edited(self.editor.text)
            self._show_marks()
        self.status.dirty = dirty = self.dirty
        if dirty:
            self._schedule_recovery()
        self.request_suggestion()

    def _text_for_server(self, *, at_end: bool = False) -> tuple[str, str]:
        """Text before and after the cursor (or the end), within the server's limits."""
        prefix, suffix = (self.editor.text, "") if at_end else self.editor.text_around_cursor()
        max_prefix = int(self.limits.get("max_prefix_chars") or 100_000)
        max_suffix = int(self.limits.get("max_suffix_chars") or 20_000)
        return prefix[-max_prefix:], suffix[:max_suffix]

    def _uses_documents(self, text: str) -> bool:
        """Protocol 1.1 when the server speaks it and can hold this text; else v1 frames."""
        if speaks_documents(self.client.ready) and fits(text, self.limits):
            return True
        self.document.reset()
        return False

    def _cursor_offset(self) -> int:
        return self.editor.document.get_index_from_location(self.editor.selection.end)

    def _open_document(self, *, at_end: bool) -> bool:
        """Give a 1.1 server the whole text (``open``); False when v1 frames are to be used."""
        text = self.editor.text
        if not self._uses_documents(text):
            return False
        cursor = len(text) if at_end else self._cursor_offset()
        frame = self.document.frame(text, cursor, self.client.next_id())
        if frame is not None and not self.client.send(frame):
            self.document.reset()
            return False
        return True

    def request_suggestion(self, *, resynced: bool = False) -> None:
        editor = self.editor
        if not editor.selection.is_empty:
            return
        text = editor.text
        if self._uses_documents(text):
            # 1.1: one frame per keystroke, the suggest carrying just the change.
            cursor = self._cursor_offset()
            asked: tuple = ("version", self.document.version)
            if self.document.holds(text, cursor) and asked == self._last_sent and not resynced:
                return
            frames = self.document.suggest_frames(text, cursor, self.client.next_id)
            asked = ("version", self.document.version)
        else:
            prefix, suffix = self._text_for_server()
            asked = (prefix, suffix)
            if asked == self._last_sent and not resynced:
                return
            fid = self.client.next_id()
            frames = [{"type": "suggest", "id": fid, "prefix": prefix, "suffix": suffix}]
        self._resynced = resynced
        frame_id = frames[-1]["id"]
        if all(self.client.send(frame) for frame in frames):
            self.usefulness.suggest(time.monotonic(), frame_id, editor.text_around_cursor()[0])
            self.suggest_id = frame_id
            self._last_sent = asked
            self._streamed = {frame_id: ""}
        else:
            self.document.reset()
            self.suggest_id = None
            self._last_sent = None

    def on_ghost_editor_dismissed(self, message: GhostEditor.Dismissed) -> None:
        self._cancel_suggestion()

    def _cancel_suggestion(self) -> None:
        if self.suggest_id is not None:
            self.client.send({"type": "cancel", "id": self.suggest_id})
        self.suggest_id = None
        self._last_sent = None

    def on_ghost_editor_accepted(self, message: GhostEditor.Accepted) -> None:
        if self.ghost_id is not None:
            self.client.send({"type": "accept", "id": self.ghost_id, "chars": message.chars})
            self.usefulness.accept(time.monotonic(), message.chars)
            self.status.record_usefulness(self.usefulness.counts)

    def on_ghost_editor_escape_pressed(self, message: GhostEditor.EscapePressed) -> None:
        if self.review_id is not None:
            self.cancel_review()
        else:
            self._cancel_suggestion()

    # -- frames -> screen -----------------------------------------------------------------------

    def on_connection_changed(self, message: ConnectionChanged) -> None:
        if not self.is_running:  # shutting down: the widgets are gone, nothing to show it on
            return
        self.status.connection = message.state.value
        if message.state in (ConnectionState.RECONNECTING, ConnectionState.REFUSED):
            self.suggest_id = None
            self._last_sent = None
            if self.review_id is not None:
                self.review_id = None
                self.panel.finish("Review interrupted: the connection was lost. Ctrl+R to retry.")

    def on_server_frame(self, message: ServerFrame) -> None:
        # A frame the connection posted just before the app began to shut down is handled after
        # its widgets are gone (App._shutdown stops running, then prunes the screens, then
        # empties the app's queue): there is nothing left to show it on.
        if not self.is_running:
            return
        frame = message.frame
        self.frames_seen += 1
        kind = frame.get("type")
        frame_id = frame.get("id")
        if kind in ("delta", "done", "cancelled", "error"):
            self.usefulness.frame(time.monotonic(), frame)
            self.status.record_usefulness(self.usefulness.counts)
        if kind == "ready":
            self.limits = frame.get("limits") or {}
            self.status.model = str(frame.get("model") or "")
            self.status.note = ""
            # Let the offline tier learn the document and fill the local model's prefix cache
            # now, not on the first keystroke (a cold 1,000-token prompt takes seconds). A
            # document just opened has the cursor at its start; writers mostly go on at the
            # end, so that is the place to warm. A 1.1 server is given the document (open),
            # which warms it; a v1 server a warm frame.
            self.document.reset()  # a new connection holds no document
            prefix, suffix = self._text_for_server()
            at_end = not prefix
            if at_end:
                prefix, suffix = self._text_for_server(at_end=True)
            if not self._open_document(at_end=at_end):
                self.client.send(
                    {
                        "type": "warm",
                        "id": self.client.next_id(),
                        "prefix": prefix,
                        "suffix": suffix,
                    }
                )
            if self.client.connections > 1:
                self.request_suggestion()  # back after a reconnect: pick up where the text is
        elif kind == "delta":
            if frame_id is not None and frame_id == self.suggest_id:
                streamed = self._streamed.get(frame_id, "") + str(frame.get("text") or "")
                self._streamed[frame_id] = streamed
                if not self.editor.suggestion.startswith(streamed):
                    self.editor.show_ghost(streamed)
                    self.ghost_id = frame_id
        elif kind == "done":
            self.status.record_usage(frame.get("usage"), frame.get("cost_usd"))
            if frame_id is not None and frame_id == self.suggest_id:
                self.last_done = frame
                self._streamed.pop(frame_id, None)
                text = str(frame.get("text") or "")
                self.editor.show_ghost(text)
                self.ghost_id = frame_id if text else None
                self.status.source = str(frame.get("source") or "")
                self.status.model = str(frame.get("model") or self.status.model)
                latency = frame.get("latency_ms")
                self.status.latency_ms = float(latency) if latency is not None else None
        elif kind == "cancelled":
            if frame_id is not None and frame_id == self.review_id:
                self.review_id = None
                self.panel.finish(f"Review cancelled ({frame.get('reason', 'client')}).")
        elif kind == "error":
            self._on_error_frame(frame)
        elif kind == "review_delta":
            if frame_id is not None and frame_id == self.review_id:
                self._review_chars += len(str(frame.get("text") or ""))
                self.panel.progress(self._review_chars)
        elif kind == "finding":
            if frame_id is not None and frame_id == self.review_id:
                try:
                    finding = finding_from_frame(frame)
                except (KeyError, TypeError, ValueError):
                    return
                self.panel.add_finding(finding)
        elif kind == "finding_retracted":
            if frame_id is not None and frame_id == self.review_id:
                with contextlib.suppress(KeyError, TypeError, ValueError):
                    self.panel.retract(int(frame["index"]))
        elif kind == "review_done":
            self.status.record_usage(frame.get("usage"), frame.get("cost_usd"))
            if frame_id is not None and frame_id == self.review_id:
                self.review_id = None
                count = int(frame.get("findings") or 0)
                cost = float(frame.get("cost_usd") or 0.0)
                noun = "finding" if count == 1 else "findings"
                split = format_tiers(tiers_from_frame(frame))
                note = str(frame.get("note") or "")
                self.panel.finish(
                    f"{count} {noun} · ${cost:.4f}"
                    + (f"\n{split}" if split else f" · {frame.get('model', '')}")
                    + (f"\n{note}" if note else "")
                    + "\nEnter/a apply · s skip · F2 back to the text"
                )
        elif kind == "check":
            self.status.record_usage(None, frame.get("cost_usd"))
            self.checks.on_check(frame, self.editor.text)
            self._show_marks()
        elif kind == "status":
            reason = frame.get("reason")
            self.status.note = "" if frame.get("state") == "ok" else str(reason or "")

    def _on_error_frame(self, frame: dict) -> None:
        frame_id = frame.get("id")
        code = str(frame.get("code") or "")
        self.document.refused(frame_id, code)
        if code == "resync" and frame_id == self.suggest_id and not self._resynced:
            self.request_suggestion(resynced=True)  # re-opens the document, then asks again
            return
        text = f"{frame.get('code', 'error')}: {frame.get('message', '')}"
        if frame_id is not None and frame_id == self.review_id:
            self.review_id = None
            self.panel.finish(f"Review failed: {text}")
            self.notify(f"Review failed: {text}", severity="error")
        elif frame_id is not None and frame_id == self.suggest_id:
            self.suggest_id = None
            self.status.note = text
        elif frame_id is None:
            self.status.note = text

    # -- review ---------------------------------------------------------------------------------

    def action_review(self) -> None:
        if self.review_id is not None:
            self.cancel_review()
            return
        text = self.editor.text
        if not text.strip():
            self.notify("Nothing to review yet.")
            return
        review_id = self.client.next_id()
        if not self.client.send({"type": "review", "id": review_id, "text": text}):
            self.notify(
                "Not connected: the review will be possible once reconnected.", severity="warning"
            )
            return
        self.review_id = review_id
        self._review_chars = 0
        self.panel.add_class("visible")
        self.panel.start()

    def cancel_review(self) -> None:
        if self.review_id is None:
            return
        self.client.send({"type": "cancel_review", "id": self.review_id})
        self.panel.status.update("Cancelling…")

    def action_cancel_review(self) -> None:
        self.cancel_review()

    def action_toggle_focus(self) -> None:
        if self.editor.has_focus and self.panel.has_class("visible"):
            self.panel.option_list.focus()
        else:
            self.editor.focus()

    def action_toggle_panel(self) -> None:
        """Show or hide the review panel; a review in flight goes on either way."""
        if self.panel.has_class("visible"):
            self.panel.remove_class("visible")
            self.editor.focus()
        else:
            self.panel.add_class("visible")

    def _show_marks(self) -> None:
        self.editor.set_marks([(m.start, m.end) for m in self.checks.marks])

    def action_apply_check(self) -> None:
        """F8: apply the correction under or next to the cursor, as one undoable edit."""
        editor = self.editor
        mark = self.checks.nearest(self._cursor_offset())
        if mark is None:
            self.notify("No correction next to the cursor.")
            return
        self.checks.remove(mark)
        if editor.text[mark.start : mark.end] != mark.quote:  # never apply to other text
            self._show_marks()
            return
        try:
            span = editor.offset_to_location(mark.start), editor.offset_to_location(mark.end)
        except ValueError:
            return
        editor.replace(mark.replacement, *span)
        self.notify(mark.message or f"{mark.quote!r} -> {mark.replacement!r}", title="Corrected")

    def on_review_panel_selected(self, message: ReviewPanel.Selected) -> None:
        try:
            start, end = locate_finding(self.editor.text, message.finding)
        except StaleFinding:
            return
        try:
            self.editor.select_span(start, end)
        except ValueError:  # a span that splits a CRLF line break
            pass

    def on_review_panel_apply_requested(self, message: ReviewPanel.ApplyRequested) -> None:
        # Only a finding the panel still lists: one retracted (or dropped by a new review) while
        # this message waited in the queue is no longer the review's advice.
        finding = self.panel.listed(message.finding)
        if finding is not None:
            self.apply_finding(finding)

    def apply_finding(self, finding: Finding) -> bool:
        """Replace the finding's quote in the editor (one undoable edit); refuse if stale."""
        editor = self.editor
        try:
            start, end = locate_finding(editor.text, finding)
        except StaleFinding as exc:
            self.notify(str(exc), title="Finding not applied", severity="error")
            return False
        try:
            span = editor.offset_to_location(start), editor.offset_to_location(end)
        except ValueError:
            self.notify("The finding splits a line break; not applied.", severity="error")
            return False
        editor.replace(finding.replacement, *span)
        self.panel.remove_finding(finding)
        for other in self.panel.rows():
            moved = rebase_finding(other, start, end, len(finding.replacement))
            if moved is not None:
                self.panel.update_finding(moved)
        self._back_to_text_when_done()
        return True

    def on_review_panel_skipped(self, message: ReviewPanel.Skipped) -> None:
        self._back_to_text_when_done()

    def _back_to_text_when_done(self) -> None:
        if not self.panel.rows() and self.panel.option_list.has_focus:
            self.editor.focus()

    # -- files ----------------------------------------------------------------------------------

    def _schedule_recovery(self) -> None:
        if self._recovery_timer is None:
            self._recovery_timer = self.set_timer(self.recovery_delay_s, self._write_recovery)

    @work(group="recovery", exclusive=False)
    async def _write_recovery(self) -> None:
        self._recovery_timer = None
        if not self.dirty:
            return
        text = self.editor.text
        try:
            await asyncio.to_thread(files.write_recovery, self.path, text)
        except OSError as exc:
            self.notify(f"Could not write the recovery copy: {exc}", severity="warning")
            return
        if not self.dirty:  # saved while we wrote: the copy is already out of date
            files.discard_recovery(self.path)
            return
        self.recovery_writes += 1

    def action_save(self, *, then_exit: bool = False) -> bool:
        """Save; when the file cannot be written, offer Save as (the text stays in the editor)."""
        text = self.editor.text
        try:
            files.save_file(self.path, text)
        except OSError as exc:
            self.notify(f"Not saved: {exc}", title="Save failed", severity="error")
            self.action_save_as(
                reason=f"{self.path} could not be saved: {exc}", then_exit=then_exit
            )
            return False
        self.saved_text = text
        if self._recovery_timer is not None:
            self._recovery_timer.stop()
            self._recovery_timer = None
        self.status.dirty = False
        self.sub_title = str(self.path)
        self.notify(f"Saved {self.path.name}", timeout=2)
        return True

    def action_save_as(self, reason: str = "", *, then_exit: bool = False) -> None:
        if isinstance(self.screen, SaveAsScreen):
            return

        def chosen(path: Path | None) -> None:
            if path is None:
                return
            old = self.path
            self.path = path
            if self.action_save(then_exit=then_exit):
                if old != path:
                    files.discard_recovery(old)
                if then_exit:
                    self.exit()
            else:
                self.path = old

        self.push_screen(SaveAsScreen(self.path, reason), chosen)

    async def action_quit(self) -> None:
        if not self.dirty:
            self.exit()
            return

        def answer(choice: str | None) -> None:
            if choice == "save":
                if self.action_save(then_exit=True):
                    self.exit()
            elif choice == "discard":
                files.discard_recovery(self.path)
                self.exit()

        self.push_screen(
            ChoiceScreen(
                f"{self.path.name} has unsaved changes.",
                [
                    ("save", "Save and quit"),
                    ("discard", "Quit without saving"),
                    ("cancel", "Cancel"),
                ],
            ),
            answer,
        )
