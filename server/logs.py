"""Structured logs: one JSON object a line, secrets scrubbed on the way out.

Call sites use :func:`log_event` (``log_event("connection_open", conn="c1", origin=...)``); the
formatter renders the event name and fields as JSON. :class:`RedactingFilter` replaces the token
and the API key wherever they might appear (a message, an argument, a field), as a second line of
defence behind never logging them in the first place.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable

import orjson

log = logging.getLogger("assistant.server")
_FIELDS = "fields"


def log_event(event: str, level: int = logging.INFO, **fields) -> None:
    if log.isEnabledFor(level):
        # The record straight to the handlers: ``log.log`` would also walk the stack for the
        # caller's file and line, which no JSON line shows, on every suggest request.
        log.handle(log.makeRecord(log.name, level, "", 0, event, (), None, extra={_FIELDS: fields}))


class JsonLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        fields = getattr(record, _FIELDS, None)
        if fields:
            entry.update(fields)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class RedactingFilter(logging.Filter):
    """Scrubs the given secrets from every record that passes through a handler."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 4]

    def _scrub(self, value):
        if isinstance(value, str):
            for s in self.secrets:
                if s in value:
                    value = value.replace(s, "[redacted]")
        return value

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        record.msg = self._scrub(str(record.msg))
        if record.args:
            if isinstance(record.args, dict):
                record.args = {k: self._scrub(v) for k, v in record.args.items()}
            else:
                record.args = tuple(self._scrub(a) for a in record.args)
        fields = getattr(record, _FIELDS, None)
        if fields and self._any_secret(fields.values()):
            setattr(record, _FIELDS, {k: self._scrub(v) for k, v in fields.items()})
        return True

    def _any_secret(self, values) -> bool:
        """Whether any string among ``values`` holds a secret (most records: none, and then
        their fields are left as they are, not copied)."""
        for v in values:
            if isinstance(v, str):
                for s in self.secrets:
                    if s in v:
                        return True
        return False


def redact(text: str, secrets: Iterable[str | None]) -> str:
    for s in secrets:
        if s and len(s) >= 4 and s in text:
            text = text.replace(s, "[redacted]")
    return text


def log_level(env: dict[str, str] | None = None) -> int:
    """``ASSISTANT_LOG_LEVEL`` (debug, info, warning, error; default info). At info the server
    logs connections, refusals and failures; at debug every suggestion request too."""
    name = (os.environ if env is None else env).get("ASSISTANT_LOG_LEVEL", "info")
    level = logging.getLevelName(name.strip().upper())
    return level if isinstance(level, int) else logging.INFO


def configure_json_logging(secrets: Iterable[str | None], level: int = logging.INFO) -> None:
    """For ``assistant serve``: our events as JSON lines on stderr, uvicorn's warnings too."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLineFormatter())
    handler.addFilter(RedactingFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    log.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
        lg.setLevel(logging.WARNING)


def monotonic_ms(start: float, now: float | None = None) -> float:
    return round(((time.monotonic() if now is None else now) - start) * 1000, 3)
