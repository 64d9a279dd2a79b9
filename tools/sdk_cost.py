"""CPU per model request on the suggestion path: ``AnthropicProvider.stream`` through the real
SDK against the emulator (``instant`` profile, a canned one-line answer), one request at a time,
``time.process_time()`` of this process only (the emulator runs in its own).

    python tools/sdk_cost.py                         # this tree
    python tools/sdk_cost.py --cancel                # each request abandoned after its first
                                                     # text (the writer typed on): its connection
                                                     # closes and the next request opens one
    python tools/sdk_cost.py --tls [--cancel]        # TLS + HTTP/2, as the API: a cancel
                                                     # resets a stream, the connection stays
    python tools/sdk_cost.py --tls --no-http2        # TLS + HTTP/1.1
    PYTHONPATH=<other checkout> python tools/sdk_cost.py   # another tree's provider, same load
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import uvloop

from assistant.config import Settings
from assistant.providers.anthropic import AnthropicProvider
from assistant.providers.base import CompletionRequest

ANSWER = " the quarterly numbers look much better than we expected."
PREFIX = "Thanks for the quick reply. I have read the report you sent and I think"


async def measure(
    url: str, requests: int, rounds: int, cancel: bool = False, ca_file: str | None = None
) -> list[float]:
    provider = AnthropicProvider(Settings(api_key="sk-ant-sdk-cost", base_url=url, ca_file=ca_file))
    request = CompletionRequest(prefix=PREFIX, suffix="")

    async def one() -> None:
        stream = provider.stream(request)
        try:
            async for _ in stream:
                if cancel:
                    break
        finally:
            await stream.aclose()

    try:
        for _ in range(30):  # the connection, imports and first-use caches
            await one()
        out = []
        for _ in range(rounds):
            cpu = time.process_time()
            for _ in range(requests):
                await one()
            out.append((time.process_time() - cpu) / requests * 1e6)
        return out
    finally:
        await provider.aclose()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--requests", type=int, default=300, help="requests per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--cancel", action="store_true", help="abandon each after its first text")
    p.add_argument("--tls", action="store_true", help="the emulator over TLS + HTTP/2")
    p.add_argument("--no-http2", action="store_true", help="with --tls: HTTP/1.1 over TLS")
    args = p.parse_args(argv)
    emulator = subprocess.Popen(
        [sys.executable, "-m", "assistant.emulator", "--profile", "instant",
         "--canned-text", ANSWER, *(["--tls"] if args.tls else []),
         *(["--no-http2"] if args.no_http2 else [])],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert emulator.stdout is not None
        ca_file = emulator.stdout.readline().split()[1] if args.tls else None
        url = emulator.stdout.readline().split()[1]
        rounds = uvloop.run(measure(url, args.requests, args.rounds, args.cancel, ca_file))
    finally:
        emulator.terminate()
        emulator.wait(10)
    print(
        json.dumps(
            {
                "cancel": args.cancel,
                "tls": args.tls,
                "http2": args.tls and not args.no_http2,
                "cpu_us_per_request": [round(r) for r in rounds],
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
