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
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, replace
from typing import Protocol

from .config import Settings
from .pricing import Usage

SEVERITIES = ("high", "medium", "low")

SURFACE_CLASSES = ("spelling", "doubled_word", "spacing", "grammar")
REASONING_CLASSES = ("numbers", "fact", "argument", "structure", "tone")
CLASSES = SURFACE_CLASSES + REASONING_CLASSES

FINDING_ITEM: dict = {
    "type": "object",
    "properties": {
        "quote": {"type": "string"},
        "problem": {"type": "string"},
        "replacement": {"type": "string"},
        "severity": {"type": "string", "enum": list(SEVERITIES)},
        "category": {"type": "string", "enum": list(CLASSES)},
        "confidence": {"type": "number"},
    },
    "required": ["quote", "problem", "replacement", "severity", "category", "confidence"],
    "additionalProperties": False,
}

FINDINGS_SCHEMA: dict = {
    "type": "object",
    "properties": {"findings": {"type": "array", "items": FINDING_ITEM}},
    "required": ["findings"],
    "additionalProperties": False,
}

REVIEW_SYSTEM = """\
You are a careful copy editor reviewing a document for its author. The document is in \
<document> tags. If <edits> follow it, the author has edited it since: each edit gives "at" (an \
offset into the text in <document>), "old" (the text there) and "new" (what replaced it); \
review the document as it is after the edits and quote its current text.

Report real problems only, each with:
- quote: the exact text with the problem, copied character for character from the current \
document, as short as possible while still unique;
- problem: one short sentence;
- replacement: the text that should replace the whole quote;
- severity: "high", "medium" or "low";
- category: spelling, doubled_word, spacing, grammar (surface), or numbers (figures that \
disagree), fact (a wrong fact), argument (a conclusion that does not follow), structure, tone \
(reasoning);
- confidence: from 0 to 1, how sure you are that this is a real problem and the fix is right.

Do not restyle text that is already correct. List findings in document order."""


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


# ---------------------------------------------------------------------------------------------
# Requests


def review_params(text: str, *, model: str, max_tokens: int) -> dict:
    """The review request, shaped by the model's rules in models.toml: up-front thinking kept off
    (it would delay the first finding and eat ``max_tokens``), and the findings schema sent as
    structured output where the model takes it (else the prompt alone asks for the JSON)."""
    from .pricing import ModelRules, default_catalog

    rules = default_catalog().rules(model) or ModelRules()
    params: dict = {
        "model": model,
        "max_tokens": rules.tokens(max_tokens),
        "system": REVIEW_SYSTEM,
        "messages": [
            {
                "role": "user",
                "content": f"Review this document.\n\n<document>{text}</document>",
            }
        ],
    }
    extra = rules.quiet_thinking()
    if rules.structured_output:
        output_config = dict(extra.pop("output_config", {}))
        output_config["format"] = {"type": "json_schema", "schema": FINDINGS_SCHEMA}
        params["output_config"] = output_config
    if extra:
        params["extra_body"] = extra
    return params


# ---------------------------------------------------------------------------------------------
# Offline rules

MISSPELLINGS = {
    "teh": "the",
    "recieve": "receive",
    "recieved": "received",
    "seperate": "separate",
    "seperately": "separately",
    "definately": "definitely",
    "occured": "occurred",
    "occurence": "occurrence",
    "wich": "which",
    "alot": "a lot",
    "accomodate": "accommodate",
    "acheive": "achieve",
    "adress": "address",
    "begining": "beginning",
    "beleive": "believe",
    "calender": "calendar",
    "commited": "committed",
    "concious": "conscious",
    "enviroment": "environment",
    "existance": "existence",
    "foward": "forward",
    "goverment": "government",
    "independant": "independent",
    "untill": "until",
    "neccessary": "necessary",
    "noticable": "noticeable",
    "occassion": "occasion",
    "persue": "pursue",
    "posession": "possession",
    "prefered": "preferred",
    "publically": "publicly",
    "realy": "really",
    "recomend": "recommend",
    "refered": "referred",
    "relevent": "relevant",
    "succesful": "successful",
    "tommorow": "tomorrow",
    "tomorow": "tomorrow",
    "truely": "truly",
    "wierd": "weird",
    "thier": "their",
    "becuase": "because",
    "freind": "friend",
    "arguement": "argument",
}

