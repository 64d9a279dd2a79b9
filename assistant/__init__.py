"""Inline writing assistant: the sans-I/O core (engine, providers, prompts, pricing, review, emulator)."""

__version__ = "0.1.0"
