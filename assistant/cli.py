"""The ``assistant`` command. Each subcommand lives in its own module, imported only when used,
so ``assistant suggest`` starts without loading Textual or the server."""

from __future__ import annotations

import argparse
import sys

from .bench.budget import METRICS as BUDGET_METRICS
from .emulator.options import add_predictor_arguments


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="assistant",
        description="Inline writing assistant: ghost-text suggestions from Claude Haiku, "
        "or an offline model when there is no API key.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("suggest", help="read text on stdin, print one suggested continuation")
    p.add_argument("--suffix", default="", help="text after the cursor (default: none)")
    p.add_argument(
        "--offline", action="store_true", help="use the offline tier even with an API key"
    )
    p.add_argument(
        "--json", action="store_true", help="print the suggestion, source, latency and cost as JSON"
    )
    p.set_defaults(run="assistant.commands.suggest:run")

    p = sub.add_parser("serve", help="run the WebSocket server (and the web editor at /)")
    p.add_argument("--host", default=None, help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default 8765; 0 picks a free one)")
    p.add_argument(
        "--token", default=None, help="access token (default: $ASSISTANT_TOKEN or a generated one)"
    )
    p.add_argument(
        "--emulator", action="store_true", help="start the built-in Anthropic emulator and use it"
    )
    add_predictor_arguments(p)
    p.add_argument(
        "--allow-origin",
        action="append",
        default=None,
        metavar="ORIGIN",
        help="extra allowed Origin (repeatable)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="server processes sharing the port (default: one per core, but 1 when the offline "
        "tier is the local model, because each process would load its own copy of the model "
        "and run it on the same cores)",
    )
    p.set_defaults(run="assistant.commands.serve:run")

    p = sub.add_parser("edit", help="open FILE in the terminal editor")
    p.add_argument("file", help="file to edit (created on first save if missing)")
    p.add_argument(
        "--server",
        default=None,
        metavar="URL",
        help="ws://host:port of a running server (default: start one in-process)",
    )
    p.add_argument("--token", default=None, help="token for --server (default: $ASSISTANT_TOKEN)")
    p.add_argument(
        "--emulator", action="store_true", help="in-process server backed by the emulator"
    )
    p.set_defaults(run="assistant.commands.edit:run")

    p = sub.add_parser(
        "review",
        help="deep review of FILE (Haiku, then Sonnet on what it flags); findings streamed",
    )
    p.add_argument("file", help="file to review")
    p.add_argument(
        "--tier",
        choices=("auto", "haiku", "sonnet"),
        default=None,
        help="auto: Haiku reads all, Sonnet checks what it flags (default); or one tier alone",
    )
    p.add_argument("--json", action="store_true", help="print findings as JSON")
    p.add_argument("--server", default=None, metavar="URL", help="use a running server")
    p.add_argument("--token", default=None, help="token for --server (default: $ASSISTANT_TOKEN)")
    p.add_argument("--emulator", action="store_true", help="review against the built-in emulator")
    p.set_defaults(run="assistant.commands.review:run")

    p = sub.add_parser(
        "review-bench",
        help="recall, precision, cost and time of Sonnet-only, Haiku-only and tiered review",
    )
    p.add_argument("--corpus", default=None, metavar="DIR", help="labelled corpus directory")
    p.add_argument("--haiku", default=None, metavar="MODEL", help="the first reader's model")
    p.add_argument("--sonnet", default=None, metavar="MODEL", help="the checking model")
    p.add_argument("--seed", type=int, default=0, help="the emulator's seed")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the figures as JSON")
    p.set_defaults(run="assistant.commands.review_bench:run")

    p = sub.add_parser(
        "usage",
        help="requests, spend and accepted characters per writer, from the usage ledger",
        description="Reads ASSISTANT_DATABASE_URL (default: the SQLite ledger under the user's "
        "data directory, as `assistant serve` writes it).",
    )
    p.add_argument("--writer", help="only this writer (a writer token's sub; `owner` for --token)")
    p.add_argument(
        "--since", help="from this UTC date (YYYY-MM-DD) or ISO time (default: today, UTC)"
    )
    p.add_argument("--json", action="store_true", help='print {"writers": [...]} as JSON')
    p.set_defaults(run="assistant.commands.usage:run")

    p = sub.add_parser(
        "bench",
        help="replay typing traces and print latency, calls and cost (--server: against a "
        "deployment, with a budget)",
    )
    p.add_argument(
        "--typists",
        type=int,
        default=None,
        help="concurrent typists for the load part (default 200); with --server, typists "
        "against the deployment (default: one per shipped trace)",
    )
    p.add_argument("--json", default=None, metavar="PATH", help="also write the figures as JSON")
    p.add_argument(
        "--markdown", default=None, metavar="PATH", help="also write the headline table (Markdown)"
    )
    p.add_argument("--quick", action="store_true", help="fewer traces and typists, for a smoke run")
    p.add_argument(
        "--lead-in",
        type=int,
        default=0,
        metavar="CHARS",
        help="type at the end of an existing document this long (default: a new document)",
    )
    p.add_argument(
        "--lead-out",
        type=int,
        default=0,
        metavar="CHARS",
        help="with this much of the document after the cursor, from the next paragraph on: "
        "type in the middle of a document (default: at its end)",
    )
    p.add_argument(
        "--strategies",
        default=None,
        metavar="LIST",
        help="comma-separated strategies to compare (naive, continue, copilot, ours; default all)",
    )
    p.add_argument(
        "--window", type=float, default=None, metavar="S", help="seconds of each trace to type"
    )
    p.add_argument(
        "--connect-ms",
        type=float,
        default=0.0,
        metavar="MS",
        help="model a new API connection's setup (TCP + TLS) as this much delay on its first "
        "response (default 0: loopback, none)",
    )
    p.add_argument(
        "--no-accept",
        action="store_true",
        help="typists never accept a ghost (type every key, as the benchmark did before)",
    )
    add_predictor_arguments(p, ("--emulator-", "--"), many=True)
    remote = p.add_argument_group(
        "against a running deployment",
        "replay the traces over ws:// or wss:// against a server someone runs (its model, its "
        "key, its proxy) and hold it to a budget: exit 0 all held, 1 a line missed, 2 a usage "
        "or connection error",
    )
    remote.add_argument(
        "--server", default=None, metavar="URL", help="ws://, wss://, http:// or https:// address"
    )
    remote.add_argument(
        "--token", default=None, help="the server's token (default: $ASSISTANT_TOKEN)"
    )
    remote.add_argument(
        "--rate",
        type=float,
        default=None,
        metavar="R",
        help="typists started (connections opened) per second, at most (default 10)",
    )
    remote.add_argument(
        "--passages",
        default=None,
        metavar="FILE",
        help="plain-text passages (blank-line separated) to type instead of the shipped traces",
    )
    remote.add_argument(
        "--budget",
        default=None,
        metavar="K=V,...",
        help="thresholds, e.g. pause_p50=300,pause_p95=900,pauses_shown=0.9,errors=0 "
        f"(any of {', '.join(BUDGET_METRICS)})",
    )
    remote.add_argument(
        "--junit", default=None, metavar="PATH", help="also write the budget as JUnit XML"
    )
    remote.add_argument(
        "--cafile",
        default=None,
        metavar="FILE",
        help="PEM CA certificate(s) to verify a wss:// server with, instead of the system's "
        "(SSL_CERT_FILE works too)",
    )
    remote.add_argument(
        "--yes",
        action="store_true",
        help="start more typists than there are shipped traces without asking",
    )
    p.set_defaults(run="assistant.commands.bench:run")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    module_name, func_name = args.run.split(":")
    import importlib

    from .config import ConfigError, warn_retired_models

    warn_retired_models()

    func = getattr(importlib.import_module(module_name), func_name)
    try:
        return int(func(args) or 0)
    except ConfigError as exc:  # a config file, variable or flag no command can start with
        print(f"assistant {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
