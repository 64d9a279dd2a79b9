"""Which sentences of a document are finished, and so worth checking: sans-I/O.

A paragraph is a line. A sentence ends at ``.``, ``!`` or ``?`` (closing quotes and brackets
included) followed by white space or the end of the line. A sentence is *finished* when

* it has its end punctuation and the cursor has left it (the writer typed on past it), or the
  writer has paused ``PAUSE_S`` since the last keystroke; or
* it is the unpunctuated end of a paragraph the cursor is not in (the writer left the
  paragraph: a heading, a list item, a sentence left without its full stop).

Checking only finished sentences is what keeps the checks quiet: a word is never flagged while
it is still being typed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PAUSE_S = 0.4  # no keystroke for this long after the full stop: the sentence is finished
_END = re.compile(r"[.!?]+[\"')\]’”]*(?=\s|$)")
_LINE = re.compile(r"[^\n]+")


@dataclass(frozen=True, slots=True)
class Sentence:
    start: int  # code points into the document
    end: int
    text: str
    terminated: bool  # ends with its end punctuation
    line_start: int
    line_end: int


def sentences(text: str) -> list[Sentence]:
    """Every sentence of ``text``, in order, leading and trailing white space excluded."""
    out: list[Sentence] = []
    for line in _LINE.finditer(text):
        body, base = line.group(), line.start()
        pos = 0
        for end in _END.finditer(body):
            _add(out, body, base, pos, end.end(), True, line.end())
            pos = end.end()
        _add(out, body, base, pos, len(body), False, line.end())
    return out


def _add(out: list, body: str, base: int, start: int, end: int, terminated: bool, line_end: int):
    piece = body[start:end]
    stripped = piece.strip()
    if not stripped or not any(c.isalpha() for c in stripped):
        return
    lead = len(piece) - len(piece.lstrip())
    first = base + start + lead
    out.append(Sentence(first, first + len(stripped), stripped, terminated, base, line_end))


def is_finished(sentence: Sentence, cursor: int, idle_s: float, pause_s: float = PAUSE_S) -> bool:
    """Whether the writer is done with ``sentence`` (see the module's docstring)."""
    if not sentence.line_start <= cursor <= sentence.line_end:
        return True  # the writer left the paragraph
    if not sentence.terminated:
        return False
    return not sentence.start <= cursor <= sentence.end or idle_s >= pause_s


def finished_sentences(
    text: str,
    cursor: int,
    idle_s: float,
    pause_s: float = PAUSE_S,
    *,
    cut: tuple[bool, bool] = (False, False),
) -> list[Sentence]:
    """The finished sentences of ``text``. ``cut``: whether ``text`` was cut out of a longer
    document inside a line at its start and at its end; the sentence there may be a piece of
    one and is left out."""
    found = sentences(text)
    if cut[0]:
        found = found[1:]
    if cut[1]:
        found = found[:-1]
    return [s for s in found if is_finished(s, cursor, idle_s, pause_s)]
