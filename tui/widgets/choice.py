"""A small modal question with a few buttons; dismisses with the id of the button pressed."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ChoiceScreen(ModalScreen[str]):
    BINDINGS = [Binding("escape", "choose('cancel')", "Cancel", show=False)]
    # Under 70 columns the buttons stack (app.tcss): side by side they were clipped at 60.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (70, "-wide")]

    def __init__(self, question: str, choices: list[tuple[str, str]], **kwargs) -> None:
        super().__init__(**kwargs)
        self.question = question
        self.choices = choices

    def compose(self) -> ComposeResult:
        with Vertical(id="choice-box"):
            yield Static(self.question, id="choice-question")
            with Horizontal(id="choice-buttons"):
                for i, (choice_id, label) in enumerate(self.choices):
                    yield Button(
                        label, id=f"choice-{choice_id}", variant="primary" if i == 0 else "default"
                    )

    def on_mount(self) -> None:
        self.query(Button).first().focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss((event.button.id or "choice-cancel").removeprefix("choice-"))

    def action_choose(self, choice_id: str) -> None:
        self.dismiss(choice_id)
