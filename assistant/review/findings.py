"""Deep review of a whole document: findings from Sonnet (or from rules when there is no key).

A reviewer turns a document into an async stream of events: ``ReviewDelta`` (raw streamed text,
for a progress display), ``Finding`` (one per problem, as soon as it is complete) and exactly one
``ReviewDone`` (counts, usage, cost). Findings arrive while the model is still writing because
:class:`FindingsScanner` reads the streamed JSON incrementally and hands out each object of the
``findings`` array the moment its closing brace arrives.

Every finding's ``quote`` is an exact substring of the reviewed text (others are dropped), so it
can be located, highlighted and replaced. :func:`apply_finding` does the replacement and refuses
(``StaleFinding``) rather than guess when the text has changed under the finding.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, replace
from typing import Protocol

from ..pricing import Usage

SEVERITIES = ("high", "medium", "low")

SURFACE_CLASSES = ("spelling", "doubled_word", "spacing", "grammar")
REASONING_CLASSES = ("numbers", "fact", "argument", "structure", "tone")
CLASSES = SURFACE_CLASSES + REASONING_CLASSES

# ---------------------------------------------------------------------------------------------
# Events


@dataclass(frozen=True)
class Finding:
    """One problem. ``start``/``end`` locate ``quote`` in the reviewed text (code points).

    ``tier`` says who found it (``haiku``, ``sonnet``, ``offline``); ``confirmed`` whether Sonnet
    found or confirmed it; ``category`` is its class (``spelling``, ``numbers``...) and
    ``confidence`` the finding model's own, when it gave one.
    """

    index: int
    quote: str
    problem: str
    replacement: str
    severity: str
    start: int
    end: int
    tier: str = ""
    confidence: float | None = None
    confirmed: bool = False
    category: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class FindingRetracted:
    """A finding shown earlier is withdrawn (Sonnet contradicted it): remove it from view."""

    index: int
    reason: str


@dataclass(frozen=True)
class ReviewDelta:
    text: str


@dataclass(frozen=True)
class TierReport:
    """What one tier of a review did and cost. ``status``: ``ok``, ``failed`` (``error`` says
    why), ``skipped`` (nothing for it to do) or ``reused`` (same request as before: its earlier
    answer was replayed without a call)."""

    tier: str
    model: str
    status: str = "ok"
    usage: Usage = Usage()
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    error: str = ""

    def to_dict(self) -> dict:
        d = asdict(self)
        d["usage"] = self.usage.to_dict()
        return d


@dataclass(frozen=True)
class ReviewDone:
    findings: int
    model: str
    usage: Usage
    cost_usd: float
    latency_ms: float
    tiers: tuple[TierReport, ...] = ()
    note: str = ""  # a degraded review says so here
    withheld: int = 0  # reasoning-class findings not shown because Sonnet did not confirm them


ReviewEvent = ReviewDelta | Finding | FindingRetracted | ReviewDone


class StaleFinding(Exception):
    """The text no longer holds the finding's quote where (or only where) it was found."""


class Reviewer(Protocol):
    name: str
    model: str

    def review(
        self, text: str, *, tier: str | None = None, document: str | None = None
    ) -> AsyncIterator[ReviewEvent]: ...

    async def aclose(self) -> None: ...


# ---------------------------------------------------------------------------------------------
# Incremental parsing of the streamed JSON


_ROOT_KEY = re.compile(r'"(\w+)"\s*:\s*$')


class FindingsScanner:
    """Feeds on chunks of ``{"findings":[{...},{...}]}`` and returns each object once complete.

    A character-level scanner that tracks strings (with escapes) and nesting; an object whose
    container is an array directly inside the root object is a finding. Text before the root
    object (a code fence, a preamble) is skipped, so is anything after it closes.
    """

    def __init__(self) -> None:
        self._text = ""
        self._pos = 0
        self._stack: list[str] = []
        self._in_string = False
        self._escaped = False
        self._object_start: int | None = None
        self._key = ""
        self.saw_root = False
        self.closed = False

    @property
    def text(self) -> str:
        return self._text

    def feed(self, chunk: str) -> list[dict]:
        return [obj for _, obj in self.feed_keyed(chunk)]

    def feed_keyed(self, chunk: str) -> list[tuple[str, dict]]:
        """Like :meth:`feed`, each object with the key of the root array it is in."""
        self._text += chunk
        found: list[tuple[str, dict]] = []
        text = self._text
        for i in range(self._pos, len(text)):
            if self.closed:
                break
            c = text[i]
            if self._in_string:
                if self._escaped:
                    self._escaped = False
                elif c == "\\":
                    self._escaped = True
                elif c == '"':
                    self._in_string = False
                continue
            if not self._stack:
                if c == "{":
                    self._stack.append("{")
                    self.saw_root = True
                continue
            if c == '"':
                self._in_string = True
            elif c == "{" or c == "[":
                if c == "{" and self._stack == ["{", "["]:
                    self._object_start = i
                elif c == "[" and self._stack == ["{"]:
                    key = _ROOT_KEY.search(text, max(0, i - 200), i)
                    self._key = key.group(1) if key else ""
                self._stack.append(c)
            elif c == "}" or c == "]":
                self._stack.pop()
                if not self._stack:
                    self.closed = True
                elif c == "}" and self._stack == ["{", "["] and self._object_start is not None:
                    raw = text[self._object_start : i + 1]
                    self._object_start = None
                    try:
                        obj = json.loads(raw)
                    except ValueError:
                        continue
                    if isinstance(obj, dict):
                        found.append((self._key, obj))
        self._pos = len(text)
        return found


