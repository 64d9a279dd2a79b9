"""Suggestions: the sans-I/O engine (one per document), the shaping of suggestion text, and
what a writer gets from them (usefulness), counted from events or from protocol frames."""
