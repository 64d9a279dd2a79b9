"""Inline writing assistant. The core (``suggest``, ``providers``, ``review``, ``pricing``,
``config``) is sans-I/O where it can be and imports neither the server nor the editor; the
``emulator`` stands in for Anthropic's API; ``bench`` measures; ``commands`` wires the core to
``server/`` and ``tui/`` for each ``assistant`` command."""

__version__ = "0.1.0"
