"""What a tiered review shows the writer, from what each tier returned. Sans-I/O.

Haiku reads the whole document first. Its surface findings (spelling, doubled words, spacing,
grammar) that it is sure of are shown at once; every reasoning-class finding (numbers, facts,
arguments, structure, tone), and every surface finding it is unsure of, waits for Sonnet, which
sees only the passages around them and around Haiku's flags. Sonnet confirms, corrects or drops
each waiting finding and adds its own; a Haiku finding is never shown in a reasoning class
unless Sonnet confirmed it (Haiku fails quietly, with confident wrong answers, on exactly those).

Guards for every tier: a finding is shown only if its quote occurs in the reviewed text and its
replacement changes it; when Sonnet and a finding already shown disagree on one span, Sonnet
wins (the earlier one is retracted). A tier that fails leaves what the other can do, with a note.

The router takes raw finding/flag/verdict dicts and returns events; the caller does the I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from .findings import REASONING_CLASSES, Finding, FindingLocator, FindingRetracted

CONFIDENT = 0.8  # a Haiku surface finding at least this sure is shown without Sonnet
_SENTENCE_END = re.compile(r"[.!?](?=\s)|\n")

RouterEvent = Finding | FindingRetracted


@dataclass(frozen=True)
class VerifyPlan:
    """What Sonnet is asked: passages (text windows of the document, in order), the Haiku
    findings waiting for a verdict (``items``, with ids) and those already shown there."""

    windows: list[tuple[int, int]]
    passages: list[str]
    items: list[dict]
    shown: list[dict]
    item_windows: list[int] = field(default_factory=list)  # the window of each item, by id
    shown_windows: list[int] = field(default_factory=list)

    def items_in(self, window: int) -> list[dict]:
        return [item for item, w in zip(self.items, self.item_windows, strict=True) if w == window]

    def subset(self, windows: list[int]) -> VerifyPlan:
        """The plan for some of its windows only (item ids unchanged)."""
        keep = set(windows)
        pairs = [(i, w) for i, w in zip(self.items, self.item_windows, strict=True) if w in keep]
        shown = [(s, w) for s, w in zip(self.shown, self.shown_windows, strict=True) if w in keep]
        return VerifyPlan(
            [self.windows[w] for w in windows],
            [self.passages[w] for w in windows],
            [i for i, _ in pairs],
            [s for s, _ in shown],
            [w for _, w in pairs],
            [w for _, w in shown],
        )


def is_reasoning(category: str) -> bool:
    return category in REASONING_CLASSES


def sentence_window(text: str, start: int, end: int, around: int = 1) -> tuple[int, int]:
    """``[start, end)`` widened to whole sentences, plus ``around`` sentences each side (never
    across a blank line)."""
    para_start = text.rfind("\n\n", 0, start)
    para_start = 0 if para_start < 0 else para_start + 2
    para_end = text.find("\n\n", end)
    para_end = len(text) if para_end < 0 else para_end
    bounds = [para_start]
    bounds += [m.end() for m in _SENTENCE_END.finditer(text, para_start, para_end)]
    bounds.append(para_end)
    before = [b for b in bounds if b <= start]
    after = [b for b in bounds if b >= end]
    lo = before[max(0, len(before) - 1 - around)] if before else para_start
    hi = after[min(len(after) - 1, around)] if after else para_end
    while lo < hi and text[lo].isspace():
        lo += 1
    return lo, max(hi, end)


def merge_windows(windows: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(windows):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def _overlaps(a: Finding, b: Finding) -> bool:
    return a.start < b.end and b.start < a.end


@dataclass
class ReviewRouter:
    """One review of ``text``. ``mode``: ``auto`` (tiered), ``haiku`` or ``sonnet`` (one tier)."""

    text: str
    mode: str = "auto"
    confident: float = CONFIDENT
    shown: list[Finding] = field(default_factory=list)
    waiting: list[Finding] = field(default_factory=list)
    withheld: int = 0
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._locator = FindingLocator(self.text, require_change=True)
        self._flags: list[tuple[int, int]] = []
        self._plan_items: dict[int, Finding] = {}
        self._next_index = 0

    # -- showing ---------------------------------------------------------------------------------

    def _show(self, finding: Finding) -> list[RouterEvent]:
        """Show ``finding`` unless it repeats one already shown; Sonnet wins a contradiction."""
        events: list[RouterEvent] = []
        for old in list(self.shown):
            if not _overlaps(old, finding):
                continue
            same = old.quote == finding.quote and old.replacement == finding.replacement
            if same:
                return events
            if finding.confirmed and not old.confirmed:
                self.shown.remove(old)
                events.append(FindingRetracted(old.index, "contradicted by Sonnet"))
            elif not finding.confirmed and old.confirmed:
                return events
        shown = replace(finding, index=self._next_index)
        self._next_index += 1
        self.shown.append(shown)
        events.append(shown)
        return events

    def _locate(self, raw: dict, tier: str, confirmed: bool) -> Finding | None:
        finding = self._locator.locate(raw)
        if finding is None:
            return None
        return replace(finding, tier=tier, confirmed=confirmed)

    # -- Haiku -----------------------------------------------------------------------------------

    def from_haiku(self, raw: dict) -> list[RouterEvent]:
        finding = self._locate(raw, "haiku", confirmed=False)
        if finding is None:
            return []
        if is_reasoning(finding.category):
            if self.mode == "auto":
                self.waiting.append(finding)
            else:
                self.withheld += 1
            return []
        sure = finding.confidence is None or finding.confidence >= self.confident
        if sure or self.mode == "haiku":
            return self._show(finding)
        self.waiting.append(finding)
        return []

    def flag(self, raw: dict) -> None:
        """A passage Haiku wants Sonnet to read (with the passages it must be read with)."""
        quotes = [raw.get("quote")]
        related = raw.get("related")
        if isinstance(related, list):
            quotes += related
        for quote in quotes:
            if isinstance(quote, str) and quote:
                start = self.text.find(quote)
                if start >= 0:
                    self._flags.append((start, start + len(quote)))

    def haiku_failed(self, reason: str) -> None:
        """Haiku is gone: Sonnet reviews the whole document instead; nothing waits for it."""
        self.waiting.clear()
        self._flags.clear()
        self.notes.append(f"Haiku failed ({reason}): Sonnet reviewed the whole document.")

    # -- Sonnet ----------------------------------------------------------------------------------

    def plan(self) -> VerifyPlan | None:
        """What Sonnet should check after Haiku, or None when nothing needs it."""
        spans = [(f.start, f.end) for f in self.waiting] + self._flags
        if not spans:
            return None
        windows = merge_windows([sentence_window(self.text, a, b) for a, b in spans])
        self._plan_items = dict(enumerate(self.waiting))

        def window_of(f: Finding) -> int | None:
            return next((w for w, (lo, hi) in enumerate(windows) if lo <= f.start < hi), None)

        items = [
            {
                "id": i,
                "quote": f.quote,
                "problem": f.problem,
                "replacement": f.replacement,
                "category": f.category,
            }
            for i, f in self._plan_items.items()
        ]
        item_windows = [window_of(f) or 0 for f in self._plan_items.values()]
        shown_pairs = [(f, window_of(f)) for f in self.shown]
        shown = [
            {"quote": f.quote, "replacement": f.replacement}
            for f, w in shown_pairs
            if w is not None
        ]
        shown_windows = [w for _, w in shown_pairs if w is not None]
        passages = [self.text[lo:hi] for lo, hi in windows]
        return VerifyPlan(windows, passages, items, shown, item_windows, shown_windows)

    def verdict(self, raw: dict) -> list[RouterEvent]:
        item = self._plan_items.pop(raw.get("id"), None) if isinstance(raw.get("id"), int) else None
        if item is None:
            return []
        self.waiting.remove(item)
        verdict = raw.get("verdict")
        if verdict == "confirm":
            return self._show(replace(item, confirmed=True))
        if verdict == "correct":
            quote = raw.get("quote") or item.quote
            replacement = raw.get("replacement")
            if not isinstance(quote, str) or not isinstance(replacement, str):
                return []
            start = self.text.find(quote, max(0, item.start - len(quote)))
            if start < 0 or start > item.end:
                start = self.text.find(quote)
            if start < 0 or replacement == quote:
                return []
            problem = raw.get("problem") if isinstance(raw.get("problem"), str) else item.problem
            corrected = replace(
                item,
                quote=quote,
                replacement=replacement,
                problem=problem,
                start=start,
                end=start + len(quote),
                tier="sonnet",
                confirmed=True,
            )
            return self._show(corrected)
        return []  # dropped

    def from_sonnet(self, raw: dict) -> list[RouterEvent]:
        finding = self._locate(raw, "sonnet", confirmed=True)
        if finding is None:
            return []
        return self._show(finding)

    def sonnet_done(self) -> list[RouterEvent]:
        """Sonnet finished: findings it gave no verdict on stay unshown (unconfirmed)."""
        self._withhold_waiting()
        return []

    def sonnet_failed(self, reason: str) -> list[RouterEvent]:
        waiting = len(self.waiting)
        self._withhold_waiting()
        note = f"Sonnet failed ({reason}): surface findings only"
        if waiting:
            note += (
                f"; {waiting} finding(s) Haiku was unsure of or that need reasoning were not shown"
            )
        self.notes.append(note + ".")
        return []

    def _withhold_waiting(self) -> None:
        self.withheld += len(self.waiting)
        self.waiting.clear()
        self._plan_items.clear()

    # -- offline ---------------------------------------------------------------------------------

    def from_offline(self, raw: dict) -> list[RouterEvent]:
        finding = self._locate(raw, "offline", confirmed=False)
        return [] if finding is None else self._show(finding)

    @property
    def note(self) -> str:
        notes = list(self.notes)
        if self.mode == "haiku" and self.withheld:
            notes.append(
                f"{self.withheld} reasoning finding(s) withheld: Haiku alone is not trusted with "
                "them (use --tier auto to have Sonnet check them)."
            )
        return " ".join(notes)
