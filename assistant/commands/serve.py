"""``assistant serve``: the WebSocket server and the web editor, until Ctrl+C or SIGTERM."""

from __future__ import annotations

import secrets
import sys

from server.app import WS_PATH, build_app
from server.auth import WriterTokens
from server.ledger import SqlStore, default_database_url, describe
from server.logs import configure_json_logging, log_level
from server.runner import GracefulServer, serve_until_signalled, uvicorn_config
from server.workers import Supervisor, bind_socket, default_workers

from ..config import load_settings

_WILDCARD = {"0.0.0.0", "::", ""}


def banner(settings, port: int, label: str, workers: int) -> str:
    host = "127.0.0.1" if settings.host in _WILDCARD else settings.host
    shown = f"[{host}]" if ":" in host else host
    lines = [
        f"assistant server: http://{shown}:{port}  (provider: {label})",
        f"web editor: http://{shown}:{port}/#token={settings.token}",
        f"editor demos: http://{shown}:{port}/demo/codemirror#token={settings.token}"
        f"  http://{shown}:{port}/demo/prosemirror#token={settings.token}",
        f"websocket: ws://{shown}:{port}{WS_PATH}",
    ]
    if workers > 1:
        lines.append(f"workers: {workers} processes")
    lines.append(f"token: {settings.token}")
    if settings.host in _WILDCARD:
        lines.append("listening on all interfaces: browsers on other hosts need --allow-origin")
    return "\n".join(lines)


def emulator_config(args):
    """False without ``--emulator``; else the emulator's config from the predictor options
    (ValueError, with a message for the user, for a bad passage file or a missing model)."""
    if not getattr(args, "emulator", False):
        predictor = getattr(args, "emulator_predictor", None)
        if getattr(args, "emulator_oracle", None) or predictor not in (None, "oracle"):
            raise ValueError("--emulator-predictor and --emulator-oracle need --emulator")
        return False
    from ..emulator import EmulatorConfig
    from ..emulator.options import predictor_choice, require_available

    choice = predictor_choice(args)
    require_available(choice.predictors[0])
    return EmulatorConfig(
        profile="haiku",
        oracle_texts=choice.passages,
        predictor=choice.predictors[0],
        accuracy=choice.accuracy,
    )


def run(args) -> int:
    settings = load_settings(host=args.host, port=args.port, token=args.token)
    if getattr(args, "allow_origin", None):
        settings = settings.with_(
            allowed_origins=tuple(settings.allowed_origins) + tuple(args.allow_origin)
        )
    # One token for every worker: generated here, once, before any worker exists.
    token = settings.token or secrets.token_urlsafe(24)
    # The usage ledger: ASSISTANT_DATABASE_URL, else SQLite under the user's data directory.
    settings = settings.with_(
        token=token, database_url=settings.database_url or default_database_url()
    )
    configure_json_logging(
        [token, settings.api_key, settings.jwt_secret, settings.admin_token], log_level()
    )
    try:  # a short secret or an unusable key stops the server before anything listens
        WriterTokens.from_settings(settings.jwt_secret, settings.jwt_public_key)
    except ValueError as exc:
        print(f"assistant serve: {exc}", file=sys.stderr)
        return 2
    try:  # the ledger's database: reachable, and migrated once before any worker starts
        SqlStore(settings.database_url).close()
    except Exception as exc:
        print(
            f"assistant serve: the usage ledger {describe(settings.database_url)}: {exc}",
            file=sys.stderr,
        )
        return 2
    try:
        emulator = emulator_config(args)
    except ValueError as exc:
        print(f"assistant serve: {exc}", file=sys.stderr)
        return 2
    predictor = f", predictor {emulator.describe()}" if emulator else ""
    workers = getattr(args, "workers", None)
    if workers is None:
        workers = default_workers(settings)
    if workers < 1:
        print("assistant serve: --workers must be at least 1", file=sys.stderr)
        return 2

    if workers == 1:
        app = build_app(settings, emulator=emulator)
        server = GracefulServer(uvicorn_config(app, settings, settings.host, settings.port))

        def announce() -> None:
            label = app.state.hub.setup.label + predictor
            print(banner(settings, server.bound_port, label, 1), flush=True)

        try:
            serve_until_signalled(server, announce)
        except SystemExit as exc:
            print(f"assistant serve: could not start (exit {exc.code})", file=sys.stderr)
            return 1
        except OSError as exc:
            print(f"assistant serve: {exc}", file=sys.stderr)
            return 1
        return 0

    try:
        sock = bind_socket(settings)
    except OSError as exc:
        print(f"assistant serve: {exc}", file=sys.stderr)
        return 1
    port = sock.getsockname()[1]

    def announce_all(labels: list[str]) -> None:
        print(banner(settings, port, labels[0] + predictor, workers), flush=True)

    supervisor = Supervisor(
        settings,
        workers,
        sock,
        lambda: build_app(settings, emulator=emulator),
        announce_all,
    )
    try:
        code = supervisor.run()
    finally:
        sock.close()
    if code:
        what = "could not keep serving" if supervisor.announced else "could not start"
        print(f"assistant serve: {what} (exit {code})", file=sys.stderr)
    return code
