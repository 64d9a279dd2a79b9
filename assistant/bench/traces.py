"""Typing traces: what a person at a keyboard sends to the editor, keystroke by keystroke.

The latency suite and the benchmark replay these instead of synthetic fixed-interval typing,
because every strategy we compare (debounce, cancellation, type-through, cache) behaves
differently at word ends, sentence ends, after a typo or after a pause to think.

The model of timing follows what large typing studies report, chiefly Dhakal et al., "Observations
on Typing from 136 Million Keystrokes" (CHI 2018): an average typist at ~52 WPM has a mean
inter-key interval near 230-240 ms, fast typists reach 80-100 WPM and slow ones 25-30 WPM;
intervals are right-skewed (lognormal), shorter inside common letter pairs, longer at word starts,
much longer at sentence starts, and a few percent of words get corrected with backspace.

A trace is seeded, so ``python -m assistant.bench.traces --out assistant/data/traces`` regenerates
byte-identical files. Events are appended at the end of the document (the cursor stays at the
end): ``type`` appends ``text``, ``backspace`` removes the last character.
"""

from __future__ import annotations

import argparse
import json
import random
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

PASSAGE_FILES = {
    "prose": "prose.txt",
    "email": "email.txt",
    "notes": "notes.md",
    "code": "code.py.txt",
}


@dataclass(frozen=True)
class TypistProfile:
    """How one kind of typist types. ``mean_iki_ms`` is the target mean gap between keystrokes
    (pauses and corrections included), ``sigma`` the spread of the lognormal base interval."""

    name: str
    mean_iki_ms: float
    sigma: float
    word_error_rate: float  # share of words typed wrong first and corrected with backspace
    sentence_pause_p: float  # chance of a 1-4 s thinking pause before a sentence
    word_pause_p: float  # chance of one before any other word
    burst_p: float  # chance a word is typed in a fast burst

    @property
    def wpm(self) -> float:
        return 60_000 / (self.mean_iki_ms * 5)


TYPISTS: dict[str, TypistProfile] = {
    "slow": TypistProfile("slow", 440.0, 0.45, 0.05, 0.35, 0.020, 0.05),
    "average": TypistProfile("average", 232.0, 0.40, 0.04, 0.25, 0.012, 0.10),
    "fast": TypistProfile("fast", 135.0, 0.35, 0.03, 0.15, 0.006, 0.15),
}

# The most frequent English letter pairs: typed faster, often as a roll of two fingers.
COMMON_BIGRAMS = frozenset(
    "th he in er an re on at en nd ti es or te of ed is it al ar st to nt ng se ha as ou io le ve "
    "co me de hi ri ro ic ne ea ra ce li ch ll be ma si om ur".split()
)
_SHIFTED = set('~!@#$%^&*()_+{}|:"<>?')
_SYMBOLS = set("`-=[]\\;',./") | _SHIFTED
_QWERTY_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")


def _neighbours(c: str) -> str:
    low = c.lower()
    for row in _QWERTY_ROWS:
        i = row.find(low)
        if i >= 0:
            near = row[max(0, i - 1) : i] + row[i + 1 : i + 2]
            return near.upper() if c.isupper() else near
    return ""


@dataclass(frozen=True)
class Keystroke:
    t_ms: int  # since the first keystroke of the trace
    kind: Literal["type", "backspace"]
    text: str = ""  # the character typed (type only)

    def apply(self, document: str) -> str:
        return document + self.text if self.kind == "type" else document[:-1]

    def to_json(self) -> dict:
        if self.kind == "type":
            return {"t_ms": self.t_ms, "kind": "type", "text": self.text}
        return {"t_ms": self.t_ms, "kind": "backspace"}

    @classmethod
    def from_json(cls, d: dict) -> Keystroke:
        return cls(int(d["t_ms"]), d["kind"], d.get("text", ""))


