"""HTTP/1.1 framing for the test API server: read a request, write a response or a chunked stream."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

MAX_BODY = 16 * 1024 * 1024


@dataclass(slots=True)
class HttpRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes = b""
    raw_query: str = ""
    keep_alive: bool = True
    parts: list[str] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.body or b"null")


async def read_request(reader: asyncio.StreamReader) -> HttpRequest | None:
    """The next request on a connection, or None at a clean end of the stream."""
    line = await reader.readline()
    if not line:
        return None
    try:
        method, target, version = line.decode("latin-1").split()
    except ValueError:
        raise ConnectionError(f"malformed request line {line!r}") from None
    headers: dict[str, str] = {}
    while True:
        raw = await reader.readline()
        if raw in (b"\r\n", b"\n", b""):
            break
        name, _, value = raw.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    if length > MAX_BODY:
        raise ConnectionError("request body too large")
    body = await reader.readexactly(length) if length else b""
    url = urlsplit(target)
    query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
    keep_alive = headers.get("connection", "").lower() != "close" and version == "HTTP/1.1"
    path = unquote(url.path)
    return HttpRequest(
        method=method.upper(),
        path=path,
        query=query,
        headers=headers,
        body=body,
        raw_query=url.query,
        keep_alive=keep_alive,
        parts=[p for p in path.split("/") if p],
    )


def _head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def write_json(writer: asyncio.StreamWriter, status: int, data: Any, *, keep_alive: bool = True) -> None:
    body = json.dumps(data).encode()
    headers = {
        "Content-Type": "application/json",
        "Content-Length": str(len(body)),
        "Cache-Control": "no-cache, private",
    }
    if not keep_alive:
        headers["Connection"] = "close"
    writer.write(_head(status, headers) + body)


def start_stream(writer: asyncio.StreamWriter) -> None:
    writer.write(
        _head(
            200,
            {
                "Content-Type": "application/json",
                "Transfer-Encoding": "chunked",
                "Cache-Control": "no-cache, private",
            },
        )
    )


def write_chunk(writer: asyncio.StreamWriter, data: Any) -> None:
    line = json.dumps(data).encode() + b"\n"
    writer.write(b"%x\r\n%s\r\n" % (len(line), line))


def end_stream(writer: asyncio.StreamWriter) -> None:
    writer.write(b"0\r\n\r\n")
