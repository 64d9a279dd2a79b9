"""One line at the bottom, most important first (the row is cut at the right edge): ``modified``
while there are unsaved changes, the connection, what the session has spent (dollars and tokens,
from ``done`` and ``review_done`` frames), any server note, the last suggestion's
source/model/latency, and what the writer got from suggestions this session (share of shown
suggestions accepted, characters saved net of the accept keys)."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from assistant.pricing import Usage
from assistant.suggest.usefulness import Usefulness

_STATE_STYLE = {
    "connected": "green",
    "connecting": "yellow",
    "reconnecting": "bold yellow",
    "rate limited": "bold magenta",
    "connected (offline)": "green",
    "offline fallback": "cyan",
    "closed": "red",
}


class StatusBar(Static):
    connection: reactive[str] = reactive("connecting")
    source: reactive[str] = reactive("")
    model: reactive[str] = reactive("")
    latency_ms: reactive[float | None] = reactive(None)
    tokens: reactive[int] = reactive(0)
    cost_usd: reactive[float] = reactive(0.0)
    dirty: reactive[bool] = reactive(False)
    shown: reactive[int] = reactive(0)
    accepted: reactive[int] = reactive(0)
    chars_saved: reactive[int] = reactive(0)
    note: reactive[str] = reactive("")

    def record_usage(self, usage: dict | Usage | None, cost_usd: float | None) -> None:
        """Add one request's usage and cost to the session totals."""
        if isinstance(usage, Usage):
            usage = usage.to_dict()
        if isinstance(usage, dict):
            self.tokens += sum(
                int(usage.get(k) or 0)
                for k in (
                    "input_tokens",
                    "output_tokens",
                    "cache_creation_input_tokens",
                    "cache_read_input_tokens",
                )
            )
        self.cost_usd += float(cost_usd or 0.0)

    def record_usefulness(self, counts: Usefulness) -> None:
        """The session's suggestions so far (a suggestion counts once it has left the screen)."""
        self.shown, self.accepted, self.chars_saved = (
            counts.shown,
            counts.accepted,
            counts.chars_saved,
        )

    def render(self) -> Text:
        # Most important first: the row is cut at the right edge when it is too long, and an
        # unsaved change, the connection and the money must never be the part cut off.
        text = Text(no_wrap=True, overflow="ellipsis")
        if self.dirty:
            text.append("modified", style="bold yellow")
            text.append("  │  ")
        text.append("● ", style=_STATE_STYLE.get(self.connection, "red"))
        text.append(self.connection, style=_STATE_STYLE.get(self.connection, "red"))
        text.append("  │  ")
        text.append(f"${self.cost_usd:.4f}  {self.tokens:,} tok")
        if self.note:
            text.append("  │  ")
            text.append(self.note, style="italic")
        if self.source:
            text.append("  │  ")
            text.append(self.source, style="bold")
            if self.model:
                text.append(f" {self.model}")
            if self.latency_ms is not None:
                text.append(f" {self.latency_ms:.0f} ms")
        if self.shown:
            text.append("  │  ")
            text.append(
                f"accepted {self.accepted}/{self.shown} ({100 * self.accepted / self.shown:.0f}%)"
                f"  {self.chars_saved:,} chars saved"
            )
        return text
