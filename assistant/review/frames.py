"""Review frames back into review events, and the tier summary people read.

Shared by everything that reads a server's review frames (``assistant review --server``, the
terminal editor) so the optional tier fields are parsed once.
"""

from __future__ import annotations

from ..pricing import Usage
from .findings import Finding, TierReport


def usage_from(u: dict | None) -> Usage:
    u = u or {}
    return Usage(**{k: v for k, v in u.items() if k in Usage.__dataclass_fields__})


def finding_from_frame(frame: dict) -> Finding:
    """A ``finding`` frame as a :class:`Finding` (the tier fields are optional in the frame)."""
    confidence = frame.get("confidence")
    return Finding(
        int(frame["index"]),
        str(frame["quote"]),
        str(frame.get("problem", "")),
        str(frame.get("replacement", "")),
        str(frame.get("severity", "medium")),
        int(frame["start"]),
        int(frame["end"]),
        tier=str(frame.get("tier") or ""),
        confidence=float(confidence) if isinstance(confidence, int | float) else None,
        confirmed=bool(frame.get("confirmed", False)),
        category=str(frame.get("category") or ""),
    )


def tiers_from_frame(frame: dict) -> tuple[TierReport, ...]:
    out = []
    for t in frame.get("tiers") or ():
        if isinstance(t, dict):
            out.append(
                TierReport(
                    str(t.get("tier", "")),
                    str(t.get("model", "")),
                    status=str(t.get("status", "ok")),
                    usage=usage_from(t.get("usage")),
                    cost_usd=float(t.get("cost_usd") or 0.0),
                    latency_ms=float(t.get("latency_ms") or 0.0),
                    error=str(t.get("error") or ""),
                )
            )
    return tuple(out)


def tier_label(f: Finding) -> str:
    """Who found it and whether Sonnet confirmed it: ``haiku``, ``haiku, confirmed``,
    ``sonnet``; empty for a finding without a tier."""
    if not f.tier:
        return ""
    if f.tier == "haiku" and f.confirmed:
        return "haiku, confirmed"
    return f.tier


def format_tiers(tiers: tuple[TierReport, ...]) -> str:
    """``haiku $0.0003 (540 in, 410 cached) + sonnet $0.0012``: the cost split by tier."""
    parts = []
    for t in tiers:
        u = t.usage
        total_in = u.input_tokens + u.cache_creation_input_tokens + u.cache_read_input_tokens
        detail = f"{total_in} in"
        if u.cache_read_input_tokens:
            detail += f", {u.cache_read_input_tokens} cached"
        if t.status in ("ok", "reused"):
            parts.append(
                f"{t.tier} ${t.cost_usd:.4f} ({detail})"
                if t.status == "ok"
                else (f"{t.tier} reused")
            )
        elif t.status == "failed":
            parts.append(f"{t.tier} failed")
        else:
            parts.append(f"{t.tier} not needed")
    return " + ".join(parts)
