"""A client connection and a pooled upstream connection wired to in-memory transports.

The protocols are the real ones; only the sockets are replaced, so a test can feed bytes to either
side in any split it likes and read back exactly what was written to the other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from httptools import HttpRequestParser, HttpResponseParser

from passerelle.model import DynamicConfig, PathMatch, PathType, Router, Server, Service
from passerelle.proxy.connection import ClientConnection
from passerelle.proxy.dataplane import Dataplane
from passerelle.proxy.options import EntryPointOptions, ForwardingOptions
from passerelle.proxy.upstream import UpstreamConnection


class MemoryTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.data = bytearray()
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.data += data

    def writelines(self, lines: Iterable[bytes | bytearray | memoryview]) -> None:
        for line in lines:
            self.data += line

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("192.0.2.7", 40000) if name in ("peername", "sockname") else default

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


@dataclass
class Pair:
    client: ClientConnection
    client_side: MemoryTransport  # what the client was sent
    upstream: UpstreamConnection
    upstream_side: MemoryTransport  # what the upstream was sent
    pool_idle: list[UpstreamConnection] = field(default_factory=list)


def _config(hosts: tuple[str, ...]) -> DynamicConfig:
    prefix = PathMatch(type=PathType.PREFIX, value="/")
    return DynamicConfig(
        routers=tuple(Router(name=h, service="backend", host=h, path=prefix) for h in hosts),
        services=(Service(name="backend", servers=(Server(host="127.0.0.1", port=9),)),),
    )


@contextmanager
def connected(hosts: tuple[str, ...] = ("a.example",), *, request_ids: bool = False) -> Iterator[Pair]:
    """A client connection on an entry point routing `hosts` to one server, whose pool holds one
    idle upstream connection, so a request is sent at once, without connecting."""
    loop = asyncio.new_event_loop()
    try:
        options = EntryPointOptions(name="web", host="", port=80, request_ids=request_ids)
        dataplane = Dataplane([options], ForwardingOptions(), loop)
        dataplane.apply(_config(hosts))
        entry = dataplane.entrypoints["web"]
        route = entry.table.match(hosts[0].encode(), b"/")
        assert route is not None
        pool = route.upstream.pools.items[0]
        upstream = UpstreamConnection(pool, ForwardingOptions(), dataplane.deadlines)
        upstream_side = MemoryTransport()
        upstream.connection_made(upstream_side)
        pool.idle.append(upstream)
        client = ClientConnection(entry)
        client_side = MemoryTransport()
        client.connection_made(client_side)
        yield Pair(client, client_side, upstream, upstream_side, pool.idle)
    finally:
        loop.close()


class Message:
    """One parsed HTTP message, for comparing two byte streams by meaning rather than spelling."""

    def __init__(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = b""
        self.complete = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value.strip(b" \t")))

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.complete = True


def parse_request(data: bytes) -> tuple[bytes, bytes, list[tuple[bytes, bytes]], bytes, bool]:
    """Method, target, headers, body so far, and whether the request is complete."""
    message = Message()
    parser = HttpRequestParser(message)
    parser.feed_data(data)
    return parser.get_method(), message.url, message.headers, message.body, message.complete


def parse_response(
    data: bytes, *, head: bool = False, whole: bool = True
) -> tuple[list[bytes], bytes, list[tuple[bytes, bytes]], bytes]:
    """Interim (1xx) heads as sent, then the final response's status line, headers and body
    (asserted complete unless `whole` is False: a response cut short then has its body so far)."""
    interim = []
    while data.startswith(b"HTTP/1.1 1"):
        end = data.index(b"\r\n\r\n") + 4
        interim.append(data[:end])
        data = data[end:]
    message = Message()
    HttpResponseParser(message).feed_data(data[: data.index(b"\r\n\r\n") + 4] if head else data)
    assert head or message.complete or not whole, data
    return interim, data[: data.index(b"\r\n")], message.headers, message.body
