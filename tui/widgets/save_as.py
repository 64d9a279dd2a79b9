"""Save as: a modal asking for a path, so a text whose file cannot be written (its directory
gone, no permission) always has somewhere else to go. Dismisses with the path typed (a
:class:`~pathlib.Path`, ``~`` expanded) or None when cancelled."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static


class SaveAsScreen(ModalScreen[Path | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel", show=False)]

    def __init__(self, path: Path, reason: str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        self.path = path
        self.reason = reason

    def compose(self) -> ComposeResult:
        with Vertical(id="save-as-box"):
            if self.reason:
                yield Static(self.reason, id="save-as-reason")
            yield Static("Save as (Enter saves, Esc cancels):")
            yield Input(str(self.path), id="save-as-path")
            yield Static("", id="save-as-error")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        typed = event.value.strip()
        if not typed:
            self.query_one("#save-as-error", Static).update("Type a file name.")
            return
        path = Path(typed).expanduser()
        if path.is_dir():
            self.query_one("#save-as-error", Static).update(f"{path} is a directory.")
            return
        if not path.parent.is_dir():
            self.query_one("#save-as-error", Static).update(
                f"The directory {path.parent} does not exist."
            )
            return
        self.dismiss(path)

    def action_cancel(self) -> None:
        self.dismiss(None)
