"""The API server's protocol fed bytes, answers read from a fake transport (no sockets)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator

import pytest

from passerelle.api import server
from passerelle.api.admission import Slots, is_loopback_address, loopback_host
from passerelle.api.server import Answer, ApiProtocol, Handler, Request

HIGH_WATER = 65536  # asyncio's default write buffer limit


class Transport(asyncio.Transport):
    """Keeps what is written, as a socket's buffer would for a client that does not read: past
    HIGH_WATER buffered bytes it tells the protocol to pause writing, as asyncio's transports do."""

    def __init__(self) -> None:
        super().__init__()
        self.data = b""
        self.buffered = 0
        self.most_buffered = 0
        self.closed = False
        self.reading = True
        self.protocol: ApiProtocol | None = None
        self._paused = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.data += bytes(data)
        self.buffered += len(data)
        self.most_buffered = max(self.most_buffered, self.buffered)
        if self.buffered > HIGH_WATER and not self._paused and self.protocol is not None:
            self._paused = True
            self.protocol.pause_writing()

    def drain(self) -> None:
        """The client reads everything buffered."""
        self.buffered = 0
        if self._paused and self.protocol is not None:
            self._paused = False
            self.protocol.resume_writing()

    def close(self) -> None:
        self.closed = True

    def can_write_eof(self) -> bool:
        return False  # a refusal closes at once (the sockets' half-close: tests/integration)

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True


Connect = Callable[..., tuple[ApiProtocol, Transport]]


def _echo(seen: list[Request]) -> Handler:
    def handler(request: Request) -> Answer:
        seen.append(request)
        return Answer.json({"path": request.path, "query": dict(request.query), "tail": request.tail})

    return handler


@pytest.fixture
def seen() -> Iterator[list[Request]]:
    yield []


@pytest.fixture
def routes(seen: list[Request]) -> dict[str, Handler]:
    return {
        "/a": _echo(seen),
        "/items/": _echo(seen),
        "/boom": lambda _: 1 / 0,  # type: ignore[dict-item,return-value]
        "/big": lambda _: Answer(200, b"x" * 4096),
    }


@pytest.fixture
def connect(routes: dict[str, Handler]) -> Iterator[Connect]:
    made: list[ApiProtocol] = []

    def make(*, loopback_only: bool = True, slots: Slots | None = None) -> tuple[ApiProtocol, Transport]:
        protocol, transport = ApiProtocol(routes, loopback_only=loopback_only, slots=slots), Transport()
        transport.protocol = protocol
        protocol.connection_made(transport)
        made.append(protocol)
        return protocol, transport

    yield make
    for protocol in made:
        protocol.connection_lost(None)


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
        (b"GET /a HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n\r\n", b"400", True),
        (b"GET /a HTTP/1.1\r\n\r\n", b"400", True),
    ],
    ids=["get", "unknown", "post", "delete-unknown", "http10", "http10-no-host", "http10-keep-alive", "close", "garbage", "rebinding", "v6-loopback",
         "dot-localhost", "handler-error", "long-target", "big-headers", "big-body", "two-hosts", "http11-no-host"],
)  # fmt: skip
async def test_answers(request_bytes: bytes, status: bytes, closes: bool, connect: Connect) -> None:
    protocol, transport = connect()
    protocol.data_received(request_bytes)
    assert status_lines(transport.data) == [b"HTTP/1.1 " + status + b" " + _phrase(status)]
    assert transport.closed is closes
    assert (b"Connection: close" in transport.data) is closes
    protocol.connection_lost(None)


def _phrase(status: bytes) -> bytes:
    from http import HTTPStatus

    return HTTPStatus(int(status)).phrase.encode()


async def test_405_names_the_methods_allowed(connect: Connect) -> None:
    protocol, transport = connect()
    protocol.data_received(b"PUT /a HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n")
    assert b"Allow: GET, HEAD\r\n" in transport.data


async def test_head_has_the_length_and_no_body(connect: Connect) -> None:
    protocol, transport = connect()
    protocol.data_received(b"HEAD /a HTTP/1.1\r\nHost: localhost\r\n\r\n")
    head, _, body = transport.data.partition(b"\r\n\r\n")
    assert body == b"" and b"Content-Length: " in head and b"Content-Length: 0" not in head


async def test_pipelined_requests_are_answered_in_order_and_query_strings_parsed(
    connect: Connect, seen: list[Request]
) -> None:
    protocol, transport = connect()
    protocol.data_received(GET % b"/a?x=1&x=2&y=" + GET % b"/items/default%2Fweb%3A80?z")
    assert status_lines(transport.data) == [b"HTTP/1.1 200 OK"] * 2
    assert seen[-2].query == {"x": ["1", "2"], "y": [""]} and seen[-2].arg("x") == "1"
    assert seen[-1].tail == "default/web:80" and seen[-1].path == "/items/default%2Fweb%3A80"
    assert not transport.closed


async def test_a_request_split_across_reads(connect: Connect) -> None:
    protocol, transport = connect()
    for byte in GET % b"/a":
        protocol.data_received(bytes([byte]))
    assert status_lines(transport.data) == [b"HTTP/1.1 200 OK"]


async def test_nothing_is_read_after_a_malformed_request(connect: Connect) -> None:
    protocol, transport = connect()
    protocol.data_received(b"\x00\x01 nonsense\r\n\r\n")
    protocol.data_received(GET % b"/a")
    assert status_lines(transport.data) == [b"HTTP/1.1 400 Bad Request"]


