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
from .pricing import Usage, cost_usd
from .providers.base import Final, ProviderError, ProviderErrorKind

SEVERITIES = ("high", "medium", "low")

FINDINGS_SCHEMA: dict = {
    "type": "object",
    "properties": {
        "findings": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "quote": {"type": "string"},
                    "problem": {"type": "string"},
                    "replacement": {"type": "string"},
                    "severity": {"type": "string", "enum": list(SEVERITIES)},
                },
                "required": ["quote", "problem", "replacement", "severity"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["findings"],
    "additionalProperties": False,
}

REVIEW_SYSTEM = """\
You are a careful copy editor reviewing a document for its author.

The user's message holds the document inside <document> tags. Return only findings for real \
problems: spelling, grammar, punctuation, clarity, consistency and tone. Do not comment on \
content you merely disagree with, and do not restyle text that is already correct.

For each finding give:
- quote: the exact text from the document that has the problem, copied character for character \
(same case, spacing and punctuation), as short as possible while still unique in the document;
- problem: one short sentence saying what is wrong;
- replacement: the text that should replace the quote (the whole quote, corrected);
- severity: "high" (an error a reader will notice), "medium" (awkward or inconsistent) or \
"low" (a matter of polish).

List findings in the order they appear in the document. If there is nothing to fix, return an \
empty list."""


# ---------------------------------------------------------------------------------------------
# Events


@dataclass(frozen=True)
class Finding:
    """One problem. ``start``/``end`` locate ``quote`` in the reviewed text (code points)."""

    index: int
    quote: str
    problem: str
    replacement: str
    severity: str
    start: int
    end: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ReviewDelta:
    text: str


@dataclass(frozen=True)
class ReviewDone:
    findings: int
    model: str
    usage: Usage
    cost_usd: float
    latency_ms: float


ReviewEvent = ReviewDelta | Finding | ReviewDone


class StaleFinding(Exception):
    """The text no longer holds the finding's quote where (or only where) it was found."""


class Reviewer(Protocol):
    name: str
    model: str

    def review(self, text: str) -> AsyncIterator[ReviewEvent]: ...

    async def aclose(self) -> None: ...


# ---------------------------------------------------------------------------------------------
# Incremental parsing of the streamed JSON


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
        self.saw_root = False
        self.closed = False

    @property
    def text(self) -> str:
        return self._text

    def feed(self, chunk: str) -> list[dict]:
        self._text += chunk
        found: list[dict] = []
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
                        found.append(obj)
        self._pos = len(text)
        return found


# ---------------------------------------------------------------------------------------------
# Validation and application


class FindingLocator:
    """Turns raw finding dicts into :class:`Finding`s for one text, dropping invalid ones.

    A quote that appears several times is located at its first occurrence not already taken by
    an earlier finding with the same quote, so two "teh" findings point at two different places.
    """

    def __init__(self, text: str) -> None:
        self.text = text
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
        finding = Finding(self.count, quote, problem.strip(), replacement, severity, start, end)
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
# Sonnet


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


def _cost(model: str, usage: Usage, fallback_model: str) -> float:
    for name in (model, fallback_model):
        try:
            return cost_usd(name, usage)
        except KeyError:
            continue
    return 0.0


class AnthropicReviewer:
    """Findings from the review model (Sonnet), streamed with structured JSON output."""

    name = "anthropic"

    def __init__(self, settings: Settings, *, client=None) -> None:
        from .providers.anthropic import make_client

        self.settings = settings
        self.model = settings.review_model
        self._own_client = client is None
        self.client = client or make_client(
            settings,
            timeout=settings.review_timeout_s,
            connect_timeout=max(settings.suggest_connect_timeout_s, 5.0),
            max_retries=2,
        )

    async def review(self, text: str) -> AsyncIterator[ReviewEvent]:
        from .providers.anthropic import stream_messages

        started = time.monotonic()
        params = review_params(text, model=self.model, max_tokens=self.settings.review_max_tokens)
        scanner = FindingsScanner()
        locator = FindingLocator(text)
        final: Final | None = None
        stream = stream_messages(self.client, params, provider=self.name)
        try:
            async for event in stream:
                if isinstance(event, Final):
                    final = event
                    continue
                yield ReviewDelta(event.text)
                for raw in scanner.feed(event.text):
                    finding = locator.locate(raw)
                    if finding is not None:
                        yield finding
        finally:
            await stream.aclose()
        if not scanner.saw_root and scanner.text.strip():
            raise ProviderError(ProviderErrorKind.INTERNAL, "the review reply was not JSON")
        assert final is not None
        yield ReviewDone(
            findings=locator.count,
            model=final.model or self.model,
            usage=final.usage,
            cost_usd=_cost(final.model, final.usage, self.model),
            latency_ms=(time.monotonic() - started) * 1000,
        )

    async def aclose(self) -> None:
        if self._own_client:
            try:
                await self.client.close()
            except Exception:
                pass


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

    async def review(self, text: str) -> AsyncIterator[ReviewEvent]:
        started = time.monotonic()
        locator = FindingLocator(text)
        for raw in rule_findings(text):
            finding = locator.locate(raw)
            if finding is not None:
                yield finding
        yield ReviewDone(
            findings=locator.count,
            model=self.model,
            usage=Usage(),
            cost_usd=0.0,
            latency_ms=(time.monotonic() - started) * 1000,
        )

    async def aclose(self) -> None:
        return None


def make_reviewer(settings: Settings) -> AnthropicReviewer | OfflineReviewer:
    """Sonnet when there is an API key, the rules otherwise."""
    if settings.has_key:
        return AnthropicReviewer(settings)
    return OfflineReviewer(settings)
