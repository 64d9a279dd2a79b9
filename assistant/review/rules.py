"""The offline review: mechanical findings from rules (doubled words, common misspellings,
spacing, a lower-case pronoun "I", long sentences), instant and free, for when there is no key."""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
import os
import re
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import replace

from ..config import Settings
from ..pricing import Usage
from ..providers.base import ProviderError, ProviderErrorKind
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


# Offline reviews run in one worker process: a 199k-character document takes 0.19 s of CPU
# (rules 0.09 s, locating 0.10 s, 18,800 findings), and ten connections reviewing back to back
# on the event loop pushed another client's ping p50 to 504 ms (docs/reliability.md).
REVIEW_WORKERS = 1
# CPU seconds of offline review one document (connection) may use: a burst, refilled at a rate.
CPU_BURST_S = 2.0
CPU_PER_SECOND = 0.25
DEFAULT_MAX_FINDINGS = 1000


def _worker_start(parent: int) -> None:
    """In a new worker: its output goes nowhere (a killed server's orphaned worker must not hold
    the server's stdout/stderr open), and it exits once the server process is gone."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)

    def watch() -> None:
        while True:
            try:
                os.kill(parent, 0)
            except ProcessLookupError:
                os._exit(0)
            except PermissionError:
                pass
            time.sleep(1.0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def located_findings(text: str, limit: int) -> tuple[list, int, float]:
    """In the worker process: the first ``limit`` located findings, how many there were in all,
    and the CPU seconds it took."""
    started = time.process_time()
    locator = FindingLocator(text, require_change=True)
    kept = []
    for raw in rule_findings(text):
        finding = locator.locate(raw)
        if finding is not None and len(kept) < limit:
            kept.append(replace(finding, tier="offline"))
    return kept, locator.count, time.process_time() - started


class OfflineReviewer:
    """Rule-based findings when there is no API key: free, limited to mechanics, computed in a
    worker process (never on the event loop) with each document's CPU time bounded."""

    name = "offline"
    model = "offline-rules"

    def __init__(self, settings: Settings | None = None, clock=time.monotonic) -> None:
        self.settings = settings
        self.max_findings = getattr(settings, "max_review_findings", DEFAULT_MAX_FINDINGS)
        self.clock = clock
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._cpu: dict[str, tuple[float, float]] = {}  # document -> (seconds left, at)

    def _executor(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._pool is None:
            context = multiprocessing.get_context("forkserver")
            self._pool = concurrent.futures.ProcessPoolExecutor(
                REVIEW_WORKERS,
                mp_context=context,
                initializer=_worker_start,
                initargs=(os.getpid(),),
            )
        return self._pool

    def _cpu_left(self, document: str) -> float:
        left, at = self._cpu.get(document, (CPU_BURST_S, self.clock()))
        now = self.clock()
        return min(CPU_BURST_S, left + (now - at) * CPU_PER_SECOND)

    async def review(
        self, text: str, *, tier: str | None = None, document: str | None = None
    ) -> AsyncIterator[ReviewEvent]:
        """The rules' findings (``tier`` does not apply offline). Like every tier's, a finding
        whose replacement changes nothing (the long-sentence advice) is not shown: the writer
        could not apply it. Past ``max_findings`` the rest are counted in the note."""
        started = time.monotonic()
        key = document or ""
        left = self._cpu_left(key)
        if left <= 0:
            wait = -left / CPU_PER_SECOND
            raise ProviderError(
                ProviderErrorKind.RATE_LIMITED,
                f"offline reviews used this connection's CPU time; retry in {wait:.0f} s",
            )
        loop = asyncio.get_running_loop()
        found, total, cpu_s = await loop.run_in_executor(
            self._executor(), located_findings, text, self.max_findings
        )
        self._cpu[key] = (self._cpu_left(key) - cpu_s, self.clock())
        for finding in found:
            yield finding
        note = ""
        if total > len(found):
            note = f"{total - len(found)} more findings not shown (at most {len(found)} a review)"
        yield ReviewDone(
            findings=len(found),
            model=self.model,
            usage=Usage(),
            cost_usd=0.0,
            latency_ms=(time.monotonic() - started) * 1000,
            note=note,
        )

    def forget(self, document: str) -> None:
        self._cpu.pop(document, None)

    async def aclose(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
