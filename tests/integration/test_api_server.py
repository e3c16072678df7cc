"""The API's HTTP server on a real loopback socket, in this process: its limits under clients that
misbehave (a header that never ends, pipelining without reading, too many connections)."""

from __future__ import annotations

import asyncio
import select
import socket
from collections.abc import AsyncIterator

import pytest

from passerelle.api.admission import Slots
from passerelle.api.server import Answer, ApiProtocol, Handler

BIG = 16384  # bytes of each answer of /big


def _routes() -> dict[str, Handler]:
    return {"/ping": lambda _: Answer(200, b"OK"), "/big": lambda _: Answer(200, b"x" * BIG)}


class Served:
    def __init__(self, srv: asyncio.Server, protocols: list[ApiProtocol]) -> None:
        self.server = srv
        self.protocols = protocols
        self.port = srv.sockets[0].getsockname()[1]


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    loop = asyncio.get_running_loop()
    protocols: list[ApiProtocol] = []
    slots = Slots(3)

    def make() -> ApiProtocol:
        protocol = ApiProtocol(_routes(), loopback_only=True, slots=slots)
        protocols.append(protocol)
        return protocol

    srv = await loop.create_server(make, "127.0.0.1", 0)
    yield Served(srv, protocols)
    srv.close()
    await srv.wait_closed()


async def _connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def test_a_header_that_never_ends_is_cut_over_a_socket(served: Served) -> None:
    loop = asyncio.get_running_loop()
    sock = socket.create_connection(("127.0.0.1", served.port))
    sock.setblocking(False)
    await loop.sock_sendall(sock, b"GET /ping HTTP/1.1\r\nHost: localhost\r\nX-Endless: ")
    sent = 0
    while sent < 13_000_000 and not select.select([sock], [], [], 0)[0]:  # 13 MB of one value
        await asyncio.wait_for(loop.sock_sendall(sock, b"v" * 65536), 10)
        sent += 65536
        await asyncio.sleep(0.005)
    answer = await asyncio.wait_for(loop.sock_recv(sock, 4096), 10)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:100]
    assert sent < 2_000_000  # cut near the limit, not after the whole value
    assert await asyncio.wait_for(loop.sock_recv(sock, 4096), 10) == b""  # then closed
    sock.close()


async def test_pipelined_requests_to_a_client_that_does_not_read(served: Served) -> None:
    sock = socket.create_connection(("127.0.0.1", served.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(sock, b"GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n" * 1000)
    most = 0
    for _ in range(30):  # the server writes until the socket and its buffer are full, then waits
        await asyncio.sleep(0.02)
        transport = served.protocols[0].transport
        assert transport is not None
        most = max(most, transport.get_write_buffer_size())
    assert most <= 65536 + BIG + 512  # asyncio's high-water mark, and one answer over it
    got = b""
    while got.count(b"HTTP/1.1 200 OK") < 1000:
        chunk = await asyncio.wait_for(loop.sock_recv(sock, 1 << 20), 10)
        assert chunk
        got += chunk
        transport = served.protocols[0].transport
        assert transport is not None
        most = max(most, transport.get_write_buffer_size())
    assert most <= 65536 + BIG + 512
    sock.close()


async def test_connections_past_the_limit_are_refused_politely(served: Served) -> None:
    held = [await _connect(served.port) for _ in range(3)]
    await asyncio.sleep(0.05)
    reader, writer = await _connect(served.port)
    refused = await asyncio.wait_for(reader.read(), 10)
    assert refused.startswith(b"HTTP/1.1 503 ") and b"Connection: close" in refused
    await _close(writer)
    for held_reader, held_writer in held:  # those within the limit are served
        held_writer.write(b"GET /ping HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert (await asyncio.wait_for(held_reader.readuntil(b"OK"), 10)).startswith(b"HTTP/1.1 200 ")
    await _close(held[0][1])
    await asyncio.sleep(0.05)
    reader, writer = await _connect(served.port)  # a slot is free again
    writer.write(b"GET /ping HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    assert (await asyncio.wait_for(reader.read(), 10)).startswith(b"HTTP/1.1 200 ")
    for _, held_writer in [*held[1:], (reader, writer)]:
        await _close(held_writer)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        await writer.wait_closed()
    except ConnectionError:
        pass


async def test_an_upgrade_request_is_answered_and_closed_over_a_socket(served: Served) -> None:
    reader, writer = await _connect(served.port)
    writer.write(
        b"GET /ping HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        b"\x81\x85\x00\x00\x00\x00hello"  # a frame, sent at once as a client that does not wait would
    )
    answer = await asyncio.wait_for(reader.read(), 10)  # then the server closes: EOF, no reset
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b"\r\n\r\nOK")
    assert b"Connection: close\r\n" in answer and b"101" not in answer
    await _close(writer)
