"""The statistical engine: the instant offline fallback, a few hundred microseconds per call.

Two sources of knowledge:

* the document being edited, as per-document unigram/bigram/trigram counts. They are learned
  incrementally: the text is cut into sentences, and only sentences that appeared or vanished
  since the last call are counted in or out (at most ``LEARN_BUDGET_CHARS`` of new text per
  call, nearest the cursor first). Only the sentences around a change are re-split, so a
  keystroke costs the same whatever the document's length. While the user types inside a word
  nothing is relearned at all, because the fragment at the cursor is never learned.
* an English lexicon from ``wordfreq`` (the ``LEXICON_SIZE`` most frequent words), loaded once
  per process in a background thread and kept as a sorted list for prefix search by bisection.

Policy: finish the word at the cursor (document words first, then the lexicon), then add up to
three next words while the document's n-grams are confident. An empty suggestion is better than
a wrong one, so every step has a confidence floor.
"""

from __future__ import annotations

import asyncio
import bisect
import re
import threading
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from ..pricing import Usage
from .base import CompletionRequest, Final, StreamEvent, TextChunk

LEXICON_SIZE = 50_000
LEARN_BUDGET_CHARS = 2_000  # new text counted per call; the rest on the following calls
MAX_LEARN_CHARS = 60_000  # only this much text either side of the cursor is learned
MAX_DOCUMENTS = 4096  # one per connection of a busy server process
MAX_TOTAL_CHARS = 16_000_000  # text followed by all documents together (memory bound)
# Text followed by one writer's documents together: a model costs up to 87 bytes a character
# (5.2 MB for a 99k-character warm, random words), so 400k characters is about 35 MB. Past it
# the writer's own least recently used documents go: 320 warm frames of 99k characters grew a
# server by 1.4 GB and evicted 54 other writers' models.
MAX_WRITER_CHARS = 400_000
MAX_NEXT_WORDS = 3

# A word: letters/digits, with inner apostrophes or hyphens ("don't", "well-known").
_TOKEN = re.compile(r"[^\W_]+(?:['’\-][^\W_]+)*|[^\w\s]")
_FRAGMENT = re.compile(r"[^\W_][\w'’\-]*$")
_SUFFIX_WORD = re.compile(r"^[\w'’\-]+")
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+|\n+")
_LEXICON_WORD = re.compile(r"^[a-z]+(?:['\-][a-z]+)*$")


# --------------------------------------------------------------------------------------- lexicon


class Lexicon:
    """Frequent English words, sorted for prefix search; frequencies from wordfreq's buckets."""

    def __init__(self, words_with_freq: list[tuple[str, float]]):
        words_with_freq = sorted(words_with_freq)
        self.words = [w for w, _ in words_with_freq]
        self.freqs = [f for _, f in words_with_freq]
        self._cum = [0.0]
        total = 0.0
        for f in self.freqs:
            total += f
            self._cum.append(total)

    @classmethod
    def from_wordfreq(cls, size: int = LEXICON_SIZE) -> Lexicon:
        import wordfreq

        out: list[tuple[str, float]] = []
        for centibels, bucket in enumerate(wordfreq.get_frequency_list("en")):
            freq = 10 ** (-centibels / 100)
            out.extend((w, freq) for w in bucket if _LEXICON_WORD.match(w))
            if len(out) >= size:
                break
        return cls(out[:size])

    def best(self, prefix: str) -> tuple[str, float] | None:
        """The most frequent word starting with ``prefix`` (lowercase) and its share of all such."""
        lo = bisect.bisect_left(self.words, prefix)
        hi = bisect.bisect_left(self.words, prefix + "\U0010ffff", lo)
        if lo >= hi:
            return None
        window = self.freqs[lo:hi]
        top = max(window)
        word = self.words[lo + window.index(top)]
        return word, top / (self._cum[hi] - self._cum[lo])

    def __contains__(self, word: str) -> bool:
        i = bisect.bisect_left(self.words, word)
        return i < len(self.words) and self.words[i] == word


_lexicon: Lexicon | None = None
_lexicon_load_lock = threading.Lock()  # held while loading
_lexicon_thread_lock = threading.Lock()  # guards starting the background load once
_lexicon_thread: threading.Thread | None = None


