"""Settings, from defaults, an optional TOML file and the environment (in that order).

The file is ``$ASSISTANT_CONFIG`` or ``~/.config/assistant/config.toml``; keys are the field
names below. Environment: ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL, ASSISTANT_CA_FILE,
ASSISTANT_TOKEN, ASSISTANT_METRICS_TOKEN, ASSISTANT_OFFLINE (auto|local|statistical),
ASSISTANT_SUGGEST_MODEL, ASSISTANT_REVIEW_MODEL, ASSISTANT_JWT_SECRET, ASSISTANT_JWT_PUBLIC_KEY,
ASSISTANT_BUDGET_USD_DAY, ASSISTANT_DATABASE_URL, ASSISTANT_ADMIN_TOKEN.
Model IDs default to the roles in ``data/models.toml``; nothing here hard-codes one. A configured
model that is retired (or retires within 30 days) is named at start by :func:`warn_retired_models`.
A file that is not TOML, an unknown key, a value of the wrong type or a number out of range (from
the file, the environment or a flag) is a :class:`ConfigError` naming it, which every command
reports as a usage error (exit 2) before it starts.
"""

from __future__ import annotations

import math
import os
import sys
import tomllib
import typing
from dataclasses import dataclass, field, fields, replace
from datetime import date
from pathlib import Path
from typing import TextIO

from .pricing import default_catalog, retirement_warnings


def _roles() -> dict[str, str]:
    return default_catalog().roles


@dataclass(frozen=True)
class Settings:
    # Anthropic
    api_key: str | None = field(default=None, repr=False)
    base_url: str | None = None
    # A PEM file of the CA to trust for base_url instead of the system's (the emulator's test
    # CA); None: the system's CAs.
    ca_file: str | None = None
    suggest_model: str = field(default_factory=lambda: _roles()["suggest"])
    review_model: str = field(default_factory=lambda: _roles()["review"])
    # The review's first reader and the route: auto (it reads everything, then Sonnet checks
    # what it flags), haiku or sonnet (one tier alone). The reader defaults to the suggestion
    # role's model (Haiku), or to a "triage" role when models.toml names one.
    review_triage_model: str = field(
        default_factory=lambda: _roles().get("triage") or _roles()["suggest"]
    )
    review_tier: str = "auto"
    # Corrections as you type (docs/protocol.md, "check"): auto (the offline rules, then the
    # suggestion role's model with a key), offline (the rules alone) or off.
    checks: str = "auto"
    # Haiku 4.5 tokens (sent scaled by the model's tokenizer factor: 21 on Haiku 5.5): about 64
    # characters, past the ~13 characters an accepted ghost averages. 24 billed a third more output
    # for characters saved within the bench's noise (issue 26, docs/performance.md).
    suggest_max_tokens: int = 16
    suggest_timeout_s: float = 2.5  # whole suggestion request; a late suggestion is useless
    suggest_connect_timeout_s: float = 1.0
    review_max_tokens: int = 4096  # Haiku 4.5 tokens, scaled the same way
    review_timeout_s: float = 120.0
    prompt_cache_min_tokens: int | None = None  # None: from the model's price-table entry
    # Offline tier: "auto" uses the local model when installed, else the statistical engine
    offline: str = "auto"
    # Engine
    debounce_min_ms: float = 25.0
    debounce_max_ms: float = 150.0
    cache_entries: int = 256
    prefetch: bool = False  # ask ahead for the suggestion that follows an accept (more calls)
    cold_pause_ms: float = 0.0  # after rejections in a row, ask only after this long a pause
    # Server
    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = field(default=None, repr=False)
    allowed_origins: tuple[str, ...] = ()  # empty: the server's own origin only
    max_prefix_chars: int = 100_000
    max_suffix_chars: int = 20_000
    max_review_chars: int = 200_000
    max_frame_bytes: int = 1_048_576
    max_connections: int = 2000
    max_frames_per_second: float = 200.0
    max_reviews_in_flight: int = 1
    keep_warm_s: float = 20.0  # while clients are connected, re-warm Anthropic this often (0: off)
    max_outbox_frames: int = 4096  # replies queued for a client that does not read: then 1008
    # Below the app (server/guard.py): a socket whose request headers are not in within
    # header_timeout_s is dropped; a WebSocket that sends nothing but pongs for idle_timeout_s
    # is closed (0: never); per peer address at most max_sockets_per_ip sockets (0:
    # max_connections + 64) and max_connections_per_ip WebSockets (0: half of max_connections,
    # no cap of its own below 100).
    header_timeout_s: float = 10.0
    idle_timeout_s: float = 600.0
    max_sockets_per_ip: int = 0
    max_connections_per_ip: int = 0
    # The offline tier charges a connection's document memory to its address (a writer's share,
    # MAX_WRITER_CHARS in assistant/providers/statistical.py). Off: each document on its own
    # (tools/load.py, whose thousand typists all come from 127.0.0.1).
    offline_memory_per_address: bool = True
    # A review's findings past this many are left out, with a note (server/reviews.py).
    max_review_findings: int = 1000
    # /metrics needs "Authorization: Bearer <this>" when set (ASSISTANT_METRICS_TOKEN).
    metrics_token: str | None = field(default=None, repr=False)
    # permessage-deflate on the WebSocket (offered to clients that ask for it). See
    # docs/performance.md, "Per-keystroke server CPU": it costs CPU on every small frame.
    ws_compression: bool = True
    # Many writers (docs/deployment.md): writer tokens verified with an HS256 secret or a public
    # key file (EdDSA or RS256); each writer's daily (UTC) dollar budget when its token names
    # none (None: unlimited); the ledger's database (None: sqlite under the user's data
    # directory); the admin token of /v1/usage (None: the endpoint is off).
    jwt_secret: str | None = field(default=None, repr=False)
    jwt_public_key: str | None = None
    budget_usd_day: float | None = None
    database_url: str | None = field(default=None, repr=False)
    admin_token: str | None = field(default=None, repr=False)

    @property
    def has_key(self) -> bool:
        return bool(self.api_key)

    def with_(self, **changes) -> Settings:
        return replace(self, **changes)


