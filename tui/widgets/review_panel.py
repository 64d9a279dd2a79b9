"""The side panel of a deep review: findings listed as they stream in, one to apply or skip.

Each row shows severity, the quoted text, the problem and the proposed replacement, and which
tier found it (Haiku, Sonnet, or Haiku confirmed by Sonnet); the status line ends with the cost
split by tier. Moving
through the list posts ``Selected`` (the app highlights the span in the editor); Enter or ``a``
posts ``ApplyRequested``, ``s`` posts ``Skipped``. The panel only displays; the app decides
whether a finding still applies and tells the panel to drop or update rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from assistant.review.findings import Finding
from assistant.review.frames import tier_label

_SEVERITY_STYLE = {"high": "bold red", "medium": "bold yellow", "low": "bold blue"}


def finding_row(finding: Finding) -> Text:
    quote = finding.quote if len(finding.quote) <= 60 else finding.quote[:59] + "…"
    text = Text()
    text.append(f"{finding.severity.upper():<6}", style=_SEVERITY_STYLE.get(finding.severity, ""))
    text.append(" ")
    text.append(repr(quote)[1:-1] if "\n" in quote else quote, style="strike")
    if finding.replacement != finding.quote:
        replacement = finding.replacement
        if len(replacement) > 60:
            replacement = replacement[:59] + "…"
        text.append(" → ")
        text.append(replacement.replace("\n", "⏎"), style="bold green")
    text.append("\n")
    text.append(finding.problem, style="italic")
    tag = tier_label(finding)
    if tag:
        text.append(f"  [{tag}]", style="dim")
    return text


class ReviewPanel(Vertical):
    BINDINGS = [
        Binding("a", "apply", "Apply", show=True),
        Binding("s", "skip", "Skip", show=True),
    ]

    @dataclass
    class Selected(Message):
        finding: Finding

    @dataclass
    class ApplyRequested(Message):
        finding: Finding

    @dataclass
    class Skipped(Message):
        finding: Finding

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.findings: dict[str, Finding] = {}
        self.in_flight = False

    def compose(self) -> ComposeResult:
        yield Static("Deep review: Ctrl+R", id="review-status")
        yield OptionList(id="findings")

    @property
    def status(self) -> Static:
        return self.query_one("#review-status", Static)

    @property
    def option_list(self) -> OptionList:
        return self.query_one("#findings", OptionList)

    # -- driven by the app ----------------------------------------------------------------------

    def start(self) -> None:
        self.findings.clear()
        self.option_list.clear_options()
        self.in_flight = True
        self.status.update("Reviewing…")

    def progress(self, chars: int) -> None:
        if self.in_flight:
            self.status.update(f"Reviewing… {len(self.findings)} found ({chars:,} chars read)")

    def add_finding(self, finding: Finding) -> None:
        key = f"finding-{finding.index}"
        self.findings[key] = finding
        self.option_list.add_option(Option(finding_row(finding), id=key))
        if self.option_list.highlighted is None:
            self.option_list.highlighted = 0

    def finish(self, message: str) -> None:
        self.in_flight = False
        self.status.update(message)

    def update_finding(self, finding: Finding) -> None:
        key = f"finding-{finding.index}"
        if key in self.findings:
            self.findings[key] = finding

    def retract(self, index: int) -> None:
        """Sonnet withdrew a finding shown earlier: drop its row."""
        finding = self.findings.get(f"finding-{index}")
        if finding is not None:
            self.remove_finding(finding)

    def remove_finding(self, finding: Finding) -> None:
        key = f"finding-{finding.index}"
        if self.findings.pop(key, None) is None:
            return
        self.option_list.remove_option(key)

    def current(self) -> Finding | None:
        index = self.option_list.highlighted
        if index is None:
            return None
        option = self.option_list.get_option_at_index(index)
        return self.findings.get(option.id or "")

    def listed(self, finding: Finding) -> Finding | None:
        """The row's current version of ``finding`` (moved by edits since), or None when it is
        no longer listed (applied, skipped, retracted, or from an earlier review)."""
        row = self.findings.get(f"finding-{finding.index}")
        if row is None or (row.quote, row.replacement) != (finding.quote, finding.replacement):
            return None
        return row

    def rows(self) -> list[Finding]:
        return list(self.findings.values())

    # -- user input -----------------------------------------------------------------------------

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()
        finding = self.findings.get(event.option.id or "")
        if finding is not None:
            self.post_message(self.Selected(finding))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        finding = self.findings.get(event.option.id or "")
        if finding is not None:
            self.post_message(self.ApplyRequested(finding))

    def action_apply(self) -> None:
        finding = self.current()
        if finding is not None:
            self.post_message(self.ApplyRequested(finding))

    def action_skip(self) -> None:
        finding = self.current()
        if finding is not None:
            self.remove_finding(finding)
            self.post_message(self.Skipped(finding))