def lexicon(block: bool = True) -> Lexicon | None:
    """The process-wide lexicon. ``block=False`` starts loading it in a thread and returns None
    until it is ready, so a first keystroke never waits ~0.2 s for wordfreq."""
    global _lexicon_thread
    if _lexicon is not None:
        return _lexicon
    if block:
        _load_lexicon()
        return _lexicon
    with _lexicon_thread_lock:
        if _lexicon_thread is None:
            _lexicon_thread = threading.Thread(target=_load_lexicon, name="lexicon", daemon=True)
            _lexicon_thread.start()
    return _lexicon


def _load_lexicon() -> None:
    global _lexicon
    with _lexicon_load_lock:
        if _lexicon is None:
            try:
                _lexicon = Lexicon.from_wordfreq()
            except Exception:  # wordfreq missing or broken: document words still work
                _lexicon = Lexicon([])


# ---------------------------------------------------------------------------- document n-grams


def _common_prefix(a: str, b: str) -> int:
    """Length of the longest common prefix. Typing and deleting at the end cost one compare in C;
    anything else a binary search that copies about ``len`` characters in all."""
    if b.startswith(a):
        return len(a)
    if a.startswith(b):
        return len(b)
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:  # a[:lo] == b[:lo] holds throughout
        mid = (lo + hi + 1) // 2
        if a.startswith(b[lo:mid], lo):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _common_suffix(a: str, b: str) -> int:
    """Length of the longest common suffix (as :func:`_common_prefix`, from the other end)."""
    if b.endswith(a):
        return len(a)
    if a.endswith(b):
        return len(b)
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:  # the last lo characters agree throughout
        mid = (lo + hi + 1) // 2
        if a.endswith(b[len(b) - mid : len(b) - lo], 0, len(a) - lo):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _sentence_spans(text: str, pos: int, endpos: int):
    """(start, end) of the non-empty sentences of ``text[pos:endpos]``, lazily, scanning ``text``
    itself (no copy; the look-behind sees the character before ``pos``)."""
    start = pos
    for m in _SENTENCE_END.finditer(text, pos, endpos):
        if m.start() > start:
            yield start, m.start()
        start = m.end()
    if endpos > start:
        yield start, endpos