_ENV = {
    "ANTHROPIC_API_KEY": "api_key",
    "ANTHROPIC_BASE_URL": "base_url",
    "ASSISTANT_CA_FILE": "ca_file",
    "ASSISTANT_TOKEN": "token",
    "ASSISTANT_METRICS_TOKEN": "metrics_token",
    "ASSISTANT_OFFLINE": "offline",
    "ASSISTANT_SUGGEST_MODEL": "suggest_model",
    "ASSISTANT_REVIEW_MODEL": "review_model",
    "ASSISTANT_TRIAGE_MODEL": "review_triage_model",
    "ASSISTANT_REVIEW_TIER": "review_tier",
    "ASSISTANT_CHECKS": "checks",
    "ASSISTANT_JWT_SECRET": "jwt_secret",
    "ASSISTANT_JWT_PUBLIC_KEY": "jwt_public_key",
    "ASSISTANT_BUDGET_USD_DAY": "budget_usd_day",
    "ASSISTANT_DATABASE_URL": "database_url",
    "ASSISTANT_ADMIN_TOKEN": "admin_token",
}
_FLOAT_ENV = {"budget_usd_day"}
# Numbers that must be more than 0 (the others may be 0, which means off, never or a default).
_POSITIVE = frozenset(
    {
        "suggest_max_tokens",
        "suggest_timeout_s",
        "suggest_connect_timeout_s",
        "review_max_tokens",
        "review_timeout_s",
        "max_frame_bytes",
        "max_connections",
        "max_frames_per_second",
        "max_reviews_in_flight",
        "max_outbox_frames",
    }
)
_KINDS = {str: "a string", int: "a whole number", float: "a number", bool: "true or false"}
# Settings that take one of a few words (any case; kept in lower case).
OFFLINE_MODES = ("auto", "local", "statistical")
REVIEW_TIERS = ("auto", "haiku", "sonnet")
CHECK_MODES = ("auto", "offline", "off")
_CHOICES = {"offline": OFFLINE_MODES, "review_tier": REVIEW_TIERS, "checks": CHECK_MODES}
_MODEL_SETTINGS = ("suggest_model", "review_model", "review_triage_model")


class ConfigError(ValueError):
    """A setting the user must fix: the message names it, where it came from and what it must be."""


def _check_file_value(path: Path, name: str, value: object, hint: object, secret: bool) -> None:
    """ConfigError unless the TOML ``value`` has the type of the field ``name`` (a secret's
    value is not repeated: the message goes to a terminal or a log)."""
    shown = "the value given (a secret: not shown)" if secret else repr(value)
    if typing.get_origin(hint) is tuple:
        if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise ConfigError(f"{path}: {name} must be a list of strings, not {shown}")
        return
    (kind,) = [t for t in typing.get_args(hint) if t is not type(None)] or [hint]
    if isinstance(value, bool) and kind is not bool:
        ok = False  # (a bool is an int in Python, never a number here)
    elif kind is float:
        ok = isinstance(value, int | float)
    else:
        ok = isinstance(value, kind)
    if not ok:
        raise ConfigError(f"{path}: {name} must be {_KINDS[kind]}, not {shown}")


