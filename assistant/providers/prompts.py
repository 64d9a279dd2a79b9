"""The suggestion prompt: what Haiku sees for one keystroke.

Two things shape it besides the wording. First, prompt caching, because a suggestion is asked for
every pause and its input tokens are most of its cost: on Haiku 5.5 a cached token costs a tenth
of an uncached one, and nothing under 512 tokens is cached at all. So the system prompt carries
worked examples that take it over that minimum on its own (a new document's requests read it from
the cache instead of paying ~400 uncached tokens each), and the text before the cursor goes out
as content blocks whose boundaries never move while the writer types at the end: 2,048-character
blocks far from the cursor, then blocks of a few words (at least 32 characters, ending after a
space). Breakpoints sit on the system prompt, the last coarse block and the last fine block, so
each request reads what the previous one cached (the API looks up to 20 blocks back from a
breakpoint), writes the words typed since, and pays full price only for the last few words:
about 7 tokens a call. (A closing instruction after the text, "Write only the characters to
insert", cost 17 uncached tokens a call, more than the text itself; the system prompt says the
same; so did a closing tag after the text, 7 more.) A mark is set only where the prompt up to
it is long enough for the model to cache at all. The text after the cursor, when there is any,
goes first: it does not change while the writer types at the cursor, so it is cached with the
rest (after the text before the cursor, it went out uncached on every call: ~500 tokens a call
in the middle of a 3 KB document). Second, the markup: the text after the cursor in
``<text_after_cursor>``…``</text_after_cursor>``, then the text before the cursor from
``<text_before_cursor>`` (the first block opens the tag) to the end of the message, so the
model (and the emulator) can find both.

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

import re

from ..pricing import ModelRules, estimate_tokens

SUGGEST_SYSTEM = """\
You are an inline autocomplete engine inside a text editor. The user is typing; you predict the \
exact characters they will type next at the cursor.

The user's message holds the document: any text after the cursor, inside <text_after_cursor> \
tags, then the text before the cursor, from <text_before_cursor> to the end of the message.

Reply with the continuation only: the exact characters to insert at the cursor, nothing else.
- No chatter, no explanations, no greetings, no quotes or code fences around the text, no tags.
- Never repeat text that is already before the cursor, and never restate the text after the \
cursor; the insertion must join the two seamlessly.
- Start exactly where the cursor is: if the last word is unfinished, complete it without repeating \
its first letters; include a leading space only when one is needed.
- Keep it short: at most one short phrase, or the end of the current sentence.
- A single line: never write a line break.
- Match the language, voice, tense and style of the document.
- If nothing sensible fits, reply with nothing at all.

Examples: the end of the text before the cursor (and after it, if any), then the right reply \
between ⟦ and ⟧, which only mark its ends here.
1. Before: "Thanks for the draft. I'll read it over the week"
   Reply: ⟦end and send my notes on Monday.⟧ (unfinished word: completed, no space first)
2. Before: "The results were better than we expected, so"
   Reply: ⟦ we will extend the trial.⟧ (complete word: a space first)
3. Before: "Please find the invoice attached. "
   Reply: ⟦Let me know if anything is unclear.⟧ (a space is there already)
4. Before: "We moved the meeting to"   After: " so that everyone can attend."
   Reply: ⟦ Thursday⟧ (only what joins the two)
5. Before: "def average(values):\n    return sum(values) / "
   Reply: ⟦len(values)⟧ (code as code)
6. Before: "Shopping list:\n- eggs\n- "
   Reply: ⟦milk⟧ (one item; never a line break)
