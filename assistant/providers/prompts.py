"""The suggestion prompt: what Haiku sees for one keystroke.

Two things shape it besides the wording. First, prompt caching: a keystroke changes only the last
few characters before the cursor, so the document is split into a *stable head* (cut at a coarse
boundary, so it is byte-identical from one keystroke to the next) and a *live tail*. The system
prompt plus the head form a cacheable prefix, marked with ``cache_control`` only when it is long
enough for the model to cache at all (below the model's minimum the mark is ignored and only
adds noise). Second, the text before the cursor is always wrapped, whole, in
``<text_before_cursor>``…``</text_before_cursor>`` (the head opens the tag in one content block,
the tail closes it in the next), and the text after the cursor in ``<text_after_cursor>``…
``</text_after_cursor>``, so the model (and the emulator) can find both.

The request follows the model's rules (``ModelRules`` from models.toml): no sampling parameters
(the current models refuse them, and greedy decoding was never needed), and thinking kept off,
because thinking tokens come before the first visible character and count against the small
``max_tokens`` of a suggestion. ``max_tokens`` and the cache threshold are counted in the model's
own tokens (its tokenizer factor), so a suggestion holds the same text on every model.

The API rejects whitespace-only stop sequences (``"\\n"`` gives a 400 "each stop sequence must
contain non-whitespace"), so single-line output is enforced by the provider, which cuts the
streamed text at the first newline; the stop sequences here catch the model echoing our tags.
"""

from __future__ import annotations

from ..pricing import ModelRules, estimate_tokens

SUGGEST_SYSTEM = """\
You are an inline autocomplete engine inside a text editor. The user is typing; you predict the \
exact characters they will type next at the cursor.

The user's message holds the document: the text before the cursor inside <text_before_cursor> \
tags and, when there is any, the text after the cursor inside <text_after_cursor> tags.

Reply with the continuation only: the exact characters to insert at the cursor, nothing else.
- No chatter, no explanations, no greetings, no quotes or code fences around the text, no tags.
- Never repeat text that is already before the cursor, and never restate the text after the \
cursor; the insertion must join the two seamlessly.
- Start exactly where the cursor is: if the last word is unfinished, complete it without repeating \
its first letters; include a leading space only when one is needed.
- Keep it short: at most one short phrase, or the end of the current sentence.
- A single line: never write a line break.
- Match the language, voice, tense and style of the document.
- If nothing sensible fits, reply with nothing at all."""

BEFORE_OPEN = "<text_before_cursor>"
BEFORE_CLOSE = "</text_before_cursor>"
AFTER_OPEN = "<text_after_cursor>"
AFTER_CLOSE = "</text_after_cursor>"

# The head of the text before the cursor is cut at a multiple of this many characters, so it
# repeats across keystrokes (and hits the prompt cache) until the cursor crosses the next boundary.
HEAD_BLOCK_CHARS = 2048
# Documents longer than this (before the cursor) are trimmed from the left, in steps of
# TRIM_STEP_CHARS so the kept start (and so the cached head) moves rarely.
MAX_PREFIX_CHARS = 64_000
TRIM_STEP_CHARS = 16_384
# Only the start of the text after the cursor is useful context.
MAX_SUFFIX_CHARS = 2_000
# Stop if the model starts echoing our markup. (Whitespace-only stop sequences are not allowed by
# the API; newlines are cut client-side.)
STOP_SEQUENCES = (AFTER_OPEN, BEFORE_CLOSE, AFTER_CLOSE)

_CACHE = {"type": "ephemeral"}


def trim_prefix(prefix: str) -> str:
    """Drop the far start of a very long document, in large steps so the result is stable."""
    excess = len(prefix) - MAX_PREFIX_CHARS
    if excess <= 0:
        return prefix
    steps = -(-excess // TRIM_STEP_CHARS)  # ceil
    return prefix[steps * TRIM_STEP_CHARS :]


def split_prefix(prefix: str) -> tuple[str, str]:
    """(stable head, live tail) of the (trimmed) text before the cursor."""
    head_len = (len(prefix) // HEAD_BLOCK_CHARS) * HEAD_BLOCK_CHARS
    return prefix[:head_len], prefix[head_len:]


def trim_suffix(suffix: str) -> str:
    return suffix[:MAX_SUFFIX_CHARS]


def build_suggest_params(
    prefix: str,
    suffix: str,
    *,
    model: str,
    max_tokens: int,
    cache_min_tokens: int,
    rules: ModelRules | None = None,
) -> dict:
    """Keyword arguments for ``client.messages.create(...)`` (without ``stream``).

    ``max_tokens`` is in Haiku 4.5 tokens; ``rules`` (default: a model with no restrictions)
    scale it and the cache estimate to the model's tokenizer and say how to keep thinking off.
    """
    rules = rules or ModelRules()
    head, tail = split_prefix(trim_prefix(prefix))
    suffix = trim_suffix(suffix)

    blocks: list[dict] = []
    if head:
        head_block: dict = {"type": "text", "text": BEFORE_OPEN + head}
        factor = rules.tokenizer_factor
        cacheable_tokens = estimate_tokens(SUGGEST_SYSTEM, factor) + estimate_tokens(
            head_block["text"], factor
        )
        if cache_min_tokens > 0 and cacheable_tokens >= cache_min_tokens:
            head_block["cache_control"] = dict(_CACHE)
        blocks.append(head_block)
        live = tail + BEFORE_CLOSE
    else:
        live = BEFORE_OPEN + tail + BEFORE_CLOSE
    if suffix:
        live += "\n" + AFTER_OPEN + suffix + AFTER_CLOSE
    live += "\n\nWrite only the characters to insert at the cursor."
    blocks.append({"type": "text", "text": live})

    params = {
        "model": model,
        "max_tokens": rules.tokens(max_tokens),
        "system": [{"type": "text", "text": SUGGEST_SYSTEM}],
        "messages": [{"role": "user", "content": blocks}],
        "stop_sequences": list(STOP_SEQUENCES),
    }
    quiet = rules.quiet_thinking()
    if quiet:
        params["extra_body"] = quiet  # the SDK's typed arguments may lag the newest fields
    return params
