"""What the emulated model says: tokens, suggestion continuations and review findings.

Pure functions of the request body (plus the configured oracle passages and seed), so the same
request always gets the same answer and tests can pin exact text. Nothing here does I/O.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

_PIECE = re.compile(r"\s*\S+|\s+")
_MAX_PIECE = 4  # characters of a word per token once the word is long


def tokenize(text: str) -> list[str]:
    """Split ``text`` into word-piece tokens that join back to exactly ``text``.

    A token is a word with its leading whitespace; words longer than four characters are cut
    every four characters (the first piece keeps the whitespace). Roughly what BPE does to
    English, and deterministic.
    """
    tokens: list[str] = []
    for m in _PIECE.finditer(text):
        piece = m.group()
        stripped = piece.lstrip()
        lead = piece[: len(piece) - len(stripped)]
        if len(stripped) <= _MAX_PIECE + 1:
            tokens.append(piece)
            continue
        tokens.append(lead + stripped[:_MAX_PIECE])
        for i in range(_MAX_PIECE, len(stripped), _MAX_PIECE):
            tokens.append(stripped[i : i + _MAX_PIECE])
    return tokens


def count_tokens(text: str) -> int:
    return len(tokenize(text)) if text else 0


def block_text(block: object) -> str:
    """The text a content block contributes to the prompt (non-text blocks as their JSON)."""
    if isinstance(block, str):
        return block
    if isinstance(block, dict):
        if block.get("type") == "text" and isinstance(block.get("text"), str):
            return block["text"]
        return json.dumps({k: v for k, v in block.items() if k != "cache_control"}, sort_keys=True)
    return str(block)


def message_text(message: object) -> str:
    if not isinstance(message, dict):
        return ""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(block_text(b) for b in content)
    return ""


def last_user_text(body: dict) -> str:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return message_text(message)
    return ""


def system_text(body: dict) -> str:
    system = body.get("system")
    if isinstance(system, str):
        return system
    if isinstance(system, list):
        return "".join(block_text(b) for b in system)
    return ""


def between_tags(text: str, tag: str) -> str | None:
    """What follows ``<tag>`` in ``text``, to ``</tag>`` or, unclosed, to the end; None
    without the tag."""
    start = text.find(f"<{tag}>")
    if start < 0:
        return None
    start += len(tag) + 2
    end = text.find(f"</{tag}>", start)
    return text[start:] if end < 0 else text[start:end]


# --- suggestions -----------------------------------------------------------------------------

_PHRASES = (
    " and the rest of the plan is ready.",
    " which is why we moved the meeting to Thursday.",
    " so the team can start on the next draft.",
    " but the numbers still need a second look.",
    " as we discussed in the last review.",
    " before the end of the week.",
    " and everyone agreed it was the right call.",
    " while the budget stays the same.",
    " in time for the launch next month.",
    " because the first version was too slow.",
    " with a short summary at the top.",
    " for the people who could not attend.",
)


@lru_cache(maxsize=1)
def _vocabulary() -> tuple[tuple[str, ...], frozenset[str]]:
    try:
        from wordfreq import top_n_list

        words = tuple(w for w in top_n_list("en", 20000) if w.isalpha())
    except Exception:  # wordfreq missing or its data unreadable: a tiny built-in list
        words = tuple(
            w.strip(".,").lower() for p in _PHRASES for w in p.split() if w.strip(".,").isalpha()
        )
    return words, frozenset(words[:3000])


def warm_vocabulary() -> None:
    _vocabulary()


def complete_word(fragment: str) -> str:
    """The rest of the most frequent English word that starts with ``fragment``.

    Empty when the fragment is already a common word or nothing extends it.
    """
    lower = fragment.lower()
    words, common = _vocabulary()
    if not lower.isalpha() or lower in common:
        return ""
    for word in words:
        if len(word) > len(lower) and word.startswith(lower):
            return word[len(lower) :]
    return ""


def _oracle_continuation(before: str, passages: Sequence[str]) -> str | None:
    """Where the end of ``before`` occurs in a passage, what follows it there."""
    if not passages or not before.strip():
        return None
    for size in (80, 60, 40, 30, 20, 12):
        if size > len(before) and size != 12:
            continue
        tail = before[-size:]
        if len(tail.strip()) < 3:
            continue
        for passage in passages:
            pos = passage.find(tail)
            if pos >= 0:
                rest = passage[pos + len(tail) :]
                if rest:
                    return rest
    return None


def _seeded_rng(body: dict, seed: int) -> random.Random:
    digest = hashlib.sha256(json.dumps(body.get("messages"), sort_keys=True).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big") ^ seed)


def derived_continuation(body: dict, passages: Sequence[str], seed: int = 0) -> str:
    """A continuation of the user's text: the oracle passage's next words when the text before
    the cursor is found in one, else deterministic plausible prose. Mid-word input is completed
    first, so the answer then starts without a space."""
    before, _ = request_context(body)
    found = _oracle_continuation(before, passages)
    if found is not None:
        return found
    return plausible_continuation(before, _seeded_rng(body, seed))


def request_context(body: dict) -> tuple[str, str]:
    """(text before the cursor, text after it) of a suggestion request (the whole user message
    as the text before when the prompt has no cursor tags)."""
    user = last_user_text(body)
    before = between_tags(user, "text_before_cursor")
    after = between_tags(user, "text_after_cursor") or ""
    return (user if before is None else before), after


def plausible_continuation(before: str, rng: random.Random) -> str:
    """Fluent prose that is not what the writer meant: the current word completed to a common
    word, then a few stock phrases (no space first when ``before`` already ends in one)."""
    head = ""
    if before and not before[-1].isspace():
        fragment = re.search(r"[A-Za-z]+$", before)
        if fragment:
            head = complete_word(fragment.group())
    phrases = [rng.choice(_PHRASES) for _ in range(3)]
    text = head + "".join(phrases)
    if before and before[-1].isspace():
        text = text.lstrip()
    return text


# --- review ----------------------------------------------------------------------------------

MISSPELLINGS = {
    "teh": "the",
    "recieve": "receive",
    "seperate": "separate",
    "definately": "definitely",
    "occured": "occurred",
    "wich": "which",
    "alot": "a lot",
}


def _match_case(word: str, replacement: str) -> str:
    if word[:1].isupper():
        return replacement[:1].upper() + replacement[1:]
    return replacement


def _unique_span(document: str, start: int, end: int) -> tuple[int, int]:
    """Widen ``[start, end)`` word by word until its text occurs once in ``document``."""
    while document.count(document[start:end]) > 1:
        grown = False
        if end < len(document):
            m = re.compile(r"\s*\S+").match(document, end)
            if m:
                end, grown = m.end(), True
        if document.count(document[start:end]) > 1 and start > 0:
            m = re.search(r"\S+\s*$", document[:start])
            if m:
                start, grown = m.start(), True
        if not grown:
            break
    return start, end


def review_findings(document: str) -> list[dict]:
    """Mechanical findings in ``document``, in document order.

    Each ``quote`` is an exact substring of the document, widened with neighbouring words until
    it is unique where possible; ``replacement`` is the whole quote corrected.
    """
    found: dict[tuple[int, int], dict] = {}

    def add(start: int, end: int, corrected: str, problem: str, severity: str) -> None:
        u_start, u_end = _unique_span(document, start, end)
        quote = document[u_start:u_end]
        replacement = document[u_start:start] + corrected + document[end:u_end]
        if (u_start, u_end) in found or quote == replacement:
            return
        found[(u_start, u_end)] = {
            "quote": quote,
            "problem": problem,
            "replacement": replacement,
            "severity": severity,
        }

    for m in re.finditer(r"\b(\w+)([ \t]+)(\1)\b", document, flags=re.IGNORECASE):
        if not m.group(1).isdigit():
            add(m.start(), m.end(), m.group(1), f'The word "{m.group(1)}" is repeated.', "high")
    for wrong, right in MISSPELLINGS.items():
        for m in re.finditer(rf"\b{wrong}\b", document, flags=re.IGNORECASE):
            fixed = _match_case(m.group(), right)
            add(m.start(), m.end(), fixed, f'"{m.group()}" is misspelled.', "high")
    for m in re.finditer(r"(\S+)( {2,})(\S+)", document):
        fixed = f"{m.group(1)} {m.group(3)}"
        add(m.start(), m.end(), fixed, "Two spaces between words.", "low")
    for m in re.finditer(r"(\w+ )i( \w+)", document):
        fixed = f"{m.group(1)}I{m.group(2)}"
        add(m.start(), m.end(), fixed, 'The pronoun "I" should be capitalised.', "medium")
    for m in re.finditer(r"(\S+)([ \t]+)$", document, flags=re.MULTILINE):
        add(m.start(), m.end(), m.group(1), "Trailing whitespace at the end of the line.", "low")
    return [found[key] for key in sorted(found)]


def review_document(body: dict) -> str:
    user = last_user_text(body)
    for tag in ("document", "text", "draft"):
        inner = between_tags(user, tag)
        if inner is not None:
            return inner
    return user


def is_review_request(body: dict) -> bool:
    output_config = body.get("output_config")
    if isinstance(output_config, dict):
        fmt = output_config.get("format")
        if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
            return True
    return "review" in system_text(body).lower()


# --- the reply -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """The tokens to send and why they stop."""

    tokens: list[str]
    stop_reason: str  # "end_turn" | "max_tokens" | "stop_sequence"
    stop_sequence: str | None = None

    @property
    def text(self) -> str:
        return "".join(self.tokens)


def shape_reply(full_text: str, max_tokens: int, stop_sequences: Sequence[str] = ()) -> Reply:
    """Cut ``full_text`` where the model would stop: at the first stop sequence generated within
    ``max_tokens`` tokens, else at ``max_tokens``, else at its natural end."""
    tokens = tokenize(full_text)
    max_tokens = max(0, max_tokens)
    window = "".join(tokens[:max_tokens])
    best: tuple[int, str] | None = None
    for seq in stop_sequences:
        if not isinstance(seq, str) or not seq:
            continue
        pos = window.find(seq)
        if pos >= 0 and (best is None or pos < best[0]):
            best = (pos, seq)
    if best is not None:
        return Reply(tokenize(window[: best[0]]), "stop_sequence", best[1])
    if len(tokens) > max_tokens:
        return Reply(tokens[:max_tokens], "max_tokens")
    return Reply(tokens, "end_turn")


def shaped_for(body: dict, text: str) -> Reply:
    """``text`` cut where the request's ``max_tokens`` and ``stop_sequences`` stop it."""
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int):
        max_tokens = 1024
    stops = body.get("stop_sequences") or ()
    if not isinstance(stops, list | tuple):
        stops = ()
    return shape_reply(text, max_tokens, stops)
