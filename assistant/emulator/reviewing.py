"""How the emulated models review a document: seeded, *modelled* detection rates per model.

Given labelled issues (the review corpus's ``labels.json``: class, quote, replacement, and for a
contradiction the ``evidence`` it contradicts), each model finds each issue with a probability
that depends on the model family and the issue's class. The rates are the seed's qualitative
claims turned into numbers by us, not measurements: Haiku strong on surface errors and weaker on
reasoning, with a few confident false positives; Sonnet stronger on reasoning. Nothing here was
measured against a real model.

Draws are deterministic hashes of (seed, what is drawn, the issue's quote), not of the request,
so one issue is found or missed the same way by every request that shows it (a re-review after a
one-word edit gets the same answer), and one "difficulty" draw per issue is shared by the models:
what Haiku finds, Sonnet finds too (the nested model; hard issues are hard for both).

Three request shapes, told apart by the JSON schema the request asks for (see
``assistant.review_requests``): a whole-document ``review``; a whole-document ``triage`` that also
returns ``flags`` (passages needing deeper review); a ``verify`` of passages that returns a
``verdict`` on each finding it is shown plus its own findings.

Without labels every model finds exactly the mechanical problems of :func:`text.review_findings`
and nothing else (the behaviour tests pin exact findings on).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from .text import _unique_span, between_tags, last_user_text, review_document, review_findings

SURFACE = ("spelling", "doubled_word", "spacing", "grammar")
REASONING = ("numbers", "fact", "argument", "structure", "tone")


@dataclass(frozen=True)
class ReviewSkill:
    """One model family's modelled reviewing."""

    detect: dict[str, float]  # P(finds an issue of this class) on the whole document
    confidence: dict[str, tuple[float, float]]  # reported confidence range when it finds one
    flag: float = 0.0  # triage: P(flags the passage of a reasoning issue it did not diagnose)
    false_flag: float = 0.0  # triage: P(flags an innocent sentence)
    confident_wrong: float = 0.0  # P(a sentence gets a confident, wrong reasoning finding)
    unsure_wrong: float = 0.0  # P(a sentence gets an unsure, wrong spelling finding)
    style_wrong: float = 0.0  # P(a sentence gets a needless rewording)
    verify: float = 0.0  # P(confirms a true finding it is shown) (>= detect: checking is easier)
    reject_wrong: float = 0.0  # P(drops a false finding it is shown)


_SURE = (0.88, 0.99)
SKILLS: dict[str, ReviewSkill] = {
    "haiku": ReviewSkill(
        detect={
            "spelling": 0.97,
            "doubled_word": 0.98,
            "spacing": 0.97,
            "grammar": 0.90,
            "numbers": 0.55,
            "fact": 0.45,
            "argument": 0.35,
            "structure": 0.4,
            "tone": 0.5,
        },
        confidence={
            "spelling": _SURE,
            "doubled_word": _SURE,
            "spacing": _SURE,
            "grammar": (0.62, 0.97),
            "reasoning": (0.45, 0.95),
        },
        flag=0.96,
        false_flag=0.06,
        confident_wrong=0.06,
        unsure_wrong=0.03,
        style_wrong=0.0,
    ),
    "sonnet": ReviewSkill(
        detect={
            "spelling": 0.98,
            "doubled_word": 0.98,
            "spacing": 0.96,
            "grammar": 0.93,
            "numbers": 0.90,
            "fact": 0.85,
            "argument": 0.85,
            "structure": 0.8,
            "tone": 0.8,
        },
        confidence={
            "spelling": _SURE,
            "doubled_word": _SURE,
            "spacing": _SURE,
            "grammar": _SURE,
            "reasoning": (0.8, 0.97),
        },
        style_wrong=0.02,
        verify=0.96,
        reject_wrong=0.97,
    ),
}
SKILLS["opus"] = SKILLS["sonnet"]

