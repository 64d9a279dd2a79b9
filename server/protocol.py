"""WebSocket protocol 1.1 (docs/protocol.md), sans I/O: frames in, typed frames or errors out.

:class:`FrameDecoder` turns the bytes or text of one client frame into a frozen dataclass, or
raises :class:`ProtocolError` carrying the error code, a message for the client and the id the
error belongs to (``None`` when the frame had no usable id). It holds the one piece of state the
protocol needs, the last request id read, so it can insist that ids increase. The ``*_frame``
functions build server frames as dicts and :func:`encode` turns them into JSON text. Nothing here
touches a socket, a clock or the engine, so it can be fuzzed in isolation.

1.1 adds incremental documents (``open``, ``edit``, ``suggest`` naming a document ``version``)
to every v1 frame, unchanged; the ``ready`` frame announces it with ``protocol_minor``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import orjson

PROTOCOL_VERSION = 1
PROTOCOL_MINOR = 1  # 1.1: open / edit / suggest by version
MAX_ID = 2**53 - 1  # ids must survive a JavaScript number
# Changes in one edit. Editors send one per keystroke; a cap keeps a frame full of tiny changes
# from costing the server a Python loop over a hundred thousand of them.
MAX_CHANGES = 1024

# Error codes (the `code` of an `error` frame).
BAD_REQUEST = "bad_request"
TOO_LARGE = "too_large"
RATE_LIMITED = "rate_limited"
UNAVAILABLE = "unavailable"
INTERNAL = "internal"
BUDGET_SPENT = "budget_spent"  # the writer's daily budget cannot cover the request
RESYNC = "resync"  # the server's copy of the document is not the one the frame names: re-open


class ProtocolError(Exception):
    """A client frame the server cannot act on; answered with an ``error`` frame."""

    def __init__(self, code: str, message: str, id: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.id = id


# -------------------------------------------------------------------------- client -> server


@dataclass(frozen=True, slots=True)
class Suggest:
    id: int
    prefix: str
    suffix: str = ""


@dataclass(frozen=True, slots=True)
class Change:
    """Replace ``[start, end)`` of the base text (code points) with ``text``."""

    start: int
    end: int
    text: str


@dataclass(frozen=True, slots=True)
class OpenDocument:
    """The whole text and cursor; the document is then at version ``id``."""

    id: int
    text: str
    cursor: int


@dataclass(frozen=True, slots=True)
class EditDocument:
    """``changes`` made to the text at version ``base``; the document is then at version ``id``."""

    id: int
    base: int
    changes: tuple[Change, ...]
    cursor: int


@dataclass(frozen=True, slots=True)
class SuggestAt:
    """A 1.1 ``suggest``: at the cursor of the server's copy of the document at ``version``.
    With ``edit`` it first applies that edit (whose id is the suggest's, and so the version):
    one frame per keystroke, as in v1."""

    id: int
    version: int
    edit: EditDocument | None = None


@dataclass(frozen=True, slots=True)
class Warm:
    """A document was opened: let the offline tier learn it / fill its prefix cache. No reply."""

    id: int
    prefix: str
    suffix: str = ""


@dataclass(frozen=True, slots=True)
class Cancel:
    id: int


@dataclass(frozen=True, slots=True)
class AcceptChars:
    id: int
    chars: int


REVIEW_TIERS = ("auto", "haiku", "sonnet")


@dataclass(frozen=True, slots=True)
class Review:
    id: int
    text: str
    tier: str | None = None  # None: the server's default (auto)


@dataclass(frozen=True, slots=True)
class CancelReview:
    id: int


@dataclass(frozen=True, slots=True)
class Ping:
    id: int


ClientFrame = (
    Suggest
    | SuggestAt
    | OpenDocument
    | EditDocument
    | Warm
    | Cancel
    | AcceptChars
    | Review
    | CancelReview
    | Ping
)
# Frames an error (a rate-limit refusal, a server bug) answers with their own id.
ANSWERED_BY_ID = (Suggest, SuggestAt, OpenDocument, EditDocument, Review, Ping)

# Frames that refer to an earlier id; every other frame opens something and needs a new id.
_REFERRING = {"cancel", "accept", "cancel_review"}


@dataclass(frozen=True, slots=True)
class Limits:
    max_prefix_chars: int = 100_000
    max_suffix_chars: int = 20_000
    max_review_chars: int = 200_000

    @property
    def max_document_chars(self) -> int:
        """An open document may hold what a v1 ``suggest`` could carry either side of a cursor."""
        return self.max_prefix_chars + self.max_suffix_chars


def _is_int(value: Any) -> bool:
    return type(value) is int  # not bool, not float


class FrameDecoder:
    """Validates client frames for one connection; remembers the last id it accepted."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.last_id = -1

    def decode(self, data: str | bytes) -> ClientFrame:
        try:
            obj = orjson.loads(data)
        except (orjson.JSONDecodeError, TypeError, ValueError):
            raise ProtocolError(BAD_REQUEST, "frame is not valid JSON") from None
        if not isinstance(obj, dict):
            raise ProtocolError(BAD_REQUEST, "frame is not a JSON object")
        kind = obj.get("type")
        raw_id = obj.get("id")
        if not isinstance(kind, str):
            raise ProtocolError(BAD_REQUEST, "frame has no string 'type'")
        if kind in _REFERRING:
            return self._referring(kind, raw_id, obj)
        # An opening frame, or an unknown type: either way a new, increasing id.
        if raw_id is None:
            raise ProtocolError(BAD_REQUEST, f"{_short(kind)} frame has no 'id'")
        if not _is_int(raw_id) or not 0 <= raw_id <= MAX_ID:
            raise ProtocolError(BAD_REQUEST, "'id' must be an integer from 0 to 2**53-1")
        if raw_id <= self.last_id:
            raise ProtocolError(
                BAD_REQUEST, f"id {raw_id} does not increase (last id was {self.last_id})"
            )
        self.last_id = fid = raw_id
        if kind == "suggest" and "prefix" not in obj and "version" in obj:
            return SuggestAt(fid, _version(obj, "version", fid))
        if kind == "suggest" and "prefix" not in obj and "base" in obj:
            return SuggestAt(fid, fid, self._edit(obj, fid))
        if kind == "open":
            return self._open(obj, fid)
        if kind == "edit":
            return self._edit(obj, fid)
        if kind in ("suggest", "warm"):
            prefix = obj.get("prefix")
            suffix = obj.get("suffix", "")
            if not isinstance(prefix, str):
                raise ProtocolError(BAD_REQUEST, f"{kind} needs a string 'prefix'", fid)
            if not isinstance(suffix, str):
                raise ProtocolError(BAD_REQUEST, "'suffix' must be a string", fid)
            lim = self.limits
            if len(prefix) > lim.max_prefix_chars:
                raise ProtocolError(
                    TOO_LARGE, f"prefix is over {lim.max_prefix_chars} characters", fid
                )
            if len(suffix) > lim.max_suffix_chars:
                raise ProtocolError(
                    TOO_LARGE, f"suffix is over {lim.max_suffix_chars} characters", fid
                )
            return Suggest(fid, prefix, suffix) if kind == "suggest" else Warm(fid, prefix, suffix)
        if kind == "ping":
            return Ping(fid)
        if kind == "review":
            text = obj.get("text")
            if not isinstance(text, str):
                raise ProtocolError(BAD_REQUEST, "review needs a string 'text'", fid)
            if len(text) > self.limits.max_review_chars:
                raise ProtocolError(
                    TOO_LARGE, f"text is over {self.limits.max_review_chars} characters", fid
                )
            tier = obj.get("tier")
            if tier is not None and tier not in REVIEW_TIERS:
                raise ProtocolError(
                    BAD_REQUEST, f"review 'tier' must be one of {', '.join(REVIEW_TIERS)}", fid
                )
            return Review(fid, text, tier)
        raise ProtocolError(BAD_REQUEST, f"unknown frame type {_short(kind)!r}", fid)

    def _open(self, obj: dict, fid: int) -> OpenDocument:
        text = obj.get("text")
        if not isinstance(text, str):
            raise ProtocolError(BAD_REQUEST, "open needs a string 'text'", fid)
        limit = self.limits.max_document_chars
        if len(text) > limit:
            raise ProtocolError(TOO_LARGE, f"text is over {limit} characters", fid)
        return OpenDocument(fid, text, _offset(obj.get("cursor"), "cursor", fid))

    def _edit(self, obj: dict, fid: int) -> EditDocument:
        """Shape only: whether the offsets fit the text is the document's to say."""
        base = _version(obj, "base", fid)
        raw = obj.get("changes")
        if not isinstance(raw, list):
            raise ProtocolError(BAD_REQUEST, "edit needs a list 'changes'", fid)
        if len(raw) > MAX_CHANGES:
            raise ProtocolError(TOO_LARGE, f"more than {MAX_CHANGES} changes in one edit", fid)
        changes = []
        for item in raw:
            if not (isinstance(item, list) and len(item) == 3 and isinstance(item[2], str)):
                raise ProtocolError(
                    BAD_REQUEST, "each change must be [start, end, text] (code points)", fid
                )
            start, end = _offset(item[0], "start", fid), _offset(item[1], "end", fid)
            if end < start:
                raise ProtocolError(
                    BAD_REQUEST, f"change [{start}, {end}] ends before it starts", fid
                )
            changes.append(Change(start, end, item[2]))
        return EditDocument(fid, base, tuple(changes), _offset(obj.get("cursor"), "cursor", fid))

    def _referring(self, kind: str, raw_id: Any, obj: dict) -> ClientFrame:
        """cancel / accept / cancel_review name an id the client sent before."""
        if not _is_int(raw_id) or not 0 <= raw_id <= self.last_id:
            raise ProtocolError(BAD_REQUEST, f"{kind} needs the 'id' of an earlier request")
        if kind == "cancel":
            return Cancel(raw_id)
        if kind == "cancel_review":
            return CancelReview(raw_id)
        chars = obj.get("chars")
        if not _is_int(chars) or chars < 0:
            raise ProtocolError(BAD_REQUEST, "accept needs a non-negative integer 'chars'")
        return AcceptChars(raw_id, chars)


def _offset(value: Any, name: str, fid: int) -> int:
    if not _is_int(value) or not 0 <= value <= MAX_ID:
        raise ProtocolError(
            BAD_REQUEST, f"'{name}' must be a non-negative integer (code points)", fid
        )
    return value


def _version(obj: dict, name: str, fid: int) -> int:
    value = obj.get(name)
    if not _is_int(value) or not 0 <= value <= MAX_ID:
        raise ProtocolError(
            BAD_REQUEST, f"'{name}' must be a document version (the id of an open or edit)", fid
        )
    return value


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


# -------------------------------------------------------------------------- server -> client


def encode(frame: dict) -> str:
    """JSON text of a server frame. orjson, except for text it refuses (a lone surrogate a
    provider let through), which is sent with that character replaced by ``?``."""
    try:
        return orjson.dumps(frame).decode()
    except (orjson.JSONEncodeError, TypeError):
        text = json.dumps(frame, ensure_ascii=False, default=str)
        return text.encode("utf-8", "replace").decode("utf-8")


def usage_dict(usage: Any) -> dict:
    """The Anthropic usage shape from a ``Usage``, a dict or None."""
    if usage is None:
        return {
            "input_tokens": 0,
            "output_tokens": 0,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "estimated": False,
        }
    if isinstance(usage, dict):
        d = dict(usage)
    else:
        d = usage.to_dict()
    d.setdefault("estimated", False)
    return d


def ready_frame(provider: str, model: str, limits: Limits, max_frame_bytes: int) -> dict:
    return {
        "type": "ready",
        "protocol": PROTOCOL_VERSION,
        "protocol_minor": PROTOCOL_MINOR,
        "provider": provider,
        "model": model,
        "limits": {
            "max_prefix_chars": limits.max_prefix_chars,
            "max_suffix_chars": limits.max_suffix_chars,
            "max_review_chars": limits.max_review_chars,
            "max_document_chars": limits.max_document_chars,
            "max_frame_bytes": max_frame_bytes,
        },
    }


def delta_frame(id: int, text: str) -> dict:
    return {"type": "delta", "id": id, "text": text}


def done_frame(
    id: int,
    text: str,
    *,
    source: str,
    model: str,
    latency_ms: float,
    usage: Any,
    cost_usd: float,
) -> dict:
    u = usage_dict(usage)
    return {
        "type": "done",
        "id": id,
        "text": text,
        "source": source,
        "model": model,
        "latency_ms": round(latency_ms, 3),
        "usage": u,
        "cost_usd": cost_usd,
        "estimated": bool(u.get("estimated")),
    }


def cancelled_frame(id: int, reason: str) -> dict:
    return {"type": "cancelled", "id": id, "reason": reason}


def error_frame(id: int | None, code: str, message: str) -> dict:
    return {"type": "error", "id": id, "code": code, "message": message}


def pong_frame(id: int) -> dict:
    return {"type": "pong", "id": id}


def status_frame(
    provider: str,
    state: str,
    *,
    until: float | None,
    retry_after_s: float | None,
    active: str,
    reason: str,
) -> dict:
    return {
        "type": "status",
        "provider": provider,
        "state": state,
        "until": until,
        "retry_after_s": retry_after_s,
        "active": active,
        "reason": reason,
    }


def review_delta_frame(id: int, text: str) -> dict:
    return {"type": "review_delta", "id": id, "text": text}


def finding_frame(
    id: int,
    *,
    index: int,
    quote: str,
    problem: str,
    replacement: str,
    severity: str,
    start: int,
    end: int,
    tier: str = "",
    confidence: float | None = None,
    confirmed: bool = False,
    category: str = "",
) -> dict:
    return {
        "type": "finding",
        "id": id,
        "index": index,
        "quote": quote,
        "problem": problem,
        "replacement": replacement,
        "severity": severity,
        "start": start,
        "end": end,
        "tier": tier,
        "confidence": confidence,
        "confirmed": confirmed,
        "category": category,
    }


def finding_retracted_frame(id: int, *, index: int, reason: str) -> dict:
    return {"type": "finding_retracted", "id": id, "index": index, "reason": reason}


def review_done_frame(
    id: int,
    *,
    findings: int,
    model: str,
    usage: Any,
    cost_usd: float,
    latency_ms: float,
    tiers: list[dict] | None = None,
    note: str = "",
    withheld: int = 0,
) -> dict:
    return {
        "type": "review_done",
        "id": id,
        "findings": findings,
        "model": model,
        "usage": usage_dict(usage),
        "cost_usd": cost_usd,
        "latency_ms": round(latency_ms, 3),
        "tiers": tiers or [],
        "note": note,
        "withheld": withheld,
    }