LONG_SENTENCE_WORDS = 40
_LOWER_I = re.compile(r"((?:[\w,;:]+[ \t]+)?)(?<![\w'’])i(?![\w'’-])((?:[ \t]+[\w,;:.!?]+)?)")
_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+|$)", re.MULTILINE)


def _match_case(word: str, replacement: str) -> str:
    if word.isupper() and len(word) > 1:
        return replacement.upper()
    if word[:1].isupper():
        return replacement[:1].upper() + replacement[1:]
    return replacement


def rule_findings(text: str) -> list[dict]:
    """Mechanical findings, in document order; every quote is a substring of ``text``."""
    found: list[tuple[int, dict]] = []

    def add(pos: int, quote: str, problem: str, replacement: str, severity: str) -> None:
        found.append(
            (
                pos,
                {
                    "quote": quote,
                    "problem": problem,
                    "replacement": replacement,
                    "severity": severity,
                },
            )
        )

    for m in re.finditer(r"\b(\w+)([ \t]+)(\1)\b", text, flags=re.IGNORECASE):
        if not m.group(1).isdigit():
            add(m.start(), m.group(), f'Repeated word "{m.group(1)}".', m.group(1), "medium")
    pattern = r"\b(" + "|".join(map(re.escape, MISSPELLINGS)) + r")\b"
    for m in re.finditer(pattern, text, flags=re.IGNORECASE):
        word = m.group()
        right = _match_case(word, MISSPELLINGS[word.lower()])
        add(m.start(), word, f'"{word}" is misspelled.', right, "high")
    for m in re.finditer(r"(\S+)( {2,})(?=(\S+))", text):
        quote = m.group(1) + m.group(2) + m.group(3)
        add(m.start(), quote, "Two spaces between words.", f"{m.group(1)} {m.group(3)}", "low")
    for m in _LOWER_I.finditer(text):
        # Quote the pronoun with its neighbours so the quote is specific enough to locate.
        before, after = m.group(1), m.group(2)
        add(
            m.start(),
            m.group(),
            'The pronoun "I" is written as a capital.',
            f"{before}I{after}",
            "medium",
        )
    for m in _SENTENCE.finditer(text):
        sentence = m.group().strip()
        if len(sentence.split()) > LONG_SENTENCE_WORDS:
            add(
                m.start() + m.group().index(sentence[0]),
                sentence,
                f"Long sentence ({len(sentence.split())} words): consider splitting it.",
                sentence,
                "low",
            )
    found.sort(key=lambda item: item[0])
    return [f for _, f in found]


class OfflineReviewer:
    """Rule-based findings when there is no API key: instant, free, limited to mechanics."""

    name = "offline"
    model = "offline-rules"

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings

    async def review(
        self, text: str, *, tier: str | None = None, document: str | None = None
    ) -> AsyncIterator[ReviewEvent]:
        """The rules' findings (``tier`` and ``document`` do not apply offline). Like every
        tier's, a finding whose replacement changes nothing (the long-sentence advice) is not
        shown: the writer could not apply it."""
        started = time.monotonic()
        locator = FindingLocator(text, require_change=True)
        for raw in rule_findings(text):
            finding = locator.locate(raw)
            if finding is not None:
                yield replace(finding, tier="offline")
        yield ReviewDone(
            findings=locator.count,
            model=self.model,
            usage=Usage(),
            cost_usd=0.0,
            latency_ms=(time.monotonic() - started) * 1000,
        )

    def forget(self, document: str) -> None:
        return None  # (the rules keep nothing between reviews)

    async def aclose(self) -> None:
        return None


def make_reviewer(settings: Settings):
    """The tiered Haiku-then-Sonnet reviewer when there is an API key, the rules otherwise."""
    if settings.has_key:
        from .review_tiered import TieredReviewer

        return TieredReviewer(settings)
    return OfflineReviewer(settings)
