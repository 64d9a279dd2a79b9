"""Bytes on the wire: a small HTTP/1.1 request parser and the Messages API's response shapes.

No I/O: the parser takes a buffer and says whether a whole request is in it; the builders
return bytes. The server module moves those bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 32 * 1024 * 1024

REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
    529: "Overloaded",
}

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


class BadRequest(Exception):
    """The bytes are not an HTTP/1.1 request we can answer; the connection must close."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class HttpRequest:
    method: str
    target: str
    version: str
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def keep_alive(self) -> bool:
        conn = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" in conn
        return "close" not in conn


def _dechunk(buf: bytes | bytearray, start: int) -> tuple[bytes, int] | None:
    """Decode a chunked body starting at ``start``: (body, end offset) or None if incomplete."""
    out = bytearray()
    pos = start
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size_text = bytes(buf[pos:eol]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise BadRequest(400, "bad chunk size") from None
        pos = eol + 2
        if size == 0:
            # Trailers until an empty line.
            while True:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    return None
                if eol == pos:
                    return bytes(out), eol + 2
                pos = eol + 2
        if len(out) + size > MAX_BODY_BYTES:
            raise BadRequest(413, "body too large")
        if len(buf) < pos + size + 2:
            return None
        out += buf[pos : pos + size]
        pos += size + 2


def parse_request(buf: bytearray) -> tuple[HttpRequest, int] | None:
    """One request from the front of ``buf``: (request, bytes consumed), or None if incomplete.

    Raises :class:`BadRequest` for malformed input.
    """
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        if len(buf) > MAX_HEADER_BYTES:
            raise BadRequest(431, "request headers too large")
        return None
    if head_end > MAX_HEADER_BYTES:
        raise BadRequest(431, "request headers too large")
    try:
        head = bytes(buf[:head_end]).decode("latin-1")
    except Exception:  # pragma: no cover - latin-1 decodes every byte
        raise BadRequest(400, "undecodable headers") from None
    lines = head.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest(400, "bad request line")
    method, target, version = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest(400, "bad header line")
        key = name.lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    start = head_end + 4
    if "chunked" in headers.get("transfer-encoding", "").lower():
        decoded = _dechunk(buf, start)
        if decoded is None:
            return None
        body, end = decoded
        return HttpRequest(method, target, version, headers, body), end
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        raise BadRequest(400, "bad content-length") from None
    if length < 0:
        raise BadRequest(400, "bad content-length")
    if length > MAX_BODY_BYTES:
        raise BadRequest(413, "body too large")
    if len(buf) < start + length:
        return None
    return HttpRequest(method, target, version, headers, bytes(buf[start : start + length])), (
        start + length
    )


def response_head(status: int, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}"]
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def full_response(
    status: int, payload: object, headers: list[tuple[str, str]], keep_alive: bool
) -> bytes:
    body = dumps(payload)
    head = [
        ("content-type", "application/json"),
        ("content-length", str(len(body))),
        ("connection", "keep-alive" if keep_alive else "close"),
        *headers,
    ]
    return response_head(status, head) + body


def error_payload(
    status: int, message: str, request_id: str, error_type: str | None = None
) -> dict:
    return {
        "type": "error",
        "error": {"type": error_type or ERROR_TYPES.get(status, "api_error"), "message": message},
        "request_id": request_id,
    }


def sse(event: str, data: object) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + dumps(data) + b"\n\n"


def _delta_head(index: int, kind: str, field: str) -> bytes:
    return (
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
        + str(index).encode()
        + b',"delta":{"type":"'
        + kind.encode()
        + b'","'
        + field.encode()
        + b'":'
    )


# Text is block 0, or block 1 after a thinking block.
_TEXT_HEADS = {i: _delta_head(i, "text_delta", "text") for i in (0, 1)}


def text_delta(text: str, index: int = 0) -> bytes:
    """The content_block_delta event for one piece of text (the hot path: no dict, one dumps)."""
    head = _TEXT_HEADS.get(index) or _delta_head(index, "text_delta", "text")
    return head + dumps(text) + b"}}\n\n"


def thinking_delta(thinking: str, index: int = 0) -> bytes:
    """A ``thinking_delta`` of a thinking block (the SDK's ThinkingDelta)."""
    return _delta_head(index, "thinking_delta", "thinking") + dumps(thinking) + b"}}\n\n"


def block_start(index: int, block: dict) -> bytes:
    return sse(
        "content_block_start",
        {"type": "content_block_start", "index": index, "content_block": block},
    )


def block_stop(index: int) -> bytes:
    return sse("content_block_stop", {"type": "content_block_stop", "index": index})


def thinking_block_end(index: int, signature: str) -> bytes:
    """The ``signature_delta`` that closes a thinking block, then its ``content_block_stop``."""
    delta = {"type": "signature_delta", "signature": signature}
    return sse(
        "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
    ) + block_stop(index)


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked-encoded body."""
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


LAST_CHUNK = b"0\r\n\r\n"