async def test_bound_elsewhere_any_host_is_answered(connect: Connect) -> None:
    protocol, transport = connect(loopback_only=False)
    protocol.data_received(b"GET /a HTTP/1.1\r\nHost: router.example\r\n\r\n")
    assert status_lines(transport.data) == [b"HTTP/1.1 200 OK"]


async def test_an_idle_connection_is_closed(monkeypatch: pytest.MonkeyPatch, connect: Connect) -> None:
    monkeypatch.setattr(server, "IDLE_TIMEOUT", 0.01)
    protocol, transport = connect()
    protocol.data_received(b"GET /a HTTP/1.1\r\n")  # a head that never completes
    await asyncio.sleep(0.05)
    assert transport.closed


async def test_a_prefix_route_needs_something_after_the_prefix(connect: Connect) -> None:
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
    assert is_loopback_address(host) is expected


async def test_a_header_still_arriving_is_cut_at_the_head_limit(connect: Connect) -> None:
    """httptools hands a header over only when its value ends: the bytes are counted as they come."""
    protocol, transport = connect()
    protocol.data_received(b"GET /a HTTP/1.1\r\nHost: localhost\r\nX-Endless: ")
    sent = 0
    chunk = b"v" * 65536
    while not transport.closed and sent < 13_000_000:  # 13 MB of one header value, never ended
        protocol.data_received(chunk)
        sent += len(chunk)
    assert status_lines(transport.data) == [b"HTTP/1.1 431 Request Header Fields Too Large"]
    assert transport.closed and sent <= server.MAX_HEAD + len(chunk)


async def test_a_long_head_split_small_is_cut_too(connect: Connect) -> None:
    protocol, transport = connect()
    protocol.data_received(b"GET /a HTTP/1.1\r\nHost: localhost\r\n")
    for _ in range(server.MAX_HEAD // 100 + 10):  # many small headers, each under every other limit
        protocol.data_received(b"X: " + b"v" * 95 + b"\r\n")
    assert status_lines(transport.data) == [b"HTTP/1.1 431 Request Header Fields Too Large"]


async def test_a_head_under_the_limit_after_many_pipelined_requests_is_answered(connect: Connect) -> None:
    protocol, transport = connect()
    near_limit = (
        b"GET /a HTTP/1.1\r\nHost: localhost\r\nX: " + b"v" * (server.MAX_HEADERS - 100) + b"\r\n\r\n"
    )
    stream = GET % b"/a" * 300 + near_limit
    for start in range(0, len(stream), 65536):
        protocol.data_received(stream[start : start + 65536])
    assert status_lines(transport.data) == [b"HTTP/1.1 200 OK"] * 301 and not transport.closed


async def test_pipelined_answers_wait_while_the_client_does_not_read(connect: Connect) -> None:
    protocol, transport = connect()
    protocol.data_received(GET % b"/big" * 1000)  # 1,000 requests, 4 KiB answers, nothing read
    answered = len(status_lines(transport.data))
    assert answered < 1000 and not transport.reading  # not read further while answers wait
    assert transport.most_buffered <= HIGH_WATER + 4096 + 512  # the buffer, and one answer over it
    while transport.buffered:
        transport.drain()
    assert len(status_lines(transport.data)) == 1000 and transport.reading
    assert transport.most_buffered <= HIGH_WATER + 4096 + 512 and not transport.closed


async def test_an_upgrade_request_is_answered_and_the_connection_closed(connect: Connect) -> None:
    protocol, transport = connect()
    upgrade = b"GET /a HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    protocol.data_received(upgrade + b"\x81\x05hello" + GET % b"/a")  # a frame, then what looks like HTTP
    assert status_lines(transport.data) == [b"HTTP/1.1 200 OK"]
    assert b"Connection: close\r\n" in transport.data and b"Upgrade" not in transport.data
    assert transport.closed


async def test_connections_past_the_limit_are_answered_503_and_closed(connect: Connect) -> None:
    slots = Slots(2)
    (first, first_t), (_, second_t) = connect(slots=slots), connect(slots=slots)
    _, third_t = connect(slots=slots)
    assert status_lines(third_t.data) == [b"HTTP/1.1 503 Service Unavailable"] and third_t.closed
    assert not first_t.closed and not second_t.closed and slots.used == 2
    first.connection_lost(None)
    _, fourth_t = connect(slots=slots)
    assert fourth_t.data == b"" and not fourth_t.closed and slots.used == 2


async def test_an_async_handler_keeps_pipelined_answers_in_order(seen: list[Request]) -> None:
    async def made() -> Answer:
        await asyncio.sleep(0.01)
        return Answer(200, b"slow")

    def slow(request: Request) -> Answer:
        return Answer.after(made())

    protocol = ApiProtocol({"/slow": slow, "/a": _echo(seen)}, loopback_only=True)
    transport = Transport()
    transport.protocol = protocol
    protocol.connection_made(transport)
    protocol.data_received(GET % b"/slow" + GET % b"/a" + GET % b"/slow")
    assert transport.data == b"" and not transport.reading  # waiting for the first
    for _ in range(50):
        await asyncio.sleep(0.01)
        if len(status_lines(transport.data)) == 3:
            break
    bodies = [part.rpartition(b"\r\n\r\n")[2] for part in transport.data.split(b"HTTP/1.1 ")[1:]]
    assert bodies[0] == b"slow" and b'"path": "/a"' in bodies[1] and bodies[2] == b"slow"
    assert transport.reading
    protocol.connection_lost(None)
