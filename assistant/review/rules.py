"""The offline review: mechanical findings from rules (doubled words, common misspellings,
spacing, a lower-case pronoun "I", long sentences), instant and free, for when there is no key."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from dataclasses import replace

from ..config import Settings
from ..pricing import Usage
from .findings import FindingLocator, ReviewDone, ReviewEvent

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
