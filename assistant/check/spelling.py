"""Spelling from the lexicon the statistical engine already loads (wordfreq's 50,000 most
frequent English words), with the replacement chosen by edit distance and frequency.

Precision over recall: a writer who is told "definately" is wrong learns to trust the
underline; one told "Kowalczyk" is wrong learns to ignore it. So a word is flagged only when

* it is lower case (or capitalised at the start of a sentence): names, acronyms and words with
  digits, apostrophes or hyphens are left alone; and
* it is absent from the lexicon and a lexicon word within two edits (a transposition counts as
  one) is frequent (``MIN_REPLACEMENT_FREQ``), or
* it is in the lexicon (or wordfreq's longer list) but rare, and a word one *typical* slip away
  (a letter left out, a letter doubled, two letters swapped, one vowel for another) is
  ``MISSPELLING_RATIO`` times more frequent (``DOUBLING_RATIO`` times for a doubled letter
  typed single or the reverse, or a swap: "occured", "accomodate", "becuase"). wordfreq counts web text, so its 50,000 words include the commonest misspellings
  ("definately", "untill", "wich"). On tests/data/review_corpus, allowing any edit here also
  flagged "zest" (best), "theses" (these), "wincing" (winning) and "offsite" (offside); the
  typical slips alone flag none of them (docs/performance.md, *Corrections as you type*).

Among candidates at the same distance, the likelier slip wins over the more frequent word:
"wich" is "which" (a letter left out), not "with" (a letter replaced), though "with" is the
commoner word.

Candidates come from a deletes index (SymSpell's idea): every lexicon word is filed under
itself and each string one deletion away, so a query looks up itself and its own deletions and
finds every word within two edits without generating the ~300,000 strings of a distance-2
search.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from ..providers.statistical import Lexicon, lexicon

MIN_WORD_LENGTH = 3
MIN_REPLACEMENT_FREQ = 1e-6  # about the 25,000th word: "frequent"
MISSPELLING_RATIO = 100.0  # a rare known word this much rarer than its neighbour is a typo
DOUBLING_RATIO = 20.0  # ... when the slip is a doubled letter or a swap (the commonest)
NAME_FACTOR = 3.0  # a capitalised first word may be a name ("Ines", not "Lines"): 3x the ratio
TYPICAL_SLIP = 0.5  # slip_weight at or above which a known word may still be a slip
DOUBLING = 1.0  # slip_weight of a doubled letter typed single (or the reverse) or a swap
RARE_FREQ = 3e-6  # only lexicon words rarer than this are suspected at all
MIN_DISTANCE_2_LENGTH = 7  # two edits only for long words: short ones have too many neighbours


@dataclass(frozen=True, slots=True)
class Correction:
    word: str
    replacement: str
    distance: int


def _deletes(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


_VOWELS = frozenset("aeiouy")


def slip_weight(word: str, candidate: str) -> float:
    """How likely typing ``candidate`` ends as ``word`` by one slip: 1 for a doubled letter
    typed single or a single one doubled ("occured", "untill") and for two letters swapped, 0.8
    for another letter left out, 0.5 for one vowel for another, 0.1 for any other letter added
    or replaced; 0 when they are not one edit apart."""
    if len(candidate) == len(word) + 1:  # a letter left out
        for i in range(len(candidate)):
            if candidate[:i] + candidate[i + 1 :] == word:
                return DOUBLING if _doubled(candidate, i) else 0.8
        return 0.0
    if len(word) == len(candidate) + 1:  # a letter added: doubled, or stray
        for i in range(len(word)):
            if word[:i] + word[i + 1 :] == candidate:
                return DOUBLING if _doubled(word, i) else 0.1
        return 0.0
    if len(word) != len(candidate):
        return 0.0
    diffs = [i for i in range(len(word)) if word[i] != candidate[i]]
    if len(diffs) == 2 and diffs[1] == diffs[0] + 1:
        i = diffs[0]
        if word[i] == candidate[i + 1] and word[i + 1] == candidate[i]:
            return DOUBLING  # (as likely: a swap)
    if len(diffs) == 1:
        i = diffs[0]
        return 0.5 if word[i] in _VOWELS and candidate[i] in _VOWELS else 0.1
    return 0.0


def _doubled(text: str, i: int) -> bool:
    return (i > 0 and text[i - 1] == text[i]) or text[i + 1 : i + 2] == text[i]


def distance(a: str, b: str) -> int:
    """Optimal string alignment distance (Levenshtein with adjacent transpositions)."""
    rows = [list(range(len(b) + 1))]
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            row[j] = min(rows[-1][j] + 1, row[j - 1] + 1, rows[-1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], rows[-2][j - 2] + 1)
        rows.append(row)
    return rows[-1][-1]


class Speller:
    """Flags misspelled words of one lexicon; stateless once built (safe to share)."""

    def __init__(self, lex: Lexicon) -> None:
        self.freq = dict(zip(lex.words, lex.freqs, strict=True))
        # Each deletion of a word -> the words it comes from, space-separated: one string per
        # key rather than a list: 30 MB of RSS instead of 59 MB for the 50,000 words.
        index: dict[str, str] = {}
        for word in lex.words:
            if len(word) < MIN_WORD_LENGTH:
                continue
            for key in _deletes(word):
                known = index.get(key)
                index[key] = word if known is None else f"{known} {word}"
        self._index = index

    def _candidates(self, word: str) -> dict[str, int]:
        found: set[str] = set()
        for key in _deletes(word) | {word}:
            words = self._index.get(key)
            if words is not None:
                found.update(words.split(" "))
            if key in self.freq and len(key) >= MIN_WORD_LENGTH:
                found.add(key)
        out = {}
        for candidate in found:
            if candidate != word:
                d = distance(word, candidate)
                if d <= 2:
                    out[candidate] = d
        return out

    def correct(self, word: str, *, capitalised: bool = False) -> Correction | None:
        """The correction for ``word`` (lower case), or None when it is fine or unsure.
        ``capitalised``: it was written with a capital (a sentence's first word), so it may be a
        name wordfreq knows: a known word needs ``NAME_FACTOR`` times
        the evidence."""
        if len(word) < MIN_WORD_LENGTH or not word.isalpha() or not word.islower():
            return None
        own = self.freq.get(word)
        if own is None:  # beyond the lexicon: wordfreq may still know it (a rare word, a name)
            own = _full_frequency(word) or None
        if own is not None and own >= RARE_FREQ:
            return None
        candidates = self._candidates(word)
        weighted = {c: self.freq[c] * slip_weight(word, c) for c, d in candidates.items() if d == 1}
        if own is not None:  # a rare lexicon word: only a typical slip of a far commoner word
            typical = [c for c in weighted if slip_weight(word, c) >= TYPICAL_SLIP]
            if typical:
                best, nearest = max(typical, key=weighted.__getitem__), 1
            elif not weighted and candidates and len(word) >= MIN_DISTANCE_2_LENGTH:
                best, nearest = max(candidates, key=self.freq.__getitem__), 2
            else:
                return None
            slip = slip_weight(word, best) if nearest == 1 else 0.0
            ratio = DOUBLING_RATIO if slip >= DOUBLING else MISSPELLING_RATIO
            if self.freq[best] < own * ratio * (NAME_FACTOR if capitalised else 1.0):
                return None
            return Correction(word, best, nearest)
        if weighted:
            best, nearest = max(weighted, key=weighted.__getitem__), 1
        elif candidates and len(word) >= MIN_DISTANCE_2_LENGTH:
            best, nearest = max(candidates, key=self.freq.__getitem__), 2
        else:
            return None
        if self.freq[best] < MIN_REPLACEMENT_FREQ:
            return None
        return Correction(word, best, nearest)


def _full_frequency(word: str) -> float:
    """wordfreq's frequency of ``word`` over its whole list (0 when unknown or not installed)."""
    try:
        import wordfreq
    except ImportError:
        return 0.0
    return wordfreq.word_frequency(word, "en")


_speller: Speller | None = None
_speller_lock = threading.Lock()


def speller(block: bool = True) -> Speller | None:
    """The process-wide speller (built from the process-wide lexicon, ~0.5 s once). With
    ``block=False`` it is None until the lexicon is loaded (that load runs in a thread)."""
    global _speller
    if _speller is not None:
        return _speller
    lex = lexicon(block=block)
    if lex is None:
        return None
    with _speller_lock:
        if _speller is None:
            _speller = Speller(lex)
    return _speller


def ready() -> Speller | None:
    """The speller if it is built, else None (never waits)."""
    return _speller
