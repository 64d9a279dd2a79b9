"""What a request handler sees of its connection, whichever HTTP version carries it.

The emulator's handlers answer through an exchange (``respond`` a whole JSON response, or
``start``/``send``/``finish`` a stream, ``drain``, ``sleep``, ``wait_gone``, ``abort``,
``hang_up``). An HTTP/1.1 connection is its own exchange (one request at a time); an HTTP/2
stream is one (``http2.py``), so a client that resets one stream stops that stream only. The
exceptions here tell the handlers which side ended an exchange.
"""

from __future__ import annotations

import asyncio


class ClientGone(Exception):
    """The client closed the connection or reset the stream (or the emulator is stopping)."""


class ServerClosed(Exception):
    """The emulator dropped the connection or stream on purpose (the disconnect fault)."""


def resolve(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)