# ---------------------------------------------------------------------------------------------
# Validation and application


class FindingLocator:
    """Turns raw finding dicts into :class:`Finding`s for one text, dropping invalid ones.

    A quote that appears several times is located at its first occurrence not already taken by
    an earlier finding with the same quote, so two "teh" findings point at two different places.
    """

    def __init__(self, text: str, *, require_change: bool = False) -> None:
        self.text = text
        self.require_change = require_change  # drop findings whose replacement changes nothing
        self.count = 0
        self.dropped = 0
        self._taken: dict[str, int] = {}  # quote -> end of the last occurrence handed out

    def locate(self, raw: dict) -> Finding | None:
        quote = raw.get("quote")
        problem = raw.get("problem", "")
        replacement = raw.get("replacement", "")
        severity = raw.get("severity", "medium")
        if not isinstance(quote, str) or not quote or not isinstance(replacement, str):
            self.dropped += 1
            return None
        if self.require_change and replacement == quote:
            self.dropped += 1
            return None
        if not isinstance(problem, str):
            problem = str(problem)
        severity = severity.lower() if isinstance(severity, str) else "medium"
        if severity not in SEVERITIES:
            severity = "medium"
        start = self.text.find(quote, self._taken.get(quote, 0))
        if start < 0:
            start = self.text.find(quote)
        if start < 0:
            self.dropped += 1
            return None
        end = start + len(quote)
        self._taken[quote] = end
        category = raw.get("category")
        confidence = raw.get("confidence")
        if isinstance(confidence, bool) or not isinstance(confidence, int | float):
            confidence = None
        finding = Finding(
            self.count,
            quote,
            problem.strip(),
            replacement,
            severity,
            start,
            end,
            category=category if isinstance(category, str) else "",
            confidence=None if confidence is None else max(0.0, min(1.0, float(confidence))),
        )
        self.count += 1
        return finding


def locate_finding(text: str, finding: Finding) -> tuple[int, int]:
    """Where ``finding``'s quote is in ``text`` now: its recorded span if it still matches, else
    the one place the quote occurs. Raises :class:`StaleFinding` otherwise."""
    quote = finding.quote
    if (
        0 <= finding.start <= finding.end <= len(text)
        and text[finding.start : finding.end] == quote
    ):
        return finding.start, finding.end
    first = text.find(quote)
    if first < 0:
        raise StaleFinding(f"the text no longer contains {_clip(quote)}; finding not applied")
    if text.find(quote, first + 1) >= 0:
        raise StaleFinding(
            f"{_clip(quote)} has moved and now occurs more than once; finding not applied"
        )
    return first, first + len(quote)


def apply_finding(text: str, finding: Finding) -> str:
    """``text`` with the finding's quote replaced; raises :class:`StaleFinding` (text untouched
    by the caller) when the quote cannot be found unambiguously."""
    start, end = locate_finding(text, finding)
    return text[:start] + finding.replacement + text[end:]


def rebase_finding(finding: Finding, start: int, end: int, new_length: int) -> Finding | None:
    """``finding`` after the span ``[start, end)`` was replaced by ``new_length`` characters:
    shifted when it lies after the edit, unchanged before it, None when the edit overlapped it."""
    if finding.end <= start:
        return finding
    if finding.start >= end:
        shift = new_length - (end - start)
        return replace(finding, start=finding.start + shift, end=finding.end + shift)
    return None


def _clip(quote: str, limit: int = 40) -> str:
    shown = quote if len(quote) <= limit else quote[: limit - 1] + "…"
    return json.dumps(shown, ensure_ascii=False)
