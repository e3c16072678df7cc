"""The API server's protocol fed bytes, answers read from a fake transport (no sockets)."""

from __future__ import annotations

import asyncio
import re

import pytest

from passerelle.api import server
from passerelle.api.server import Answer, ApiProtocol, Request, loopback_host


class Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.data = b""
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.data += bytes(data)

    def close(self) -> None:
        self.closed = True


seen: list[Request] = []


def _echo(request: Request) -> Answer:
    seen.append(request)
    return Answer.json({"path": request.path, "query": dict(request.query), "tail": request.tail})


ROUTES = {"/a": _echo, "/items/": _echo, "/boom": lambda _: 1 / 0}  # type: ignore[dict-item]


def connect(*, loopback_only: bool = True) -> tuple[ApiProtocol, Transport]:
    protocol, transport = ApiProtocol(ROUTES, loopback_only=loopback_only), Transport()
    protocol.connection_made(transport)
    return protocol, transport


def status_lines(data: bytes) -> list[bytes]:
    return re.findall(rb"HTTP/1\.1 \d{3} [^\r]*", data)


GET = b"GET %s HTTP/1.1\r\nHost: 127.0.0.1:9000\r\n\r\n"


@pytest.mark.parametrize(
    ("request_bytes", "status", "closes"),
    [
        (GET % b"/a", b"200", False),
        (GET % b"/nope", b"404", False),
        (b"POST /a HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\nhi", b"405", False),
        (b"DELETE /nope HTTP/1.1\r\nHost: localhost\r\n\r\n", b"404", False),
        (b"GET /a HTTP/1.0\r\nHost: localhost\r\n\r\n", b"200", True),
        (b"GET /a HTTP/1.0\r\n\r\n", b"200", True),
        (b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", b"200", False),
        (b"GET /a HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", b"200", True),
        (b"GARBAGE\r\n\r\n", b"400", True),
        (b"GET /a HTTP/1.1\r\nHost: evil.example\r\n\r\n", b"421", False),
        (b"GET /a HTTP/1.1\r\nHost: [::1]:9000\r\n\r\n", b"200", False),
        (b"GET /a HTTP/1.1\r\nHost: dash.localhost\r\n\r\n", b"200", False),
        (b"GET /boom HTTP/1.1\r\nHost: localhost\r\n\r\n", b"500", False),
        (b"GET /" + b"a" * server.MAX_TARGET + b" HTTP/1.1\r\nHost: localhost\r\n\r\n", b"414", True),
        (b"GET /a HTTP/1.1\r\nHost: localhost\r\nX: " + b"v" * server.MAX_HEADERS + b"\r\n\r\n", b"431", True),
        (b"GET /a HTTP/1.1\r\nHost: localhost\r\nContent-Length: 70000\r\n\r\n" + b"b" * 70000, b"413", True),
    ],
    ids=["get", "unknown", "post", "delete-unknown", "http10", "http10-no-host", "http10-keep-alive", "close", "garbage", "rebinding", "v6-loopback",
         "dot-localhost", "handler-error", "long-target", "big-headers", "big-body"],
)  # fmt: skip
async def test_answers(request_bytes: bytes, status: bytes, closes: bool) -> None:
    protocol, transport = connect()
    protocol.data_received(request_bytes)
    assert status_lines(transport.data) == [b"HTTP/1.1 " + status + b" " + _phrase(status)]
    assert transport.closed is closes
    assert (b"Connection: close" in transport.data) is closes
    protocol.connection_lost(None)


def _phrase(status: bytes) -> bytes:
    from http import HTTPStatus

    return HTTPStatus(int(status)).phrase.encode()


async def test_405_names_the_methods_allowed() -> None:
    protocol, transport = connect()
    protocol.data_received(b"PUT /a HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n")
    assert b"Allow: GET, HEAD\r\n" in transport.data


async def test_head_has_the_length_and_no_body() -> None:
    protocol, transport = connect()
    protocol.data_received(b"HEAD /a HTTP/1.1\r\nHost: localhost\r\n\r\n")
    head, _, body = transport.data.partition(b"\r\n\r\n")
    assert body == b"" and b"Content-Length: " in head and b"Content-Length: 0" not in head


async def test_pipelined_requests_are_answered_in_order_and_query_strings_parsed() -> None:
    protocol, transport = connect()
    protocol.data_received(GET % b"/a?x=1&x=2&y=" + GET % b"/items/default%2Fweb%3A80?z")
    assert status_lines(transport.data) == [b"HTTP/1.1 200 OK"] * 2
    assert seen[-2].query == {"x": ["1", "2"], "y": [""]} and seen[-2].arg("x") == "1"
    assert seen[-1].tail == "default/web:80" and seen[-1].path == "/items/default%2Fweb%3A80"
    assert not transport.closed


async def test_a_request_split_across_reads() -> None:
    protocol, transport = connect()
    for byte in GET % b"/a":
        protocol.data_received(bytes([byte]))
    assert status_lines(transport.data) == [b"HTTP/1.1 200 OK"]


async def test_nothing_is_read_after_a_malformed_request() -> None:
    protocol, transport = connect()
    protocol.data_received(b"\x00\x01 nonsense\r\n\r\n")
    protocol.data_received(GET % b"/a")
    assert status_lines(transport.data) == [b"HTTP/1.1 400 Bad Request"]


async def test_bound_elsewhere_any_host_is_answered() -> None:
    protocol, transport = connect(loopback_only=False)
    protocol.data_received(b"GET /a HTTP/1.1\r\nHost: router.example\r\n\r\n")
    assert status_lines(transport.data) == [b"HTTP/1.1 200 OK"]


async def test_an_idle_connection_is_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "IDLE_TIMEOUT", 0.01)
    protocol, transport = connect()
    protocol.data_received(b"GET /a HTTP/1.1\r\n")  # a head that never completes
    await asyncio.sleep(0.05)
    assert transport.closed


async def test_a_prefix_route_needs_something_after_the_prefix() -> None:
    protocol, transport = connect()
    protocol.data_received(GET % b"/items" + GET % b"/items/x/y")
    assert status_lines(transport.data) == [b"HTTP/1.1 404 Not Found"] * 2


@pytest.mark.parametrize(
    ("host", "expected"),
    [(b"localhost", True), (b"LOCALHOST:9000", True), (b"127.0.0.2", True), (b"[::1]:1", True),
     (b"a.localhost", True), (b"localhost.evil.com", False), (b"10.0.0.1", False), (b"", False), (b"[::2]", False)],
)  # fmt: skip
def test_loopback_host(host: bytes, expected: bool) -> None:
    assert loopback_host(host) is expected


@pytest.mark.parametrize(
    ("host", "expected"),
    [("127.0.0.1", True), ("::1", True), ("localhost", True), ("", False), ("0.0.0.0", False)],
)
def test_is_loopback_address(host: str, expected: bool) -> None:
    assert server.is_loopback_address(host) is expected
