"""proxy/h2.py without sockets: a client h2 state machine on one side, an UpstreamConnection on the
other, both on in-memory transports, so each test steps the flow-control windows exactly."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import h2.connection
import h2.events
from h2.config import H2Configuration
from h2.errors import ErrorCodes
from h2.settings import SettingCodes

from passerelle.proxy.dataplane import Dataplane
from passerelle.proxy.h2 import RESET_BUDGET, WINDOW, H2Connection
from passerelle.proxy.options import EntryPointOptions, ForwardingOptions
from passerelle.proxy.upstream import UpstreamConnection
from tests.unit.proxy.memory import MemoryTransport, _config, parse_request


class Transport(MemoryTransport):
    def __init__(self) -> None:
        super().__init__()
        self.reading = True
        self.protocol: asyncio.BaseProtocol | None = None

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol


@dataclass
class Wired:
    client: h2.connection.H2Connection  # the HTTP/2 client's state machine
    server: H2Connection
    client_side: Transport  # what the client was sent
    upstream: UpstreamConnection
    upstream_side: Transport  # what the upstream was sent
    idle: list[UpstreamConnection]

    def send(self) -> None:
        """The client's pending bytes reach the server."""
        data = self.client.data_to_send()
        if data:
            self.server.data_received(data)

    def receive(self) -> list[h2.events.Event]:
        """The server's bytes reach the client."""
        data = bytes(self.client_side.data)
        self.client_side.data.clear()
        events = self.client.receive_data(data) if data else []
        self.send()  # SETTINGS acks and the like
        return events


@contextmanager
def wired(*, window: int | None = None) -> Iterator[Wired]:
    loop = asyncio.new_event_loop()
    try:
        dataplane = Dataplane([EntryPointOptions(name="web", host="", port=80)], ForwardingOptions(), loop)
        dataplane.apply(_config(("a.example",)))
        entry = dataplane.entrypoints["web"]
        route = entry.table.match(b"a.example", b"/")
        assert route is not None
        pool = route.upstream.pools.items[0]
        upstream = UpstreamConnection(pool, ForwardingOptions(), dataplane.deadlines)
        upstream_side = Transport()
        upstream.connection_made(upstream_side)
        pool.idle.append(upstream)
        client_side = Transport()
        entry.serve_h2(client_side, b"X-Forwarded-Proto: https\r\n", None)
        server = client_side.protocol
        assert isinstance(server, H2Connection)
        client = h2.connection.H2Connection(H2Configuration(client_side=True, header_encoding=None))
        client.initiate_connection()
        if window is not None:
            client.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: window})
        pair = Wired(client, server, client_side, upstream, upstream_side, pool.idle)
        pair.send()
        pair.receive()
        yield pair
        loop.run_until_complete(asyncio.sleep(0))  # connection attempts cancelled by resets end
    finally:
        loop.close()


def request(pair: Wired, method: bytes, *, end: bool, extra: list[tuple[bytes, bytes]] | None = None) -> int:
    stream_id = pair.client.get_next_available_stream_id()
    fields = [(b":method", method), (b":scheme", b"https"), (b":authority", b"a.example"), (b":path", b"/p")]
    pair.client.send_headers(stream_id, fields + (extra or []), end_stream=end)
    pair.send()
    return stream_id


def send_body(pair: Wired, stream_id: int, size: int, byte: bytes) -> None:
    for _ in range(size // 10000):
        pair.client.send_data(stream_id, byte * 10000)
    pair.send()


def test_request_data_is_acknowledged_only_while_the_upstream_takes_it() -> None:
    with wired() as pair:
        stream_id = request(pair, b"POST", end=False)
        assert pair.upstream_side.data.startswith(b"POST /p HTTP/1.1\r\nHost: a.example\r\n")
        start = pair.client.local_flow_control_window(stream_id)
        assert start == WINDOW  # the server's SETTINGS
        # (the library gives window back once half of it is acknowledged: hence 600 kB at a time)
        send_body(pair, stream_id, 600000, b"a")
        pair.receive()
        given = pair.client.local_flow_control_window(stream_id)
        assert given >= start - 100000  # written upstream: given back (the library batches updates)
        pair.upstream.pause_writing()  # the upstream's socket is full
        send_body(pair, stream_id, 600000, b"b")
        pair.receive()
        assert pair.client.local_flow_control_window(stream_id) == given - 600000  # held back
        pair.upstream.resume_writing()
        pair.receive()
        assert pair.client.local_flow_control_window(stream_id) >= start - 100000
        pair.client.end_stream(stream_id)
        pair.send()
        _, _, _, body, complete = parse_request(bytes(pair.upstream_side.data))
        assert complete and body == b"a" * 600000 + b"b" * 600000  # chunked upstream: no length given


def test_a_response_waits_for_the_client_window_and_the_upstream_is_not_read_meanwhile() -> None:
    with wired(window=1000) as pair:
        stream_id = request(pair, b"GET", end=True)
        body = bytes(range(256)) * 20  # 5120 bytes
        pair.upstream.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 5120\r\n\r\n" + body[:3000])
        events = pair.receive()
        got = b"".join(e.data or b"" for e in events if isinstance(e, h2.events.DataReceived))
        assert got == body[:1000]
        assert not pair.upstream_side.reading  # bytes wait for window: the upstream is not read
        pair.client.acknowledge_received_data(1000, stream_id)
        pair.client.increment_flow_control_window(10000, stream_id=stream_id)
        pair.send()
        events = pair.receive()
        got += b"".join(e.data or b"" for e in events if isinstance(e, h2.events.DataReceived))
        assert got == body[:3000] and pair.upstream_side.reading  # sent: the upstream is read again
        pair.upstream.data_received(body[3000:])
        events = pair.receive()
        got += b"".join(e.data or b"" for e in events if isinstance(e, h2.events.DataReceived))
        assert got == body
        assert any(isinstance(e, h2.events.StreamEnded) for e in events)
        assert pair.idle == [pair.upstream]  # complete: pooled again


def test_a_client_reset_aborts_the_upstream_exchange() -> None:
    with wired() as pair:
        stream_id = request(pair, b"GET", end=True)
        pair.upstream.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000)
        pair.receive()
        pair.client.reset_stream(stream_id, ErrorCodes.CANCEL)
        pair.send()
        assert pair.upstream_side.closed and pair.idle == []  # mid-response: never pooled
        assert pair.server.streams == {}
        fresh = UpstreamConnection(pair.upstream.pool, ForwardingOptions(), pair.server.entry.deadlines)
        fresh_side = Transport()
        fresh.connection_made(fresh_side)
        pair.idle.append(fresh)
        again = request(pair, b"GET", end=True)  # the connection goes on, on another upstream connection
        assert again in pair.server.streams and fresh_side.data.startswith(b"GET /p HTTP/1.1")