_SENTENCE = re.compile(r"[^.!?\n]+[.!?]?")
_MECHANICAL_CLASS = (
    ("misspelled", "spelling"),
    ("repeated", "doubled_word"),
    ("spaces", "spacing"),
    ("whitespace", "spacing"),
    ("pronoun", "grammar"),
)


@dataclass(frozen=True)
class Issue:
    cls: str
    quote: str
    replacement: str
    problem: str
    evidence: str | None = None

    @property
    def reasoning(self) -> bool:
        return self.cls in REASONING


def skill_for(model: str) -> ReviewSkill:
    for family, skill in SKILLS.items():
        if family in model:
            return skill
    return SKILLS["sonnet"]


def draw(seed: int, *parts: str) -> float:
    """A uniform number in [0, 1) fixed by ``seed`` and ``parts``."""
    digest = hashlib.sha256("\x00".join((str(seed), *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def issues_in(text: str, labels: Sequence[dict]) -> list[Issue]:
    """The labelled issues whose quote is in ``text``, plus mechanical ones no label covers."""
    found: list[tuple[int, Issue]] = []
    spans: list[tuple[int, int]] = []
    # Longest quotes first: a label "untill" from one document must not claim the "untill pale"
    # another document's label covers.
    for label in sorted(labels, key=lambda label: -len(label.get("quote", ""))):
        quote = label.get("quote", "")
        pos = text.find(quote) if quote else -1
        if pos < 0 or any(a < pos + len(quote) and pos < b for a, b in spans):
            continue
        found.append(
            (
                pos,
                Issue(
                    label["class"],
                    quote,
                    label["replacement"],
                    label.get("problem", ""),
                    label.get("evidence"),
                ),
            )
        )
        spans.append((pos, pos + len(quote)))
    for raw in review_findings(text):
        pos = text.find(raw["quote"])
        end = pos + len(raw["quote"])
        if any(a < end and pos < b for a, b in spans):
            continue
        cls = next((c for key, c in _MECHANICAL_CLASS if key in raw["problem"]), "spelling")
        found.append((pos, Issue(cls, raw["quote"], raw["replacement"], raw["problem"])))
    found.sort(key=lambda item: item[0])
    return [issue for _, issue in found]


def _finding(issue: Issue, skill: ReviewSkill, seed: int, model_family: str) -> dict:
    low, high = skill.confidence.get(issue.cls) or skill.confidence["reasoning"]
    confidence = low + (high - low) * draw(seed, "confidence", model_family, issue.quote)
    return {
        "quote": issue.quote,
        "problem": issue.problem or "Needs a fix.",
        "replacement": issue.replacement,
        "severity": "high" if issue.reasoning or issue.cls == "spelling" else "medium",
        "category": issue.cls,
        "confidence": round(confidence, 2),
    }


def _detects(issue: Issue, skill: ReviewSkill, seed: int, visible: str) -> bool:
    if issue.evidence and issue.evidence not in visible:
        return False  # a contradiction cannot be seen without the statement it contradicts
    return draw(seed, "difficulty", issue.quote) < skill.detect.get(issue.cls, 0.5)


def _sentences(text: str) -> list[str]:
    return [m.group().strip() for m in _SENTENCE.finditer(text) if len(m.group().split()) >= 6]


def _clean(sentence: str, issues: Sequence[Issue]) -> bool:
    return not any(i.quote in sentence or sentence in i.quote for i in issues)


def _opening(text: str, sentence: str, words: int = 5) -> str:
    start = text.find(sentence)
    head = " ".join(sentence.split()[:words])
    end = start + len(head)
    if start < 0 or text[start:end] != head:
        return ""
    u_start, u_end = _unique_span(text, start, end)
    return text[u_start:u_end]


def _wrong_findings(text: str, issues: Sequence[Issue], skill: ReviewSkill, seed: int, family: str):
    """The model's false positives on the clean sentences of ``text``."""
    out: list[tuple[int, dict]] = []
    for sentence in _sentences(text):
        if not _clean(sentence, issues):
            continue
        quote = _opening(text, sentence)
        if not quote:
            continue
        pos = text.find(quote)
        if draw(seed, "confident-wrong", family, sentence) < skill.confident_wrong:
            number = re.search(r"\d+", quote)
            if number:
                wrong = (
                    quote[: number.start()] + str(int(number.group()) + 1) + quote[number.end() :]
                )
                cls = "numbers"
            else:
                wrong, cls = f"{quote} (which is not true)", "fact"
            out.append(
                (
                    pos,
                    {
                        "quote": quote,
                        "problem": "This claim is wrong.",
                        "replacement": wrong,
                        "severity": "high",
                        "category": cls,
                        "confidence": 0.93,
                    },
                )
            )
        elif draw(seed, "unsure-wrong", family, sentence) < skill.unsure_wrong:
            word = max(re.findall(r"[A-Za-z]{6,}", quote) or [""], key=len)
            if word:
                swapped = word[:2] + word[3] + word[2] + word[4:]
                out.append(
                    (
                        pos,
                        {
                            "quote": quote,
                            "problem": f'"{word}" may be misspelled.',
                            "replacement": quote.replace(word, swapped, 1),
                            "severity": "medium",
                            "category": "spelling",
                            "confidence": 0.55,
                        },
                    )
                )
        elif draw(seed, "style-wrong", family, sentence) < skill.style_wrong:
            out.append(
                (
                    pos,
                    {
                        "quote": quote,
                        "problem": "Consider a more direct opening.",
                        "replacement": "Indeed, " + quote[:1].lower() + quote[1:],
                        "severity": "low",
                        "category": "tone",
                        "confidence": 0.85,
                    },
                )
            )
    return out


def _full_review(text: str, labels, model: str, seed: int, triage: bool, rich: bool) -> dict:
    family = next((f for f in SKILLS if f in model), "sonnet")
    skill = skill_for(model)
    if not labels:
        raw = review_findings(text)
        if rich:  # the schema asks for a class and a confidence: the mechanical ones are sure
            raw = [
                dict(f, category=issue.cls, confidence=0.95)
                for f, issue in zip(raw, issues_in(text, ()), strict=True)
            ]
        return {"findings": raw, "flags": []} if triage else {"findings": raw}
    issues = issues_in(text, labels)
    found = [
        (text.find(i.quote), _finding(i, skill, seed, family))
        for i in issues
        if _detects(i, skill, seed, text)
    ]
    found += _wrong_findings(text, issues, skill, seed, family)
    found.sort(key=lambda item: item[0])
    reply: dict = {"findings": [f for _, f in found]}
    if triage:
        diagnosed = {f["quote"] for _, f in found}
        flags: list[tuple[int, dict]] = []
        for issue in issues:
            if not issue.reasoning:
                continue
            if issue.quote in diagnosed or draw(seed, "flag", family, issue.quote) < skill.flag:
                flag = {"quote": issue.quote, "reason": f"check the {issue.cls} here"}
                if issue.evidence:
                    flag["related"] = [issue.evidence]
                flags.append((text.find(issue.quote), flag))
        for sentence in _sentences(text):
            if _clean(sentence, issues) and draw(seed, "false-flag", family, sentence) < (
                skill.false_flag
            ):
                flags.append(
                    (text.find(sentence), {"quote": sentence, "reason": "check the logic"})
                )
        flags.sort(key=lambda item: item[0])
        reply["flags"] = [f for _, f in flags]
    return reply


def _verify(user: str, labels, model: str, seed: int) -> dict:
    family = next((f for f in SKILLS if f in model), "sonnet")
    skill = skill_for(model)
    passages = re.findall(r"<passage>(.*?)</passage>", user, flags=re.DOTALL)
    visible = "\n".join(passages)
    try:
        items = json.loads(between_tags(user, "findings") or "[]")
        shown = json.loads(between_tags(user, "shown") or "[]")
    except ValueError:
        items, shown = [], []
    issues = issues_in(visible, labels) if labels else issues_in(visible, ())
    verdicts = []
    covered: list[str] = [s.get("quote", "") for s in shown if isinstance(s, dict)]
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        quote = str(item.get("quote", ""))
        covered.append(quote)
        match = next((i for i in issues if i.quote in quote or (quote and quote in i.quote)), None)
        verdict: dict = {"id": item.get("id")}
        if match is None:
            keep = draw(seed, "reject", family, quote) >= skill.reject_wrong
            verdict["verdict"] = "confirm" if keep else "drop"
        elif (match.evidence is None or match.evidence in visible) and draw(
            seed, "difficulty", match.quote
        ) < max(skill.verify, skill.detect.get(match.cls, 0.5)):
            if item.get("replacement") == match.replacement and item.get("quote") == match.quote:
                verdict["verdict"] = "confirm"
            else:
                verdict.update(
                    verdict="correct",
                    quote=match.quote,
                    replacement=match.replacement,
                    problem=match.problem or "Needs a fix.",
                )
        else:
            verdict["verdict"] = "drop"
        verdicts.append(verdict)
    own = [
        (visible.find(i.quote), _finding(i, skill, seed, family))
        for i in issues
        if not any(i.quote in c or (c and c in i.quote) for c in covered)
        and _detects(i, skill, seed, visible)
    ]
    if labels:
        own += _wrong_findings(visible, issues, skill, seed, family)
    own.sort(key=lambda item: item[0])
    return {"verdicts": verdicts, "findings": [f for _, f in own]}


def apply_edits(base: str, edits: object) -> str:
    """``base`` with the request's edits (``[{"at", "old", "new"}]``, offsets into ``base``)."""
    if not isinstance(edits, list):
        return base
    valid = [
        e
        for e in edits
        if isinstance(e, dict)
        and isinstance(e.get("at"), int)
        and isinstance(e.get("old"), str)
        and isinstance(e.get("new"), str)
        and base[e["at"] : e["at"] + len(e["old"])] == e["old"]
    ]
    text = base
    for e in sorted(valid, key=lambda e: e["at"], reverse=True):
        text = text[: e["at"]] + e["new"] + text[e["at"] + len(e["old"]) :]
    return text


def _asks_for_confidence(body: dict) -> bool:
    try:
        schema = body["output_config"]["format"]["schema"]
        return "confidence" in schema["properties"]["findings"]["items"]["properties"]
    except (KeyError, TypeError):
        return False


def review_mode(body: dict) -> str:
    """``review``, ``triage`` or ``verify``, from the properties of the requested schema."""
    try:
        props = body["output_config"]["format"]["schema"]["properties"]
    except (KeyError, TypeError):
        return "review"
    if isinstance(props, dict) and "verdicts" in props:
        return "verify"
    if isinstance(props, dict) and "flags" in props:
        return "triage"
    return "review"


def review_reply(body: dict, *, labels: Sequence[dict] = (), seed: int = 0) -> str:
    """The JSON text the emulated model answers a review request with."""
    model = str(body.get("model", ""))
    user = last_user_text(body)
    mode = review_mode(body)
    if mode == "verify":
        return json.dumps(_verify(user, labels, model, seed))
    document = review_document(body)
    edits = between_tags(user, "edits")
    if edits:
        try:
            document = apply_edits(document, json.loads(edits))
        except ValueError:
            pass
    sentence = between_tags(user, "sentence")
    if sentence is not None:
        return json.dumps(_sentence_check(sentence, labels, model, seed))
    triage = mode == "triage"
    rich = triage or _asks_for_confidence(body)
    return json.dumps(_full_review(document, labels, model, seed, triage=triage, rich=rich))


def _sentence_check(sentence: str, labels, model: str, seed: int) -> dict:
    """A check as you type (``assistant/check/model.py``): the review of the one sentence in
    <sentence>, surface classes only, each finding with its class and no confidence."""
    found = _full_review(sentence, labels, model, seed, triage=False, rich=True)["findings"]
    kept = []
    for f in found:
        if f.get("category") in SURFACE:
            kept.append({k: f[k] for k in ("quote", "replacement", "problem", "category")})
    return {"findings": kept}
