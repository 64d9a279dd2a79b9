"""``assistant serve``: the WebSocket server and the web editor, until Ctrl+C or SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
import sys

from assistant.config import load_settings

from .app import WS_PATH, build_app
from .logs import configure_json_logging
from .runner import GracefulServer, uvicorn_config

_WILDCARD = {"0.0.0.0", "::", ""}


def emulator_config(args):
    """False without ``--emulator``; else the emulator's config from the predictor options
    (ValueError, with a message for the user, for a bad passage file or a missing model)."""
    if not getattr(args, "emulator", False):
        if getattr(args, "emulator_oracle", None) or getattr(
            args, "emulator_predictor", None
        ) not in (
            None,
            "oracle",
        ):
            raise ValueError("--emulator-predictor and --emulator-oracle need --emulator")
        return False
    from assistant.emulator import EmulatorConfig
    from assistant.emulator.options import predictor_choice, require_available

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
    token = settings.token or secrets.token_urlsafe(24)
    settings = settings.with_(token=token)
    configure_json_logging([token, settings.api_key], logging.INFO)

    try:
        emulator = emulator_config(args)
    except ValueError as exc:
        print(f"assistant serve: {exc}", file=sys.stderr)
        return 2
    app = build_app(settings, emulator=emulator)
    server = GracefulServer(uvicorn_config(app, settings, settings.host, settings.port))

    async def main() -> None:
        loop = asyncio.get_running_loop()

        def stop() -> None:
            if server.should_exit:
                server.force_exit = True
            server.should_exit = True

        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop)
            except (NotImplementedError, RuntimeError):  # pragma: no cover (Windows)
                signal.signal(sig, lambda *_: stop())

        async def announce() -> None:
            await server.ready.wait()
            port = server.bound_port
            host = "127.0.0.1" if settings.host in _WILDCARD else settings.host
            shown = f"[{host}]" if ":" in host else host
            lines = [
                f"assistant server: http://{shown}:{port}  (provider: {app.state.hub.setup.label}"
                + (f", predictor {emulator.describe()})" if emulator else ")"),
                f"web editor: http://{shown}:{port}/#token={token}",
                f"websocket: ws://{shown}:{port}{WS_PATH}",
                f"token: {token}",
            ]
            if settings.host in _WILDCARD:
                lines.append(
                    "listening on all interfaces: browsers on other hosts need --allow-origin"
                )
            print("\n".join(lines), flush=True)

        announcer = loop.create_task(announce())
        try:
            await server.serve()
        finally:
            announcer.cancel()

    try:
        asyncio.run(main())
    except SystemExit as exc:
        print(f"assistant serve: could not start (exit {exc.code})", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"assistant serve: {exc}", file=sys.stderr)
        return 1
    return 0