def test_a_local_answer_before_the_body_ends_resets_with_no_error() -> None:
    with wired() as pair:
        stream_id = pair.client.get_next_available_stream_id()
        fields = [
            (b":method", b"POST"),
            (b":scheme", b"https"),
            (b":authority", b"b.example"),
            (b":path", b"/"),
        ]
        pair.client.send_headers(stream_id, fields)
        pair.send()
        events = pair.receive()
        response = next(e for e in events if isinstance(e, h2.events.ResponseReceived))
        assert dict(response.headers or [])[b":status"] == b"404"  # type: ignore[index]
        reset = next(e for e in events if isinstance(e, h2.events.StreamReset))
        assert reset.error_code == ErrorCodes.NO_ERROR
        assert pair.upstream_side.data == b""  # nothing went upstream


def test_crlf_in_a_field_never_reaches_the_upstream() -> None:
    with wired() as pair:
        lax = H2Configuration(
            client_side=True,
            header_encoding=None,
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
        )
        pair.client.config = lax
        fields = [
            (b":method", b"GET"),
            (b":scheme", b"https"),
            (b":authority", b"a.example"),
            (b":path", b"/p"),
            (b"x-evil", b"a\r\nGET /smuggled HTTP/1.1"),
        ]
        pair.client.send_headers(1, fields, end_stream=True)
        pair.send()
        assert pair.upstream_side.data == b""
        events = pair.receive()
        assert any(
            isinstance(e, h2.events.ConnectionTerminated) and e.error_code == ErrorCodes.PROTOCOL_ERROR
            for e in events
        )
        assert pair.client_side.closed


def test_a_request_reset_in_the_same_read_as_its_headers() -> None:
    with wired() as pair:
        fields = [
            (b":method", b"GET"),
            (b":scheme", b"https"),
            (b":authority", b"b.example"),
            (b":path", b"/"),
        ]
        pair.client.send_headers(1, fields, end_stream=False)  # b.example: a local 404
        pair.client.reset_stream(1, ErrorCodes.CANCEL)
        fields[2] = (b":authority", b"a.example")
        pair.client.send_headers(3, fields, end_stream=True)
        pair.client.reset_stream(3, ErrorCodes.CANCEL)  # after its upstream exchange began
        pair.send()  # one read: the library has closed both streams before we see their headers
        assert pair.server.streams == {}
        assert pair.upstream_side.closed and pair.idle == []
        assert not pair.client_side.closed  # the connection carries on


def test_rapid_reset_closes_the_connection_with_enhance_your_calm() -> None:
    with wired() as pair:
        fields = [
            (b":method", b"GET"),
            (b":scheme", b"https"),
            (b":authority", b"a.example"),
            (b":path", b"/"),
        ]
        for i in range(RESET_BUDGET):
            stream_id = 1 + 2 * i
            pair.client.send_headers(stream_id, fields, end_stream=True)
            pair.client.reset_stream(stream_id, ErrorCodes.CANCEL)
        pair.send()
        assert not pair.client_side.closed  # a hundred cancelled streams: still within the budget
        pair.client.send_headers(1 + 2 * RESET_BUDGET, fields, end_stream=True)
        pair.client.reset_stream(1 + 2 * RESET_BUDGET, ErrorCodes.CANCEL)
        pair.send()
        assert pair.client_side.closed
        events = pair.client.receive_data(bytes(pair.client_side.data))
        goaway = next(e for e in events if isinstance(e, h2.events.ConnectionTerminated))
        assert goaway.error_code == ErrorCodes.ENHANCE_YOUR_CALM
