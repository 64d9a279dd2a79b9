"""The requests of a tiered review: prompts, output schemas, and cacheable prompt layout.

Every request is built by :func:`tier_params`, which starts from :func:`review_params` (the
one place that knows each model's request rules: sampling parameters, thinking, prefill) and
only swaps in the tier's system prompt, content blocks and schema.

Prompt caching keys on exact prefixes, so the layout puts what stays the same first: the system
prompt, then the document, then whatever changes. A re-review of an edited document sends the
text reviewed before (the *base*, still cached) followed by the edits since, rather than the new
text: a one-word edit then costs a few uncached tokens instead of the whole document.
:class:`DocumentBases` remembers the bases, per document, and starts a new base once the edits
grow past a fifth of the text.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass

from ..pricing import Catalog, ModelRules, default_catalog, estimate_tokens
from .findings import CLASSES, SEVERITIES

FINDING_ITEM: dict = {
    "type": "object",
    "properties": {
        "quote": {"type": "string"},
        "problem": {"type": "string"},
        "replacement": {"type": "string"},
        "severity": {"type": "string", "enum": list(SEVERITIES)},
        "category": {"type": "string", "enum": list(CLASSES)},
        "confidence": {"type": "number"},
    },
    "required": ["quote", "problem", "replacement", "severity", "category", "confidence"],
    "additionalProperties": False,
}

FINDINGS_SCHEMA: dict = {
    "type": "object",
    "properties": {"findings": {"type": "array", "items": FINDING_ITEM}},
    "required": ["findings"],
    "additionalProperties": False,
}

REVIEW_SYSTEM = """\
You are a careful copy editor reviewing a document for its author. The document is in \
<document> tags. If <edits> follow it, the author has edited it since: each edit gives "at" (an \
offset into the text in <document>), "old" (the text there) and "new" (what replaced it); \
review the document as it is after the edits and quote its current text.

Report real problems only, each with:
- quote: the exact text with the problem, copied character for character from the current \
document, as short as possible while still unique;
- problem: one short sentence;
- replacement: the text that should replace the whole quote;
- severity: "high", "medium" or "low";
- category: spelling, doubled_word, spacing, grammar (surface), or numbers (figures that \
disagree), fact (a wrong fact), argument (a conclusion that does not follow), structure, tone \
(reasoning);
- confidence: from 0 to 1, how sure you are that this is a real problem and the fix is right.

Do not restyle text that is already correct. List findings in document order."""


def review_params(text: str, *, model: str, max_tokens: int) -> dict:
    """The review request, shaped by the model's rules in models.toml: up-front thinking kept off
    (it would delay the first finding and eat ``max_tokens``), and the findings schema sent as
    structured output where the model takes it (else the prompt alone asks for the JSON)."""
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


TRIAGE_SCHEMA: dict = {
    "type": "object",
    "properties": {
        "findings": {"type": "array", "items": FINDING_ITEM},
        "flags": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "quote": {"type": "string"},
                    "reason": {"type": "string"},
                    "related": {"type": "array", "items": {"type": "string"}},
                },
                "required": ["quote", "reason"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["findings", "flags"],
    "additionalProperties": False,
}

VERIFY_SCHEMA: dict = {
    "type": "object",
    "properties": {
        "verdicts": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "verdict": {"type": "string", "enum": ["confirm", "correct", "drop"]},
                    "quote": {"type": "string"},
                    "replacement": {"type": "string"},
                    "problem": {"type": "string"},
                },
                "required": ["id", "verdict"],
                "additionalProperties": False,
            },
        },
        "findings": {"type": "array", "items": FINDING_ITEM},
    },
    "required": ["verdicts", "findings"],
    "additionalProperties": False,
}

TRIAGE_SYSTEM = (
    REVIEW_SYSTEM
    + """

You are the first reader; a stronger reviewer checks what you flag. Besides findings, return \
flags: passages that need deeper review (logic, facts, numbers that disagree, structure, tone) \
even where you cannot say exactly what is wrong, and the passage of every reasoning finding \
you report. A flag quotes the passage exactly; put the \
quotes of other passages it must be read with (the figure it contradicts) in related. Be honest \
with confidence: below 0.8 means "a stronger reviewer should check this"."""
)

VERIFY_SYSTEM = """\
You check a junior reviewer's findings (<findings>, with ids) on passages of a document \
(<passage>). Give each a verdict: "confirm", "correct" (with the right quote, replacement and \
problem) or "drop" (not a real problem). Then add what the junior missed in these passages, \
above all numbers that disagree, wrong facts and conclusions that do not follow; skip what \
<shown> lists. Quote the passages exactly."""