class _BeforeCursor:
    """The sentences of the text before the cursor, from ``base`` (a window of about
    ``MAX_LEARN_CHARS``) to the cursor, kept in step by re-splitting only from the last sentence
    that starts before the first changed character. Starts are offsets from the start of the
    text, which edits at the cursor never move.

    Why that restart point is safe: the sentence scan is a left-to-right regex scan whose only
    look-behind is one character, so every boundary that ends before the first change is found
    again at the same place; scanning on from such a boundary gives what a scan from the start
    would."""

    def __init__(self) -> None:
        self.text = ""
        self.base = 0
        self.starts: list[int] = []
        self.sents: list[str] = []
        self.lo = 0  # sentences before this index have left the window (dropped lazily)

    def update(self, new: str) -> tuple[list[str], list[str]]:
        """Move to ``new``; returns (sentences gone, sentences added in text order)."""
        old = self.text
        if new is old or new == old:
            return [], []
        p = _common_prefix(old, new)
        self.text = new
        if p <= self.base or (self.base > 0 and len(new) - self.base < MAX_LEARN_CHARS // 2):
            return self._rebuild(new)
        k = bisect.bisect_left(self.starts, p, self.lo) - 1
        restart = self.starts[k] if k >= self.lo else self.base
        k = max(k, self.lo)
        gone = self.sents[k:]
        del self.starts[k:], self.sents[k:]
        added = self._scan(new, restart)
        gone += self._slide(len(new))
        return gone, added

    def _rebuild(self, new: str) -> tuple[list[str], list[str]]:
        gone = self.sents[self.lo :]
        self.starts, self.sents, self.lo = [], [], 0
        base = max(0, len(new) - MAX_LEARN_CHARS)
        if base:  # start the window at a sentence boundary when one is near
            m = _SENTENCE_END.search(new, base, min(len(new), base + 2_000))
            base = m.end() if m else base
        self.base = base
        return gone, self._scan(new, base)

    def _scan(self, text: str, pos: int) -> list[str]:
        added = []
        for a, b in _sentence_spans(text, pos, len(text)):
            self.starts.append(a)
            self.sents.append(text[a:b])
            added.append(self.sents[-1])
        return added

    def _slide(self, length: int) -> list[str]:
        """Drop the sentences that fell out of the window as the text before the cursor grew."""
        gone = []
        while self.lo < len(self.starts) - 1 and self.starts[self.lo] < length - MAX_LEARN_CHARS:
            gone.append(self.sents[self.lo])
            self.lo += 1
            self.base = self.starts[self.lo]
        if self.lo > 256 and self.lo * 2 > len(self.starts):
            del self.starts[: self.lo], self.sents[: self.lo]
            self.lo = 0
        return gone

    @property
    def size(self) -> int:
        return len(self.text) - self.base


class _AfterCursor:
    """The sentences of the text after the cursor, from the cursor to about ``MAX_LEARN_CHARS``
    on. Kept as distances from the end of the text (which edits at the cursor never move), the
    nearest sentence last. An update scans from the cursor and stops at the first boundary past
    the change that is also an old boundary: from there on the text and so the scan are the same."""

    def __init__(self) -> None:
        self.text = ""
        self.end_dist = 0  # the window ends this far from the end of the text
        self.dists: list[int] = []  # len(text) - start, increasing: the nearest sentence last
        self.sents: list[str] = []

    def update(self, new: str) -> tuple[list[str], list[str]]:
        old = self.text
        if new is old or new == old:
            return [], []
        s = _common_suffix(old, new)
        self.text = new
        window = len(new) - self.end_dist
        if s <= self.end_dist or (self.end_dist > 0 and window < MAX_LEARN_CHARS // 2):
            return self._rebuild(new)
        changed = len(new) - s  # new[:changed] differs from the old text
        gone: list[str] = []
        added: list[tuple[int, str]] = []  # (distance from the end, sentence), in text order
        dists, sents = self.dists, self.sents
        for a, b in _sentence_spans(new, 0, window):
            d = len(new) - a
            while dists and dists[-1] > d:  # old sentences this scan has passed
                dists.pop()
                gone.append(sents.pop())
            if a > changed and dists and dists[-1] == d:
                break  # back in step with the old scan: the rest is the same
            added.append((d, new[a:b]))
        else:
            gone += sents[::-1]
            dists.clear()
            sents.clear()
        for d, sentence in reversed(added):
            dists.append(d)
            sents.append(sentence)
        gone += self._slide(new)
        return gone, [sentence for _, sentence in added]

    def _rebuild(self, new: str) -> tuple[list[str], list[str]]:
        gone = self.sents[::-1]
        end = min(len(new), MAX_LEARN_CHARS)
        self.end_dist = len(new) - end
        spans = list(_sentence_spans(new, 0, end))
        self.dists = [len(new) - a for a, _ in reversed(spans)]
        self.sents = [new[a:b] for a, b in reversed(spans)]
        return gone, self.sents[::-1]

    def _slide(self, new: str) -> list[str]:
        """Drop far sentences once the window has grown past twice its size."""
        gone = []
        if len(new) - self.end_dist > 2 * MAX_LEARN_CHARS:
            i = 0  # the far sentences come first; keep those starting within the window
            while i < len(self.dists) - 1 and len(new) - self.dists[i] >= MAX_LEARN_CHARS:
                i += 1
            if i:
                gone = self.sents[:i]
                self.end_dist = self.dists[i - 1]
                del self.dists[:i], self.sents[:i]
        return gone

    @property
    def size(self) -> int:
        return len(self.text) - self.end_dist


@dataclass
class DocumentModel:
    """N-gram counts of one document, kept in step with its text sentence by sentence."""

    counted: Counter = field(default_factory=Counter)  # sentence -> times in the counts below
    unigrams: Counter = field(default_factory=Counter)
    # Next-word counts and words by their first letters are plain dicts of strings and ints, not
    # Counters and sets: the garbage collector does not track such a dict, and a document has one
    # per distinct word and word pair (62,000 Counters and 26,000 sets were 36 % of what a
    # worker's collections scanned at 600 typists).
    bigrams: dict[str, dict[str, int]] = field(default_factory=dict)
    trigrams: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)
    by_start: dict[str, dict[str, None]] = field(default_factory=dict)  # first 2 letters -> words
    surface: dict[str, str] = field(default_factory=dict)  # lowercase -> as written
    before: _BeforeCursor = field(default_factory=_BeforeCursor)
    after: _AfterCursor = field(default_factory=_AfterCursor)
    pending: Counter = field(default_factory=Counter)  # to count in (+) or out (-), not yet done

    def sync(self, before: str, after: str, budget: int = LEARN_BUDGET_CHARS) -> None:
        """Bring counts in line with ``before`` + ``after`` (the text minus the word at the cursor).

        Each side of the cursor re-splits only the sentences around what changed (the rest is
        compared, not re-read: one ``startswith`` in C when typing), and only sentences that
        changed are counted in or out, at ``LEARN_BUDGET_CHARS`` of new text per call, nearest
        the cursor first. So a keystroke costs the same in a 1 KB and a 100 KB document."""
        gone_b, added_b = self.before.update(before)
        if len(gone_b) == 1 and added_b and self._extend(gone_b[0], added_b[0]):
            gone_b, added_b = [], added_b[1:]  # the sentence being typed: its new words only
        gone_a, added_a = self.after.update(after)
        for sentence in gone_b:
            self.pending[sentence] -= 1
        for sentence in gone_a:
            self.pending[sentence] -= 1
        for sentence in reversed(added_b):  # nearest the cursor first
            self.pending[sentence] += 1
        for sentence in added_a:
            self.pending[sentence] += 1
        if self.pending:
            self._apply_pending(budget)

    def _extend(self, old: str, new: str) -> bool:
        """Count ``new`` in place of ``old`` by the words one has beyond the other, when one is
        the other plus whole tokens (a word typed or deleted at the end of a sentence). False,
        with nothing done, when that does not hold or ``old`` is not simply counted."""
        if self.counted.get(old, 0) < 1 or self.pending.get(old) or self.pending.get(new):
            return False
        if new.startswith(old):
            short, long, sign = old, new, +1
        elif old.startswith(new):
            short, long, sign = new, old, -1
        else:
            return False
        short_tokens = _TOKEN.findall(short)
        long_tokens = _TOKEN.findall(long)
        if long_tokens[: len(short_tokens)] != short_tokens:
            return False  # the join changed a token ("don" + "'t"): count it the long way
        self._count_tokens(long_tokens, sign, start=len(short_tokens))
        self.counted[old] -= 1
        if not self.counted[old]:
            del self.counted[old]
        self.counted[new] += 1
        return True

    @property
    def size(self) -> int:
        """Characters of text this model follows (for the provider's memory bound)."""
        return self.before.size + self.after.size

    def _apply_pending(self, budget: int = LEARN_BUDGET_CHARS) -> None:
        for sentence, n in list(self.pending.items()):
            if n < 0:
                for _ in range(-n):
                    self._count(sentence, -1)
                self.counted[sentence] += n
                if self.counted[sentence] <= 0:
                    del self.counted[sentence]
                del self.pending[sentence]
        for sentence, n in list(self.pending.items()):
            if n == 0:
                del self.pending[sentence]
                continue
            if budget <= 0:
                break
            for _ in range(n):
                self._count(sentence, +1)
            self.counted[sentence] += n
            del self.pending[sentence]
            budget -= len(sentence) * n

    def _count(self, sentence: str, sign: int) -> None:
        self._count_tokens(_TOKEN.findall(sentence), sign)

    def _count_tokens(self, tokens: list[str], sign: int, start: int = 0) -> None:
        """Count the n-grams ending at ``tokens[start:]`` in (+1) or out (-1); the two tokens
        before ``start`` are the context (all a trigram needs)."""
        run: list[str] = []
        for i in range(max(0, start - 2), len(tokens)):
            tok = tokens[i]
            if not tok[0].isalnum():
                run = []
                continue
            if i < start:
                run.append(tok.lower())
                continue
            low = tok.lower()
            if run or low not in self.surface:
                if sign > 0:
                    self.surface[low] = tok
            self._bump(self.unigrams, low, sign, register=True)
            if run:
                bi = self.bigrams.get(run[-1])
                if bi is None:
                    bi = self.bigrams[run[-1]] = {}
                self._bump(bi, low, sign)
                if len(run) > 1:
                    key = (run[-2], run[-1])
                    tri = self.trigrams.get(key)
                    if tri is None:
                        tri = self.trigrams[key] = {}
                    self._bump(tri, low, sign)
            run.append(low)

    def _bump(self, counter: dict[str, int], key: str, sign: int, register: bool = False) -> None:
        n = counter.get(key, 0) + sign
        if n > 0:
            counter[key] = n
            if register and n == 1 and sign > 0:
                self.by_start.setdefault(key[:2], {})[key] = None
        else:
            del counter[key]
            if register:
                self.by_start.get(key[:2], {}).pop(key, None)

    # -------------------------------------------------------------------------- predictions

    def followers(self, context: list[str]) -> list[tuple[dict[str, int], int]]:
        """Next-word counters for the context, longest first, each with the minimum count it needs."""
        out: list[tuple[dict[str, int], int]] = []
        if len(context) >= 2:
            tri = self.trigrams.get((context[-2], context[-1]))
            if tri:
                out.append((tri, 1))
        if context:
            bi = self.bigrams.get(context[-1])
            if bi:
                out.append((bi, 2))
        return out

    def next_word(self, context: list[str]) -> str | None:
        """The next word when one follower clearly dominates, else None."""
        for counter, min_count in self.followers(context):
            total = sum(counter.values())
            word, n = max(counter.items(), key=itemgetter(1))  # the first of the most common
            if n >= max(min_count, 2) and n / total >= 0.5:
                return word
            if min_count == 1 and total >= 2:  # a real trigram split: don't guess from bigrams
                return None
        return None

    def complete(self, fragment: str, context: list[str]) -> str | None:
        """A document word starting with ``fragment`` (lowercase): from the context, else frequent."""
        for counter, _ in self.followers(context):
            matches = [(n, w) for w, n in counter.items() if w.startswith(fragment)]
            if matches:
                n, word = max(matches)
                if len(fragment) >= 2 or n >= 2:
                    return word
        if len(fragment) < 2:
            return None
        words = [w for w in self.by_start.get(fragment[:2], ()) if w.startswith(fragment)]
        if not words:
            return None
        return max(words, key=lambda w: (self.unigrams[w], -len(w)))


# ------------------------------------------------------------------------------------ the engine


class StatisticalProvider:
    """Word completion and next words from the document's n-grams and an English lexicon."""

    name = "statistical"
    model = "offline-statistical"

    def __init__(self, use_lexicon: bool = True):
        self._use_lexicon = use_lexicon
        self._docs: OrderedDict[str, DocumentModel] = OrderedDict()
        self._sizes: dict[str, int] = {}  # document -> characters its model follows
        self._total_chars = 0
        self._writers: dict[str, str] = {}  # document -> the writer it is charged to
        self._writer_chars: dict[str, int] = {}  # writer -> characters its documents follow
        self._lock = threading.Lock()
        self._learn_loop: object | None = None
        self._learn_lock: Any = None

    def _document(self, document_id: str) -> DocumentModel:
        """The document's model, most recently used last. Least recently used ones are dropped
        beyond ``MAX_DOCUMENTS`` or ``MAX_TOTAL_CHARS``: a server process holds one per
        connection, so the bounds are a connection cap's worth, not a handful (a handful made
        every keystroke of a busy server re-learn its document from scratch)."""
        doc = self._docs.get(document_id)
        if doc is None:
            doc = self._docs[document_id] = DocumentModel()
            while len(self._docs) > MAX_DOCUMENTS:
                self._drop(next(iter(self._docs)))
        else:
            self._docs.move_to_end(document_id)
        return doc

    def _sync(self, document_id: str, doc: DocumentModel, before: str, after: str) -> None:
        doc.sync(before, after)
        self._sized(document_id, doc)

    def claim(self, document_id: str, writer: str) -> None:
        """Charge ``document_id``'s memory to ``writer`` (unclaimed, a document is its own
        writer): a writer past ``MAX_WRITER_CHARS`` loses its own oldest documents, and past
        ``MAX_TOTAL_CHARS`` the writer holding the most loses one, never a bystander first."""
        with self._lock:
            size = self._sizes.get(document_id, 0)
            self._charge(self._writer_of(document_id), -size)
            self._writers[document_id] = writer
            self._charge(writer, size)

    def _writer_of(self, document_id: str) -> str:
        return self._writers.get(document_id, document_id)

    def _charge(self, writer: str, chars: int) -> None:
        left = self._writer_chars.get(writer, 0) + chars
        if left > 0:
            self._writer_chars[writer] = left
        else:
            self._writer_chars.pop(writer, None)

    def _sized(self, document_id: str, doc: DocumentModel) -> None:
        size = doc.size
        grown = size - self._sizes.get(document_id, 0)
        self._total_chars += grown
        self._sizes[document_id] = size
        writer = self._writer_of(document_id)
        self._charge(writer, grown)
        while self._writer_chars.get(writer, 0) > MAX_WRITER_CHARS:
            if not self._drop_oldest_of(writer, keep=document_id):
                break
        while self._total_chars > MAX_TOTAL_CHARS and len(self._docs) > 1:
            biggest = max(self._writer_chars, key=self._writer_chars.__getitem__)
            if not self._drop_oldest_of(biggest, keep=document_id):
                self._drop(next(iter(self._docs)))

    def _drop_oldest_of(self, writer: str, keep: str) -> bool:
        for document_id in self._docs:
            if document_id != keep and self._writer_of(document_id) == writer:
                self._drop(document_id)
                return True
        return False

    def _drop(self, document_id: str) -> None:
        self._docs.pop(document_id, None)
        size = self._sizes.pop(document_id, 0)
        self._total_chars -= size
        self._charge(self._writer_of(document_id), -size)

    def forget(self, document_id: str) -> None:
        with self._lock:
            self._drop(document_id)
            self._writers.pop(document_id, None)

    @property
    def documents(self) -> int:
        """How many documents it holds a model of (for /metrics)."""
        return len(self._docs)

    def suggest(self, prefix: str, suffix: str = "", document_id: str = "default") -> str:
        """The suggested text to insert at the cursor ("" when unsure). Never raises."""
        try:
            with self._lock:
                return self._suggest(prefix, suffix, document_id)
        except Exception:  # a fallback must never be the thing that fails
            return ""

    def _suggest(self, prefix: str, suffix: str, document_id: str) -> str:
        m = _FRAGMENT.search(prefix[-64:])
        fragment = m.group(0) if m else ""
        before = prefix[: len(prefix) - len(fragment)]
        m = _SUFFIX_WORD.match(suffix[:64])
        touching = m.group(0) if m else ""
        doc = self._document(document_id)
        self._sync(document_id, doc, before, suffix[len(touching) :])
        if touching:
            return ""  # the cursor touches a word on its right: inserting would split it

        context = _context(before)
        words: list[str] = []
        completion = ""
        if fragment:
            if any(c.isdigit() for c in fragment):
                return ""
            word = self._complete(doc, fragment, context)
            if word is None:
                return ""
            completion = _match_case(fragment, word)
            context = [*context, word.lower()]
        elif prefix and not prefix[-1].isspace():
            return ""  # just after punctuation: nothing confident to say
        while len(words) < MAX_NEXT_WORDS:
            nxt = doc.next_word(context)
            if nxt is None:
                break
            words.append(doc.surface.get(nxt, nxt))
            context = [*context, nxt]
        words = _drop_overlap(words, suffix)
        if not words:
            return completion
        return completion + (" " if fragment else "") + " ".join(words)

    def _complete(self, doc: DocumentModel, fragment: str, context: list[str]) -> str | None:
        low = fragment.lower()
        word = doc.complete(low, context)
        if word is not None:
            return doc.surface.get(word, word)
        lex = lexicon(block=False) if self._use_lexicon else None
        if lex is None or len(low) < 2:
            return None
        found = lex.best(low)
        if found is None:
            return None
        word, share = found
        if word == low or share >= 0.3 or (len(low) >= 4 and share >= 0.15):
            return word
        return None

    # ----------------------------------------------------------------------- Provider protocol

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        text = self.suggest(request.prefix, request.suffix, request.document_id)
        if text:
            yield TextChunk(text)
        yield Final(usage=Usage(), model=self.model, source="offline", provider=self.name)

    async def prepare(self) -> None:
        """Load the lexicon now (in a thread), so no writer's keystroke shares the process with
        the load. A server calls this before it takes connections; ``warm`` calls it too."""
        if self._use_lexicon and _lexicon is None:
            await asyncio.to_thread(lexicon, True)

    async def warm(self, prefix: str = "", document_id: str = "default") -> None:
        """Load the lexicon and learn the document so far. Never raises.

        The learning runs on the event loop, one document at a time, ``LEARN_BUDGET_CHARS`` of
        text per loop step. In worker threads it made the loop wait for the GIL: 500 writers
        opening documents at once stretched ping round trips past 300 ms."""
        try:
            await self.prepare()
            if not prefix:
                return  # (a connection-time warm-up: nothing to learn, and no empty model kept)
            doc = self._fresh_model(prefix, "", budget=0)
            async with self._learning_lock():
                while doc.pending:
                    doc._apply_pending(LEARN_BUDGET_CHARS)
                    await asyncio.sleep(0)
            self._install(document_id, doc)
        except Exception:
            pass

    def _learning_lock(self):
        """One lock per event loop (tests run several loops over one provider)."""
        loop = asyncio.get_running_loop()
        if self._learn_loop is not loop:
            self._learn_loop, self._learn_lock = loop, asyncio.Lock()
        return self._learn_lock

    def learn(self, prefix: str, suffix: str = "", document_id: str = "default") -> None:
        """Count the whole text in now, with no per-call budget (for when a document opens).

        The counting happens on a fresh model without the lock; only the swap takes the lock,
        so a ``suggest`` on the event loop never waits for a ``learn`` in another thread.
        """
        self._install(document_id, self._fresh_model(prefix, suffix, budget=10 * MAX_LEARN_CHARS))

    def _fresh_model(self, prefix: str, suffix: str, *, budget: int) -> DocumentModel:
        """A new model of the text around the cursor with ``budget`` characters counted in; the
        rest is left pending."""
        m = _FRAGMENT.search(prefix[-64:])
        before = prefix[: len(prefix) - len(m.group(0))] if m else prefix
        m = _SUFFIX_WORD.match(suffix[:64])
        after = suffix[len(m.group(0)) if m else 0 :]
        doc = DocumentModel()
        doc.sync(before, after, budget=budget)
        return doc

    def _install(self, document_id: str, doc: DocumentModel) -> None:
        with self._lock:
            self._document(document_id)  # keep the LRU order and bound
            self._docs[document_id] = doc
            self._sized(document_id, doc)

    async def aclose(self) -> None:
        with self._lock:
            self._docs.clear()
            self._sizes.clear()
            self._writers.clear()
            self._writer_chars.clear()
            self._total_chars = 0


def _context(before: str) -> list[str]:
    """The last two words before the cursor, lowercase; none across sentence punctuation."""
    tail = _TOKEN.findall(before[-200:])[-2:]
    out: list[str] = []
    for tok in tail:
        if tok[0].isalnum():
            out.append(tok.lower())
        else:
            out = []
    if before and before.rstrip(" \t") != before.rstrip():  # a line break ends the context
        return []
    return out


def _match_case(fragment: str, word: str) -> str:
    """The rest of ``word`` after ``fragment``, in the case the user is typing in."""
    rest = word[len(fragment) :]
    if len(fragment) >= 2 and fragment.isupper():
        return rest.upper()
    return rest


def _drop_overlap(words: list[str], suffix: str) -> list[str]:
    """Drop predicted words that the text after the cursor already starts with."""
    ahead = [t.lower() for t in _TOKEN.findall(suffix[:200].split("\n", 1)[0])][: len(words)]
    for k in range(len(words), 0, -1):
        if [w.lower() for w in words[-k:]] == ahead[:k]:
            return words[:-k]
    return words