@dataclass(frozen=True)
class Trace:
    typist: str
    passage: str
    seed: int
    events: tuple[Keystroke, ...]
    final_text: str

    @property
    def name(self) -> str:
        return f"{self.typist}-{self.passage}"

    @property
    def duration_ms(self) -> int:
        return self.events[-1].t_ms if self.events else 0

    def intervals_ms(self) -> list[int]:
        return [b.t_ms - a.t_ms for a, b in zip(self.events, self.events[1:], strict=False)]

    @property
    def mean_iki_ms(self) -> float:
        gaps = self.intervals_ms()
        return sum(gaps) / len(gaps) if gaps else 0.0

    @property
    def wpm(self) -> float:
        minutes = self.duration_ms / 60_000
        return len(self.final_text) / 5 / minutes if minutes else 0.0

    @property
    def backspaces(self) -> int:
        return sum(e.kind == "backspace" for e in self.events)

    def documents(self) -> Iterator[str]:
        """The document after each keystroke."""
        doc = ""
        for e in self.events:
            doc = e.apply(doc)
            yield doc

    def replay(self) -> str:
        doc = ""
        for e in self.events:
            doc = e.apply(doc)
        return doc

    def window(self, start: int, count: int) -> tuple[str, tuple[Keystroke, ...]]:
        """The document before keystroke ``start`` and the next ``count`` keystrokes, re-timed so
        the first one is at 0 ms: a slice of the trace to replay when the whole is too long."""
        doc = ""
        for e in self.events[:start]:
            doc = e.apply(doc)
        part = self.events[start : start + count]
        t0 = part[0].t_ms if part else 0
        return doc, tuple(Keystroke(e.t_ms - t0, e.kind, e.text) for e in part)

    def to_json(self) -> dict:
        return {
            "typist": self.typist,
            "passage": self.passage,
            "seed": self.seed,
            "keystrokes": len(self.events),
            "duration_ms": self.duration_ms,
            "mean_iki_ms": round(self.mean_iki_ms, 1),
            "wpm": round(self.wpm, 1),
            "final_text": self.final_text,
            "events": [e.to_json() for e in self.events],
        }

    @classmethod
    def from_json(cls, d: dict) -> Trace:
        return cls(
            typist=d["typist"],
            passage=d["passage"],
            seed=int(d["seed"]),
            events=tuple(Keystroke.from_json(e) for e in d["events"]),
            final_text=d["final_text"],
        )


# ---------------------------------------------------------------------------------------------
# Generation


@dataclass
class _Step:
    kind: Literal["type", "backspace"]
    text: str
    rel: float  # relative duration of the gap before this keystroke (scaled later)
    pause_ms: float = 0.0  # absolute thinking pause added before it


def _rng_for(seed: int, typist: str, passage: str) -> random.Random:
    return random.Random(zlib.crc32(f"{seed}:{typist}:{passage}".encode()))


def _key_factor(prev: str, c: str) -> float:
    f = 1.0
    if (prev + c).lower() in COMMON_BIGRAMS:
        f *= 0.7
    if c.isupper() or c in _SHIFTED:
        f *= 1.35  # a shift key first
    elif c.isdigit() or c in _SYMBOLS:
        f *= 1.5  # away from the home row
    if c == " ":
        f *= 0.85  # the thumb is always on the space bar
    if c == "\n":
        f *= 1.8
    if prev == "\n":
        f *= 1.8
    return f


def generate(text: str, typist: TypistProfile | str, seed: int = 0, passage: str = "") -> Trace:
    """A seeded trace of ``typist`` typing ``text`` from an empty document."""
    prof = TYPISTS[typist] if isinstance(typist, str) else typist
    rng = _rng_for(seed, prof.name, passage or str(zlib.crc32(text.encode())))
    steps: list[_Step] = []

    def base() -> float:
        return rng.lognormvariate(0.0, prof.sigma)

    prev = ""
    burst = False
    i = 0
    while i < len(text):
        c = text[i]
        word_start = not c.isspace() and (i == 0 or text[i - 1].isspace())
        pause = 0.0
        factor = _key_factor(prev, c)
        if word_start:
            before = text[:i].rstrip(" ")
            sentence_start = not before or before[-1] in ".!?:\n"
            burst = rng.random() < prof.burst_p
            if sentence_start:
                factor *= 3.0
                if i > 0 and rng.random() < prof.sentence_pause_p:
                    pause = rng.uniform(1000.0, 4000.0)
            else:
                factor *= 1.5
                if rng.random() < prof.word_pause_p:
                    pause = rng.uniform(1000.0, 4000.0)
            word = text[i:].split(None, 1)[0]
            if len(word) >= 2 and rng.random() < prof.word_error_rate:
                i = _typo(steps, text, i, word, factor, pause, prev, rng, base)
                prev = text[i - 1]
                continue
        if burst:
            factor *= 0.75
        steps.append(_Step("type", c, base() * factor, pause))
        prev = c
        i += 1

    return _timed(steps, prof, seed, passage, text, rng)


