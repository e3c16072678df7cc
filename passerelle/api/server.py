"""A small HTTP/1.1 server for the API: one handler per path, JSON or text answers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from httptools import HttpParserError, HttpRequestParser, parse_url


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"

    @classmethod
    def json(cls, data: Any, status: int = 200) -> Answer:
        return cls(status, json.dumps(data, indent=2).encode() + b"\n", "application/json")


Handler = Callable[[], Answer]


class ApiProtocol(asyncio.Protocol):
    def __init__(self, routes: dict[str, Handler]) -> None:
        self._routes = routes
        self._parser = HttpRequestParser(self)
        self._url = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except HttpParserError:
            self._write(Answer(400, b"malformed request\n"), keep_alive=False)

    def on_message_begin(self) -> None:
        self._url = b""

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_message_complete(self) -> None:
        method = self._parser.get_method()
        path = parse_url(self._url).path.decode("latin-1")
        handler = self._routes.get(path)
        if handler is None:
            answer = Answer(404, b"404 page not found\n")
        elif method not in (b"GET", b"HEAD"):
            answer = Answer(405, b"method not allowed\n")
        else:
            answer = handler()
        self._write(answer, keep_alive=self._parser.should_keep_alive(), head=method == b"HEAD")

    def _write(self, answer: Answer, *, keep_alive: bool, head: bool = False) -> None:
        assert self.transport is not None
        reason = HTTPStatus(answer.status).phrase
        lines = [
            f"HTTP/1.1 {answer.status} {reason}",
            f"Content-Type: {answer.content_type}",
            f"Content-Length: {len(answer.body)}",
            "Cache-Control: no-store",
        ]
        if not keep_alive:
            lines.append("Connection: close")
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode() + (b"" if head else answer.body))
        if not keep_alive:
            self.transport.close()


async def serve_api(host: str, port: int, routes: dict[str, Handler]) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: ApiProtocol(routes), host or None, port, reuse_address=True)
