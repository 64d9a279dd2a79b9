"""What the emulated model answers a request: a canned text, a review (``reviewing``) or a
suggestion (``text``), cut where the request's ``max_tokens`` and stop sequences stop it.
Apart from both so that neither imports the other."""

from __future__ import annotations

from collections.abc import Sequence

from .reviewing import review_reply
from .text import Reply, derived_continuation, is_review_request, shaped_for


def reply_for(
    body: dict,
    *,
    canned_text: str | None,
    passages: Sequence[str],
    seed: int,
    review_labels: Sequence[dict] = (),
) -> Reply:
    if canned_text is not None:
        text = canned_text
    elif is_review_request(body):
        text = review_reply(body, labels=review_labels, seed=seed)
    else:
        text = derived_continuation(body, passages, seed)
    return shaped_for(body, text)
