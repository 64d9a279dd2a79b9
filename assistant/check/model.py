"""The model's pass of the checks as you type: one small request per finished sentence, to the
suggestion role's model (Haiku 5.5), with the document as cached context.

The layout follows the review's (``review/requests.py``): the system prompt, then the document
as the stable, cached block (the text first seen for this document, kept as the base until it
drifts a fifth away, ``DocumentBases``), then the sentence, the only part that changes. Haiku
5.5 caches prompts from 512 tokens, so from a page of text on, each check reads the document
from the cache at a tenth of the input price. Surface classes only: reasoning stays with the
deep review.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..config import Settings
from ..pricing import Usage
from ..providers.base import Final, ProviderError, ProviderErrorKind
from ..review.requests import FINDINGS_SCHEMA, DocumentBases, tier_params
from .offline import CheckFinding

CATEGORIES = ("spelling", "doubled_word", "grammar", "word_choice")
MAX_TOKENS = 400  # a sentence's findings: 17 output tokens a check on average on the corpus
TIMEOUT_S = 15.0

CHECK_ITEM: dict = {
    "type": "object",
    "properties": {
        "quote": {"type": "string"},
        "replacement": {"type": "string"},
        "problem": {"type": "string"},
        "category": {"type": "string", "enum": list(CATEGORIES)},
    },
    "required": ["quote", "replacement", "problem", "category"],
    "additionalProperties": False,
}
# The review's findings schema with the check's item: the same reply shape, fewer fields.
CHECK_SCHEMA: dict = {
    **FINDINGS_SCHEMA,
    "properties": {"findings": {"type": "array", "items": CHECK_ITEM}},
}

CHECK_SYSTEM = """\
You proofread as the author writes. The document is in <document> tags, for context only (it \
may be slightly older than the sentence). Check only the sentence in <sentence> tags, which \
the author has just finished, for surface problems: spelling (spelling), a repeated word \
(doubled_word), grammar (grammar), and a word that is clearly the wrong one (word_choice). \
Never comment on facts, logic, structure or style; say nothing about a sentence that is fine.

Each finding gives:
- quote: the shortest exact text of the sentence with the problem, copied character for \
character;
- replacement: the text that should replace the quote;
- problem: one short sentence;
- category: spelling, doubled_word, grammar or word_choice.

Report only what you are sure of; an empty list is the usual answer."""


@dataclass(frozen=True, slots=True)
class ModelCheck:
    findings: tuple[CheckFinding, ...]
    model: str
    usage: Usage


def check_params(model: str, base: str, sentence: str) -> dict:
    return tier_params(
        model=model,
        max_tokens=MAX_TOKENS,
        system=CHECK_SYSTEM,
        stable=f"<document>{base}</document>",
        changing=f"<sentence>{sentence}</sentence>",
        schema=CHECK_SCHEMA,
    )


def parse_findings(reply: str, sentence: str, source: str) -> tuple[CheckFinding, ...]:
    """The reply's findings located in ``sentence``; one that quotes text not in the sentence,
    changes nothing, or is of another class is dropped (it could not be applied safely)."""
    try:
        items = json.loads(reply).get("findings", [])
    except (ValueError, AttributeError) as exc:
        raise ProviderError(ProviderErrorKind.INTERNAL, "the check reply was not JSON") from exc
    found = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        quote, replacement = item.get("quote"), item.get("replacement")
        category = item.get("category")
        if not isinstance(quote, str) or not isinstance(replacement, str) or not quote:
            continue
        if quote == replacement or category not in CATEGORIES:
            continue
        at = sentence.find(quote)
        if at < 0:
            continue
        problem = str(item.get("problem") or "Check this.")
        found.append(CheckFinding(at, at + len(quote), replacement, problem, source, category))
    return tuple(sorted(found, key=lambda f: f.start))


class ModelChecker:
    """Checks sentences with the suggestion role's model; one per server (shared client)."""

    def __init__(self, settings: Settings, *, client=None) -> None:
        from ..providers.anthropic import make_client

        self.model = settings.suggest_model
        self._own_client = client is None
        self.client = client or make_client(
            settings,
            timeout=TIMEOUT_S,
            connect_timeout=max(settings.suggest_connect_timeout_s, 5.0),
            max_retries=0,
        )
        self.bases = DocumentBases()

    async def check(self, text: str, sentence: str, *, document: str) -> ModelCheck:
        """The model's findings in ``sentence`` of ``text``. Raises :class:`ProviderError`."""
        from ..providers.anthropic import stream_messages

        base = self.bases.prepare(document, text).base
        parts: list[str] = []
        final: Final | None = None
        stream = stream_messages(self.client, check_params(self.model, base, sentence))
        try:
            async for event in stream:
                if isinstance(event, Final):
                    final = event
                else:
                    parts.append(event.text)
        finally:
            await stream.aclose()
        assert final is not None
        model = final.model or self.model
        return ModelCheck(parse_findings("".join(parts), sentence, model), model, final.usage)

    def forget(self, document: str) -> None:
        self.bases.forget(document)

    async def aclose(self) -> None:
        if self._own_client:
            await self.client.close()
