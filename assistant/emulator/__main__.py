"""``python -m assistant.emulator``: run the emulator until SIGINT/SIGTERM.

Prints ``EMULATOR http://HOST:PORT`` once it is listening; with ``--tls`` (TLS with a test CA,
HTTP/2 by ALPN) first ``EMULATOR_CA FILE``, the CA's PEM file a client must trust, then
``EMULATOR https://HOST:PORT``. ``--predictor``
chooses who writes suggestions (oracle, noisy with ``--accuracy P``, local); ``--oracle FILE``
gives the passages (separated by blank lines) the oracle and noisy predictors know.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from .latency import PROFILES
from .options import (
    OptionError,
    PredictorChoice,
    add_predictor_arguments,
    predictor_choice,
    require_available,
)
from .server import Emulator, EmulatorConfig


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m assistant.emulator", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--profile", default="haiku", choices=sorted(PROFILES))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--api-key", default=None, help="require this key (default: accept any)")
    p.add_argument("--canned-text", default=None, help="always answer with this text")
    p.add_argument("--time-scale", type=float, default=1.0, help="multiply every delay")
    p.add_argument(
        "--connect-ms",
        type=float,
        default=0.0,
        help="a new connection's first response waits this long (modelled TCP + TLS setup)",
    )
    p.add_argument(
        "--tls",
        action="store_true",
        help="TLS with a throwaway test CA and HTTP/2 by ALPN, as the API (prints EMULATOR_CA)",
    )
    p.add_argument(
        "--no-http2",
        dest="http2",
        action="store_false",
        help="with --tls: offer HTTP/1.1 only by ALPN (a server or proxy without HTTP/2)",
    )
    add_predictor_arguments(p, ("--", "--emulator-"))
    return p


async def serve(args: argparse.Namespace, choice: PredictorChoice) -> None:
    config = EmulatorConfig(
        profile=args.profile,
        seed=args.seed,
        api_key=args.api_key,
        canned_text=args.canned_text,
        oracle_texts=choice.passages,
        predictor=choice.predictors[0],
        accuracy=choice.accuracy,
        time_scale=args.time_scale,
        connect_ms=args.connect_ms,
        tls=args.tls,
        http2=args.http2,
        host=args.host,
        port=args.port,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with Emulator(config) as emu:
        if emu.ca_file is not None:
            sys.stdout.write(f"EMULATOR_CA {emu.ca_file}\n")
        sys.stdout.write(f"EMULATOR {emu.base_url}\n")
        sys.stdout.flush()
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        choice = predictor_choice(args)
        require_available(choice.predictors[0])
    except OptionError as exc:
        print(f"python -m assistant.emulator: {exc}", file=sys.stderr)
        return 2
    asyncio.run(serve(args, choice))
    return 0


if __name__ == "__main__":
    sys.exit(main())