def check_settings(settings: Settings, sources: dict[str, str] | None = None) -> Settings:
    """The settings, with their words in lower case; ConfigError, naming the setting and
    whatever set it (file, environment or flag: ``sources``), for a number no part of the
    program can run with (negative, not finite, 0 where 0 means nothing, or a port that does
    not exist: ``port = 70000`` listened on 4464, 70000 - 65536), a word outside its choices,
    or a model the price table does not know."""
    sources = sources or {}

    def named(name: str) -> str:  # "--port", "ASSISTANT_X: name" or "/path/c.toml: name"
        src = sources.get(name)
        return name if src is None else src if src.startswith("--") else f"{src}: {name}"

    if not 0 <= settings.port <= 65535:
        raise ConfigError(
            f"{named('port')} must be 0-65535 (0 picks a free one), not {settings.port}"
        )
    for f in fields(Settings):
        value = getattr(settings, f.name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if not math.isfinite(value) or value < 0 or (f.name in _POSITIVE and value == 0):
            least = "more than 0" if f.name in _POSITIVE else "0 or more"
            raise ConfigError(f"{named(f.name)} must be {least}, not {value}")
    words = {}
    for name, choices in _CHOICES.items():
        word = str(getattr(settings, name)).strip().lower()
        if word not in choices:
            raise ConfigError(
                f"{named(name)} must be one of {', '.join(choices)}, not {getattr(settings, name)!r}"
            )
        words[name] = word
    # A model the price table does not know can be neither costed nor held to a budget (and
    # its request rules are unknown): refused here, not on the first suggestion.
    known = default_catalog().prices
    for name in _MODEL_SETTINGS:
        model = getattr(settings, name)
        if model not in known:
            table = os.environ.get("ASSISTANT_MODELS") or "assistant/data/models.toml"
            raise ConfigError(
                f"{named(name)} {model!r} is not in the model table ({table}); one of "
                f"{', '.join(sorted(known))}"
            )
    return replace(settings, **words)


def config_path() -> Path:
    env = os.environ.get("ASSISTANT_CONFIG")
    if env:
        return Path(env)
    return (
        Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config"))
        / "assistant"
        / "config.toml"
    )


def load_settings(
    path: str | Path | None = None, env: dict[str, str] | None = None, **overrides
) -> Settings:
    """Defaults < config file < environment < explicit overrides (e.g. CLI flags).
    ConfigError, saying what to fix, for a model table or a file that is not TOML, an unknown
    setting, a value of the wrong type, or anything :func:`check_settings` refuses."""
    env = os.environ if env is None else env
    try:  # the model table, which the models' defaults and the check below read
        default_catalog()
    except (OSError, KeyError, TypeError, ValueError) as exc:  # (ValueError: bad TOML, a bad rule)
        table = os.environ.get("ASSISTANT_MODELS")
        detail = f"no {exc} in it" if isinstance(exc, KeyError) else str(exc)
        raise ConfigError(
            f"ASSISTANT_MODELS {table}: not a usable model table ({detail})"
        ) from None
    values: dict = {}
    sources: dict[str, str] = {}  # where each value came from, for the error that names it
    p = Path(path) if path else config_path()
    if p.is_file():
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{p}: not a readable TOML file ({exc})") from None
        hints = typing.get_type_hints(Settings)
        unknown = set(data) - set(hints)
        if unknown:
            raise ConfigError(f"{p}: unknown setting(s): {', '.join(sorted(unknown))}")
        secrets = {f.name for f in fields(Settings) if not f.repr}
        for name, value in data.items():
            _check_file_value(p, name, value, hints[name], name in secrets)
        values.update(data)
        sources.update(dict.fromkeys(data, str(p)))
        if "allowed_origins" in values:
            values["allowed_origins"] = tuple(values["allowed_origins"])
    for var, name in _ENV.items():
        if env.get(var):
            values[name], sources[name] = env[var], var
            if name in _FLOAT_ENV:
                try:
                    values[name] = float(env[var])
                except ValueError:
                    raise ConfigError(f"{var} must be a number, not {env[var]!r}") from None
    given = {k: v for k, v in overrides.items() if v is not None}
    values.update(given)
    sources.update({k: "--" + k.replace("_", "-") for k in given})
    return check_settings(Settings(**values), sources)


def retired_model_warnings(settings: Settings, today: date | None = None) -> list[str]:
    """Warnings for the configured suggestion and review models (see ``retirement_warnings``)."""
    models = {"suggest": settings.suggest_model, "review": settings.review_model}
    return retirement_warnings(models, today or date.today())


def warn_retired_models(
    settings: Settings | None = None, today: date | None = None, stream: TextIO | None = None
) -> list[str]:
    """Print the retirement warnings to stderr at start; a broken config is left for the command
    itself to report, so this never stops a command from starting."""
    try:
        lines = retired_model_warnings(settings or load_settings(), today)
    except (OSError, ValueError, KeyError, TypeError):
        return []
    out = stream or sys.stderr
    for line in lines:
        print(f"assistant: warning: {line}", file=out, flush=True)
    return lines
