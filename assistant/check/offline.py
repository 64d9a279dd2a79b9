"""The offline checks of one sentence: spelling from the lexicon (``spelling.py``) and doubled
words, instant and free. Offsets are code points into the sentence."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .spelling import Speller

_WORD = re.compile(r"[^\W\d_]+(?:['’\-][^\W\d_]+)*")
_DOUBLED = re.compile(r"\b(\w+)([ \t]+)(\1)\b", re.IGNORECASE)
# Doubled on purpose often enough that flagging them would be noise.
_DOUBLE_ON_PURPOSE = frozenset({"had", "that", "is", "bye", "very", "no", "so", "ha", "really"})


@dataclass(frozen=True, slots=True)
class CheckFinding:
    start: int  # code points into the sentence (the server makes them document offsets)
    end: int
    replacement: str
    message: str
    source: str  # "offline" or the model that found it
    category: str  # spelling, doubled_word, grammar, word_choice

    def moved(self, by: int) -> CheckFinding:
        return CheckFinding(
            self.start + by,
            self.end + by,
            self.replacement,
            self.message,
            self.source,
            self.category,
        )


def _match_case(word: str, replacement: str) -> str:
    if word[:1].isupper():
        return replacement[:1].upper() + replacement[1:]
    return replacement


def offline_findings(sentence: str, speller: Speller | None) -> list[CheckFinding]:
    """Misspelled and doubled words of ``sentence``, in order. Without a speller (the lexicon
    is still loading, or wordfreq is missing) only the doubled words."""
    found: list[CheckFinding] = []
    for m in _DOUBLED.finditer(sentence):
        word = m.group(1)
        if word.isdigit() or word.lower() in _DOUBLE_ON_PURPOSE:
            continue
        # Remove the second word and the space before it: "the the cat" -> "the cat".
        found.append(
            CheckFinding(m.end(1), m.end(), "", f'"{word}" is repeated.', "offline", "doubled_word")
        )
    if speller is not None:
        # A capitalised first word is checked only in a sentence with its full stop: a line
        # without one ("Ines", "Best wishes") is a name, a sign-off or a heading.
        first = sentence.rstrip("\"')]’” ").endswith((".", "!", "?"))
        for m in _WORD.finditer(sentence):
            word, starts_sentence = m.group(), first
            first = False
            if "'" in word or "’" in word or "-" in word:
                continue
            capitalised = word[:1].isupper()
            if capitalised and (not starts_sentence or not word[1:].islower()):
                continue  # a name or an acronym: not ours to spell
            correction = speller.correct(word.lower(), capitalised=capitalised)
            if correction is None:
                continue
            right = _match_case(word, correction.replacement)
            found.append(
                CheckFinding(
                    m.start(),
                    m.end(),
                    right,
                    f'"{word}" looks misspelled: "{right}"?',
                    "offline",
                    "spelling",
                )
            )
    found.sort(key=lambda f: f.start)
    return found