def _typo(steps, text, i, word, factor, pause, prev, rng, base) -> int:
    """Type ``word`` (starting at ``text[i]``) with one wrong key, noticed and corrected."""
    letters = [j for j, ch in enumerate(word) if ch.isalpha() and _neighbours(ch)]
    at = rng.choice(letters) if letters else None
    j = 0
    for j, ch in enumerate(word):
        f = factor if j == 0 else _key_factor(prev, ch)
        if j == at:
            wrong = rng.choice(_neighbours(ch))
            steps.append(_Step("type", wrong, base() * f, pause if j == 0 else 0.0))
            extra = 1 if j + 1 < len(word) and rng.random() < 0.4 else 0
            for k in range(extra):
                steps.append(_Step("type", word[j + 1 + k], base() * _key_factor(wrong, ch)))
            # Notice the mistake, then delete back to it.
            for k in range(1 + extra):
                steps.append(_Step("backspace", "", base() * (2.5 if k == 0 else 0.8)))
            steps.append(_Step("type", ch, base() * 1.2))
        else:
            steps.append(_Step("type", ch, base() * f, pause if j == 0 else 0.0))
        prev = ch
    return i + len(word)


def _timed(steps, prof, seed, passage, text, rng) -> Trace:
    # Scale the relative gaps so the mean gap, thinking pauses included, lands on the typist's
    # target (with a little per-trace variation, as one person differs from day to day).
    gaps = steps[1:]
    target = prof.mean_iki_ms * min(1.08, max(0.92, rng.lognormvariate(0.0, 0.04)))
    rel_total = sum(s.rel for s in gaps)
    pause_total = sum(s.pause_ms for s in gaps)
    scale = max(1.0, (target * len(gaps) - pause_total)) / rel_total if rel_total else 0.0
    t = 0.0
    events = []
    for n, s in enumerate(steps):
        if n:
            t += s.rel * scale + s.pause_ms
        events.append(Keystroke(round(t), s.kind, s.text))
    trace = Trace(prof.name, passage, seed, tuple(events), text)
    assert trace.replay() == text, "a trace must rebuild its passage"
    return trace


# ---------------------------------------------------------------------------------------------
# The shipped passages and traces


def _data_dir():
    return resources.files("assistant").joinpath("data/traces")


def load_passages() -> dict[str, str]:
    base = _data_dir().joinpath("passages")
    return {name: base.joinpath(f).read_text(encoding="utf-8") for name, f in PASSAGE_FILES.items()}


def generate_all(seed: int = 0) -> list[Trace]:
    return [
        generate(text, typist, seed, passage)
        for typist in TYPISTS
        for passage, text in load_passages().items()
    ]


def dumps(trace: Trace) -> str:
    """A trace as JSON, one event a line: small, stable and readable in a diff."""
    d = trace.to_json()
    events = d.pop("events")
    head = json.dumps(d, ensure_ascii=False, indent=1)[:-2]
    body = ",\n".join(
        "  " + json.dumps(e, ensure_ascii=False, separators=(",", ":")) for e in events
    )
    return f'{head},\n "events": [\n{body}\n ]\n}}\n'


def load_traces(directory: str | Path | None = None) -> list[Trace]:
    """The saved traces (slow, average and fast typists, each on every passage)."""
    if directory is None:
        files = [p for p in _data_dir().iterdir() if p.name.endswith(".json")]
    else:
        files = list(Path(directory).glob("*.json"))
    traces = [Trace.from_json(json.loads(p.read_text(encoding="utf-8"))) for p in files]
    order = {name: i for i, name in enumerate(TYPISTS)}
    return sorted(traces, key=lambda t: (order.get(t.typist, 99), t.passage))


def write_all(out: str | Path, seed: int = 0) -> list[Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for trace in generate_all(seed):
        path = out / f"{trace.name}.json"
        path.write_text(dumps(trace), encoding="utf-8")
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m assistant.bench.traces", description="regenerate the seeded typing traces"
    )
    parser.add_argument("--out", default="assistant/data/traces", help="directory to write")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for path in write_all(args.out, args.seed):
        t = Trace.from_json(json.loads(path.read_text(encoding="utf-8")))
        print(
            f"{path}: {len(t.events)} keys, {t.duration_ms / 1000:.1f} s, "
            f"mean gap {t.mean_iki_ms:.0f} ms, {t.wpm:.0f} WPM, {t.backspaces} backspaces"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