_EPHEMERAL = {"type": "ephemeral"}


def _text_block(text: str, cache: bool) -> dict:
    block: dict = {"type": "text", "text": text}
    if cache:
        block["cache_control"] = dict(_EPHEMERAL)
    return block


def min_cacheable(model: str, catalog: Catalog | None = None) -> int:
    try:
        return (catalog or default_catalog()).price(model).min_cacheable_tokens
    except KeyError:
        return 0


def tier_params(
    *,
    model: str,
    max_tokens: int,
    system: str,
    stable: str,
    changing: str,
    schema: dict,
    catalog: Catalog | None = None,
) -> dict:
    """One review request: ``system`` and ``stable`` as cacheable prefix blocks, ``changing``
    after them. The system prompt gets its own breakpoint only when it alone reaches the model's
    minimum cacheable size (then it is shared by every document); the stable block always marks
    the end of the cacheable prefix (a prefix under the minimum is simply not cached)."""
    params = review_params(stable, model=model, max_tokens=max_tokens)
    if "output_config" in params:
        output = dict(params["output_config"])
        output["format"] = {"type": "json_schema", "schema": schema}
        params["output_config"] = output
    else:  # the model takes no structured output: the prompt asks for the JSON
        system += f"\n\nReply with only a JSON object matching this schema: {json.dumps(schema)}"
    minimum = min_cacheable(model, catalog)
    params["system"] = [_text_block(system, estimate_tokens(system) >= minimum > 0)]
    params["messages"] = [
        {"role": "user", "content": [_text_block(stable, True), _text_block(changing, False)]}
    ]
    return params


def document_blocks(base: str, edits: list[dict]) -> tuple[str, str]:
    """The stable and changing blocks of a whole-document request."""
    stable = f"<document>{base}</document>"
    if not edits:
        return stable, "Review the document above."
    # What the edits mean is in the (cached) system prompt; this block stays a few tokens long.
    return stable, f"<edits>{json.dumps(edits, ensure_ascii=False)}</edits>"


def verify_blocks(passages: list[str], items: list[dict], shown: list[dict]) -> tuple[str, str]:
    """The stable and changing blocks of a Sonnet check of flagged passages."""
    stable = "".join(f"<passage>{p}</passage>\n" for p in passages)
    changing = (
        f"<findings>{json.dumps(items, ensure_ascii=False)}</findings>\n"
        f"<shown>{json.dumps(shown, ensure_ascii=False)}</shown>\n"
        "Give a verdict on each finding, then add your own."
    )
    return stable, changing


@dataclass(frozen=True)
class Based:
    base: str
    edits: list[dict]


def single_edit(base: str, text: str) -> dict | None:
    """The one span where ``text`` differs from ``base`` (None when they are equal)."""
    if base == text:
        return None
    limit = min(len(base), len(text))
    head = 0
    while head < limit and base[head] == text[head]:
        head += 1
    tail = 0
    while tail < limit - head and base[-1 - tail] == text[-1 - tail]:
        tail += 1
    return {"at": head, "old": base[head : len(base) - tail], "new": text[head : len(text) - tail]}


class DocumentBases:
    """The text each document was last reviewed as, so a re-review can send base + edits.

    Keyed by a document key (a connection, a file path): never by similarity across keys, so one
    writer's text is never sent as another's base.
    """

    def __init__(self, max_documents: int = 64, max_edit_share: float = 0.2) -> None:
        self._bases: OrderedDict[str, str] = OrderedDict()
        self.max_documents = max_documents
        self.max_edit_share = max_edit_share

    def prepare(self, key: str, text: str) -> Based:
        base = self._bases.get(key)
        if base is not None:
            edit = single_edit(base, text)
            if edit is None:
                self._bases.move_to_end(key)
                return Based(base, [])
            changed = max(len(edit["old"]), len(edit["new"]))
            if changed <= self.max_edit_share * max(1, len(text)):
                self._bases.move_to_end(key)
                return Based(base, [edit])
        self._bases[key] = text
        self._bases.move_to_end(key)
        while len(self._bases) > self.max_documents:
            self._bases.popitem(last=False)
        return Based(text, [])

    def forget(self, key: str) -> None:
        """Drop what ``key`` was reviewed as (its connection closed): the next review of that
        key sends the whole text."""
        self._bases.pop(key, None)

    def __len__(self) -> int:
        return len(self._bases)