7. Before: "Le comité s'est réuni mardi pour"
   Reply: ⟦ discuter du budget.⟧ (the document's language)
8. Before: "Totals: 14, 27, 9 and"
   Reply: ⟦⟧ (nothing sensible fits)"""

BEFORE_OPEN = "<text_before_cursor>"
BEFORE_CLOSE = "</text_before_cursor>"
AFTER_OPEN = "<text_after_cursor>"
AFTER_CLOSE = "</text_after_cursor>"

# The text before the cursor goes out as content blocks whose boundaries do not move while the
# writer types at the end, so each request's prefix up to its last complete block is one the
# previous request cached. Far from the cursor: blocks of COARSE_BLOCK_CHARS (few blocks on a long
# document). From the last coarse boundary on: a block of at least FINE_BLOCK_CHARS ending where a
# word does (after the spaces or line breaks that follow it; cut at MAX_FINE_BLOCK_CHARS when no
# space comes), so what goes out uncached is only the last few words and the word being written.
COARSE_BLOCK_CHARS = 2048
FINE_BLOCK_CHARS = 32
MAX_FINE_BLOCK_CHARS = 256
# A fine block ends, and a trimmed document's kept text starts, after a run of whitespace.
_WHITESPACE = re.compile(r"\s+")
# Documents longer than the window (before the cursor) are trimmed from the left, in steps of
# TRIM_STEP_CHARS so the kept start (and so every cached block) moves rarely: on Haiku 5.5 the
# model sees the last 6-8 KB (about 1,000-1,300 words, several pages). Every call reads all it
# is sent, so the window sets a long document's price: with a 64 KB window a writer at the end
# of a 60 KB document cost $1.28 a typing hour, twenty times a new document's
# (docs/performance.md). Peers keep less (Continue's autocomplete: 500 tokens, 85 % of them
# before the cursor). A model with a high cache minimum (Haiku 4.5: 4,096 tokens) gets a window
# that holds CACHE_MIN_MULTIPLE times it, or its long documents would never be cached at all.
PREFIX_WINDOW_CHARS = 8_192
CACHE_MIN_MULTIPLE = 1.5
MAX_PREFIX_CHARS = 64_000  # the widest window, whatever the model
TRIM_STEP_CHARS = 2_048
# The kept text starts after the first line break this close to the cut (a paragraph's start),
# else after the first space (a word's), never in the middle of a word.
CLEAN_START_CHARS = 1_024
_LINE_BREAKS = re.compile(r"\n+")
# Only the start of the text after the cursor is useful context.
MAX_SUFFIX_CHARS = 2_000
# Stop if the model starts echoing our markup. (Whitespace-only stop sequences are not allowed by
# the API; newlines are cut client-side.) Stop at the first sentence end too: the engine shows a
# suggestion only up to it, so every token after it is billed and never seen; the provider keeps
# the punctuation of a stop that ends in whitespace.
SENTENCE_STOPS = (". ", "! ", "? ")
STOP_SEQUENCES = (AFTER_OPEN, BEFORE_CLOSE, AFTER_CLOSE, *SENTENCE_STOPS)

_CACHE = {"type": "ephemeral"}


def prefix_window_chars(cache_min_tokens: int = 0, tokenizer_factor: float = 1.0) -> int:
    """How much text before the cursor a suggestion sends, for a model with this cache minimum:
    PREFIX_WINDOW_CHARS, or enough for CACHE_MIN_MULTIPLE times the minimum (in whole steps)."""
    need = CACHE_MIN_MULTIPLE * cache_min_tokens * 4 / max(tokenizer_factor, 0.1)
    steps = -(-int(need) // TRIM_STEP_CHARS)  # ceil
    return min(MAX_PREFIX_CHARS, max(PREFIX_WINDOW_CHARS, steps * TRIM_STEP_CHARS))


def trim_prefix(prefix: str, window: int = PREFIX_WINDOW_CHARS) -> str:
    """Drop the far start of a long document, in large steps so the result is stable, and start
    what is kept at a paragraph or a word. The start depends only on the text just after the
    cut, at least 5 KB before the cursor, so typing on does not move it."""
    excess = len(prefix) - window
    if excess <= 0:
        return prefix
    cut = -(-excess // TRIM_STEP_CHARS) * TRIM_STEP_CHARS  # ceil to a step
    end = cut + CLEAN_START_CHARS
    m = _LINE_BREAKS.search(prefix, cut, end) or _WHITESPACE.search(prefix, cut, end)
    return prefix[m.end() if m else cut :]


def _fine_cuts(text: str) -> list[int]:
    """End offsets of the complete fine blocks of ``text``, greedily from its start: a block ends
    after the first run of whitespace at least FINE_BLOCK_CHARS in, or at MAX_FINE_BLOCK_CHARS.
    Each cut depends only on the text before it, so typing on never moves one; a run of spaces
    still being typed is not a cut yet (the run may grow), so the cut comes with the next word.
    One search per block, from where a block may first end: a call builds its prompt with this,
    and stepping through every space of the last 2 KB took most of a 3 KB prompt's build."""
    cuts: list[int] = []
    start = 0
    n = len(text)
    while True:
        m = _WHITESPACE.search(text, start + FINE_BLOCK_CHARS - 1)
        if m is None or m.end() == n:  # no whitespace left, or only the run at the cursor
            while n - start >= MAX_FINE_BLOCK_CHARS:
                start += MAX_FINE_BLOCK_CHARS
                cuts.append(start)
            return cuts
        end = m.end()
        if end - start > MAX_FINE_BLOCK_CHARS:  # no space for that long: cut, and look again
            start += MAX_FINE_BLOCK_CHARS
            cuts.append(start)
            continue
        cuts.append(end)
        start = end


def split_prefix(prefix: str) -> tuple[list[str], list[str], str]:
    """(coarse blocks, fine blocks, live tail) of the (trimmed) text before the cursor. The
    blocks never hold only whitespace (the API refuses such a block): it joins the next one."""
    coarse_end = (len(prefix) // COARSE_BLOCK_CHARS) * COARSE_BLOCK_CHARS
    coarse_cuts = list(range(COARSE_BLOCK_CHARS, coarse_end + 1, COARSE_BLOCK_CHARS))
    fine_cuts = [coarse_end + c for c in _fine_cuts(prefix[coarse_end:])]
    levels: tuple[list[str], list[str]] = ([], [])
    start = 0
    for level, cuts in enumerate((coarse_cuts, fine_cuts)):
        for cut in cuts:
            if prefix[start:cut].strip():
                levels[level].append(prefix[start:cut])
                start = cut
    return levels[0], levels[1], prefix[start:]


def trim_suffix(suffix: str) -> str:
    return suffix[:MAX_SUFFIX_CHARS]


def suggest_prompt_chars_bound(
    prefix_chars: int, suffix_chars: int, window: int = MAX_PREFIX_CHARS
) -> int:
    """At most how many characters of text a suggestion request for a prefix and a suffix of
    these lengths carries (what the budget reserves for), without building it: building the
    request twice, once for the reservation, was ~4 % of a worker's loop at 1,000 writers.
    ``window``: the model's (:func:`prefix_window_chars`); by default the widest."""
    return _SUGGEST_FIXED_CHARS + min(prefix_chars, window) + min(suffix_chars, MAX_SUFFIX_CHARS)


# What every suggestion request carries besides the text: the system prompt and the markup.
_SUGGEST_FIXED_CHARS = len(SUGGEST_SYSTEM) + len(
    BEFORE_OPEN + BEFORE_CLOSE + "\n" + AFTER_OPEN + AFTER_CLOSE
)


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
    factor = rules.tokenizer_factor
    window = prefix_window_chars(cache_min_tokens, factor)
    coarse, fine, tail = split_prefix(trim_prefix(prefix, window))
    suffix = trim_suffix(suffix)

    system: dict = {"type": "text", "text": SUGGEST_SYSTEM}
    # The text after the cursor goes first: it does not change while the writer types at the
    # cursor, so it is cached with the rest (after the text before the cursor it went out
    # uncached on every call: up to 2,000 characters, ~650 tokens, five times a call's price).
    head = [{"type": "text", "text": AFTER_OPEN + suffix + AFTER_CLOSE + "\n"}] if suffix else []
    body: list[dict] = [{"type": "text", "text": text} for text in (*coarse, *fine)]
    if body:
        body[0]["text"] = BEFORE_OPEN + body[0]["text"]
        live = tail
    else:
        live = BEFORE_OPEN + tail
    if not live.strip():  # the API refuses a block of only whitespace; the tag ends the text
        live += BEFORE_CLOSE
    blocks = head + body
    # Breakpoints (at most 3 of the API's 4): the system prompt, the last coarse block and the
    # last block before the live tail, each only where the prompt up to it is long enough to be
    # cached at all.
    marked = {len(blocks) - 1} - {-1}
    if coarse:
        marked.add(len(head) + len(coarse) - 1)
    running = estimate_tokens(SUGGEST_SYSTEM, factor)
    if 0 < cache_min_tokens <= running:
        system["cache_control"] = dict(_CACHE)
    for i, block in enumerate(blocks):
        running += estimate_tokens(block["text"], factor)
        if i in marked and 0 < cache_min_tokens <= running:
            block["cache_control"] = dict(_CACHE)
    blocks.append({"type": "text", "text": live})

    params = {
        "model": model,
        "max_tokens": rules.tokens(max_tokens),
        "system": [system],
        "messages": [{"role": "user", "content": blocks}],
        "stop_sequences": list(STOP_SEQUENCES),
    }
    quiet = rules.quiet_thinking()
    if quiet:
        params["extra_body"] = quiet  # the SDK's typed arguments may lag the newest fields
    return params
