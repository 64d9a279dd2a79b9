"""``assistant suggest``: one suggestion for the text on stdin (the cursor is at its end).

A one-shot command has no next keystroke to be fast for, so unlike the editor it waits for the
tier it would use: the word list and, when it is installed and no key is set, the local model
(with a progress line on stderr while it loads), instead of answering at once from whatever is
ready.
"""

from __future__ import annotations

import asyncio
import sys
import time

import orjson

from ..config import load_settings
from ..pricing import cost_usd
from ..providers.base import CompletionRequest, Final, ProviderError, TextChunk
from ..providers.factory import make_suggest_provider
from ..providers.local import LocalModelProvider
from ..providers.offline import OfflineProvider
from ..providers.tiered import TieredProvider
from ..suggest.text import finalize


def _progress(message: str) -> None:
    print(f"assistant suggest: {message}", file=sys.stderr, flush=True)


async def ready_offline_tier(provider, prefix: str, progress=_progress) -> None:
    """Load what the offline tier will answer with, when it is the tier that will answer."""
    if not isinstance(provider, TieredProvider) or provider.primary is not None:
        return  # Anthropic answers (its failure falls back to whatever is ready)
    offline = provider.fallback
    local = offline.local if isinstance(offline, OfflineProvider) else offline
    if isinstance(local, LocalModelProvider) and not local.local.loaded:
        progress("loading the local model (Gemma 3 270M)…")
    await offline.warm(prefix)
    if isinstance(offline, OfflineProvider) and offline.local_failed:
        progress(f"local model unavailable, using the statistical engine: {offline.local_failed}")


async def suggest_once(prefix: str, suffix: str, *, offline: bool = False) -> dict:
    settings = load_settings()
    provider = make_suggest_provider(settings, offline_only=offline)
    raw, final = "", None
    try:
        await ready_offline_tier(provider, prefix)
        started = time.perf_counter()
        async for event in provider.stream(
            CompletionRequest(prefix, suffix, max_tokens=settings.suggest_max_tokens)
        ):
            if isinstance(event, TextChunk):
                raw += event.text
            elif isinstance(event, Final):
                final = event
    finally:
        await provider.aclose()
    latency_ms = (time.perf_counter() - started) * 1000
    truncated = bool(final and final.stop_reason == "max_tokens")
    text = finalize(raw, prefix, suffix, truncated=truncated)
    usage = final.usage if final else None
    model = final.model if final else provider.model
    return {
        "text": text,
        "source": final.source if final else "none",
        "provider": final.provider if final else provider.name,
        "model": model,
        "latency_ms": round(latency_ms, 1),
        "usage": usage.to_dict() if usage else None,
        "cost_usd": cost_usd(model, usage) if usage else 0.0,
    }


class BadInput(ValueError):
    """Stdin holds nothing a suggestion could continue."""


def read_prefix(stream) -> str:
    """The text on ``stream`` (stdin), or BadInput saying why it cannot be continued.

    Checked here, before any model sees it: empty input once made the local model invent a
    line (``<h1><i>Pterodroma</i></h1>``), binary input surfaced llama.cpp's internal JSON
    error, and a closed stdin a traceback."""
    if stream is None:
        raise BadInput("stdin is closed: pipe the text to continue into it")
    try:
        data = stream.buffer.read() if hasattr(stream, "buffer") else stream.read().encode()
    except (OSError, ValueError) as exc:
        raise BadInput(f"cannot read stdin ({exc})") from None
    if b"\x00" in data:
        raise BadInput("stdin looks binary (it holds NUL bytes): give it text")
    try:
        prefix = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"stdin is not UTF-8 text (byte {exc.start}): give it text") from None
    if not prefix.strip():
        raise BadInput("stdin is empty: there is no text to continue")
    if prefix.endswith("\n") and not prefix.endswith("\n\n"):
        prefix = prefix[:-1]  # the newline `echo` adds is not where the cursor is
    return prefix


def run(args) -> int:
    """Exit 0 with the suggestion on stdout (nothing on stdout, and "no suggestion" on stderr,
    when there is none); 1 when the provider failed; 2 for input that cannot be continued."""
    if sys.stdin is not None and sys.stdin.isatty():
        print("assistant suggest: type or pipe text on stdin (end with Ctrl+D)", file=sys.stderr)
    try:
        prefix = read_prefix(sys.stdin)
    except BadInput as exc:
        print(f"assistant suggest: {exc}", file=sys.stderr)
        return 2
    try:
        result = asyncio.run(suggest_once(prefix, args.suffix, offline=args.offline))
    except ProviderError as exc:
        print(f"assistant suggest: {exc}", file=sys.stderr)
        return 1
    if args.json:
        sys.stdout.write(orjson.dumps(result).decode() + "\n")
    elif result["text"]:
        sys.stdout.write(result["text"] + "\n")
    if not result["text"]:
        print(f"assistant suggest: no suggestion ({result['source']})", file=sys.stderr)
    return 0
