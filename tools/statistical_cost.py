"""Per-keystroke CPU of the statistical engine, by document size, and with many documents at once.

Each keystroke is one ``suggest(prefix, suffix, document_id)`` as the server makes it. Figures:
microseconds per keystroke while typing 1,500 characters at the end and in the middle of
1 KB, 20 KB and 100 KB documents, and while 600 writers (one document each, 2 KB) type in turn,
as on a busy server process. ``--baseline FILE`` runs the same on another version of
``assistant/providers/statistical.py`` (e.g. ``git show main:assistant/providers/statistical.py``)
in the same process, so the two columns come from the same run::

    git show main:assistant/providers/statistical.py > /tmp/statistical_main.py
    PYTHONPATH=. .venv/bin/python tools/statistical_cost.py --baseline /tmp/statistical_main.py
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WORDS = (
    "the of and to in a is that for it as was with be by on not he this are or his from at "
    "which but have an they you were their one all we can her has there been if more when will "
    "would who so no report budget team office customers quarter numbers support meeting week"
).split()


def make_document(chars: int, seed: int) -> str:
    rng = random.Random(seed)
    parts, size = [], 0
    while size < chars:
        sentence = " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 18))).capitalize()
        sentence += ". " if rng.random() < 0.9 else ".\n\n"
        parts.append(sentence)
        size += len(sentence)
    return "".join(parts)[:chars]


def load(path: Path | None):
    if path is None:
        from assistant.providers import statistical

        return statistical
    spec = importlib.util.spec_from_file_location("assistant.providers._statistical_baseline", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def typing_cost(module, chars: int, where: str) -> float:
    """Microseconds per keystroke typing 1,500 characters into a ``chars`` document."""
    engine = module.StatisticalProvider()
    doc = make_document(chars, seed=1)
    typed = make_document(1_500, seed=2)
    cut = len(doc) if where == "end" else doc.index(" ", len(doc) // 2) + 1
    before, after = doc[:cut], doc[cut:]
    engine.learn(before, after, "d")
    t = time.process_time()
    for i in range(len(typed) + 1):
        engine.suggest(before + typed[:i], after, "d")
    return (time.process_time() - t) / (len(typed) + 1) * 1e6


def many_writers_cost(module, writers: int = 600, keys: int = 30) -> float:
    """Microseconds per keystroke when ``writers`` documents are typed into in turn."""
    engine = module.StatisticalProvider()
    docs = [make_document(2_000, seed=k) for k in range(writers)]
    for k, doc in enumerate(docs):
        engine.learn(doc, "", f"w{k}")
    typed = make_document(keys, seed=99)
    t = time.process_time()
    for i in range(keys):
        for k, doc in enumerate(docs):
            engine.suggest(doc + typed[: i + 1], "", f"w{k}")
    return (time.process_time() - t) / (keys * writers) * 1e6


def measure(module) -> dict:
    module.lexicon(block=True)
    out = {}
    for chars in (1_000, 20_000, 100_000):
        for where in ("end", "middle"):
            out[f"{chars // 1000} KB, typing at the {where}"] = round(
                typing_cost(module, chars, where), 1
            )
    out["600 writers, 2 KB each, in turn"] = round(many_writers_cost(module), 1)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--baseline", type=Path, default=None, help="another statistical.py to compare")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    rows = {"current": measure(load(None))}
    if args.baseline:
        rows["baseline"] = measure(load(args.baseline))
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    names = list(rows)
    print("| keystrokes (µs of CPU each) | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for key in rows["current"]:
        print(f"| {key} | " + " | ".join(f"{rows[n][key]:,.1f}" for n in names) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
