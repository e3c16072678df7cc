"""proxy/h2c.py without sockets: an HTTP/1.1 ClientConnection on one side, an h2 server state
machine (the upstream) on the other, both on in-memory transports, so each test steps the
flow-control windows exactly."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import h2.connection
import h2.events
import h2.settings
from h2.config import H2Configuration
from h2.connection import ConnectionState, H2Connection
from h2.errors import ErrorCodes
from hyperframe.frame import GoAwayFrame

from passerelle.model import DynamicConfig, PathMatch, PathType, Router, Server, Service
from passerelle.proxy.connection import ClientConnection
from passerelle.proxy.dataplane import Dataplane
from passerelle.proxy.h2c import CONNECTION_WINDOW, STREAM_WINDOW, H2cConnection, H2cPool
from passerelle.proxy.h2cstream import PENDING_HIGH
from passerelle.proxy.options import EntryPointOptions, ForwardingOptions
from tests.unit.proxy.test_h2 import Transport


@dataclass
class Wired:
    client: ClientConnection
    client_side: Transport  # what the HTTP/1.1 client was sent
    conn: H2cConnection
    upstream_side: Transport  # what the h2c server was sent
    server: h2.connection.H2Connection  # the h2c server's state machine

    def to_server(self) -> list[h2.events.Event]:
        data = bytes(self.upstream_side.data)
        self.upstream_side.data.clear()
        return self.server.receive_data(data) if data else []

    def to_proxy(self) -> None:
        data = self.server.data_to_send()
        if data:
            self.conn.data_received(data)

    def exchange(self) -> list[h2.events.Event]:
        """Both ways until quiet: the events the server saw."""
        events: list[h2.events.Event] = []
        while True:
            seen = self.to_server()
            events += seen
            self.to_proxy()
            if not seen and not self.upstream_side.data:
                return events


@contextmanager
def wired() -> Iterator[Wired]:
    loop = asyncio.new_event_loop()
    try:
        dataplane = Dataplane([EntryPointOptions(name="web", host="", port=80)], ForwardingOptions(), loop)
        prefix = PathMatch(type=PathType.PREFIX, value="/")
        server_ref = Server(host="127.0.0.1", port=9)
        service = Service(name="grpc", servers=(server_ref,), scheme="h2c")
        dataplane.apply(
            DynamicConfig(routers=(Router(name="r", service="grpc", path=prefix),), services=(service,))
        )
        entry = dataplane.entrypoints["web"]
        route = entry.table.match(b"a.example", b"/")
        assert route is not None
        pool = route.upstream.pools.items[0]
        assert isinstance(pool, H2cPool)
        conn = H2cConnection(pool, ForwardingOptions(), dataplane.deadlines)
        upstream_side = Transport()
        conn.connection_made(upstream_side)
        pool.conns.append(conn)
        server = h2.connection.H2Connection(H2Configuration(client_side=False, header_encoding=None))
        server.initiate_connection()
        client = ClientConnection(entry)
        client_side = Transport()
        client.connection_made(client_side)
        pair = Wired(client, client_side, conn, upstream_side, server)
        pair.exchange()
        assert conn.settled
        yield pair
    finally:
        loop.close()


def respond(pair: Wired, stream_id: int, body: bytes, trailers: bool = True) -> None:
    pair.server.send_headers(stream_id, [(b":status", b"200"), (b"content-type", b"application/grpc")])
    for at in range(0, len(body), 16384):  # the default SETTINGS_MAX_FRAME_SIZE
        pair.server.send_data(stream_id, body[at : at + 16384])
    if trailers:
        pair.server.send_headers(stream_id, [(b"grpc-status", b"0")], end_stream=True)
    pair.to_proxy()


def test_a_request_becomes_a_stream_and_the_trailers_come_back_to_a_te_client() -> None:
    with wired() as pair:
        pair.client.data_received(
            b"GET /x HTTP/1.1\r\nHost: a.example\r\nTE: trailers\r\nConnection: TE\r\n\r\n"
        )
        events = pair.exchange()
        request = next(e for e in events if isinstance(e, h2.events.RequestReceived))
        fields = dict(request.headers or [])  # type: ignore[arg-type]
        assert (
            fields[b":path"] == b"/x"
            and fields[b":authority"] == b"a.example"
            and fields[b"te"] == b"trailers"
        )
        assert request.stream_ended is not None  # no body: END_STREAM with the HEADERS
        respond(pair, request.stream_id, b"hello")
        assert bytes(pair.client_side.data).endswith(b"5\r\nhello\r\n0\r\ngrpc-status: 0\r\n\r\n")
        assert pair.conn.reserved == 0 and not pair.conn.streams  # the stream is done with


def test_a_request_body_waits_for_the_servers_window_and_pauses_the_client() -> None:
    with wired() as pair:
        size = 200 * 1024
        pair.client.data_received(
            b"POST /up HTTP/1.1\r\nHost: a.example\r\nContent-Length: %d\r\n\r\n" % size
        )
        pair.client.data_received(b"a" * (128 * 1024))
        events = pair.to_server()
        received = sum(len(e.data or b"") for e in events if isinstance(e, h2.events.DataReceived))
        assert received == 65535  # the server's initial stream window, no more
        assert not pair.client_side.reading  # 64 KiB+ waiting: the client is not read meanwhile
        assert 128 * 1024 - received > PENDING_HIGH
        stream_id = next(e.stream_id for e in events if isinstance(e, h2.events.RequestReceived))
        pair.server.acknowledge_received_data(received, stream_id)  # the server read it
        pair.to_proxy()
        assert pair.client_side.reading  # the window opened: what waited went, reading resumes
        pair.client.data_received(b"a" * (size - 128 * 1024))
        total = received
        for _ in range(10):
            events = pair.to_server()
            for event in events:
                if isinstance(event, h2.events.DataReceived):
                    total += len(event.data or b"")
                    pair.server.acknowledge_received_data(event.flow_controlled_length or 0, stream_id)
            pair.to_proxy()
            if any(isinstance(e, h2.events.StreamEnded) for e in events):
                break
        assert total == size


def test_response_data_is_not_acknowledged_while_the_client_is_slow() -> None:
    with wired() as pair:
        pair.client.data_received(b"GET /down HTTP/1.1\r\nHost: a.example\r\n\r\n")
        stream_id = next(e.stream_id for e in pair.exchange() if isinstance(e, h2.events.RequestReceived))
        assert pair.server.local_flow_control_window(stream_id) == STREAM_WINDOW  # our SETTINGS
        pair.client.pause_writing()  # the client's socket is full
        respond(pair, stream_id, b"b" * 600_000, trailers=False)
        pair.to_server()
        assert pair.server.local_flow_control_window(stream_id) == STREAM_WINDOW - 600_000  # held
        pair.client.resume_writing()
        pair.to_server()
        assert pair.server.local_flow_control_window(stream_id) == STREAM_WINDOW  # given back


def test_a_reset_before_the_response_is_502_and_the_connection_stays() -> None:
    with wired() as pair:
        pair.client.data_received(b"GET /r HTTP/1.1\r\nHost: a.example\r\n\r\n")
        stream_id = next(e.stream_id for e in pair.exchange() if isinstance(e, h2.events.RequestReceived))
        pair.server.reset_stream(stream_id, ErrorCodes.INTERNAL_ERROR)
        pair.to_proxy()
        assert bytes(pair.client_side.data).startswith(b"HTTP/1.1 502 ")
        assert b"reset the stream (INTERNAL_ERROR)" in pair.client_side.data
        assert not pair.conn.closed and pair.conn.has_room()


def test_a_client_that_leaves_cancels_its_stream() -> None:
    with wired() as pair:
        pair.client.data_received(b"GET /gone HTTP/1.1\r\nHost: a.example\r\n\r\n")
        stream_id = next(e.stream_id for e in pair.exchange() if isinstance(e, h2.events.RequestReceived))
        pair.client.connection_lost(None)
        reset = [e for e in pair.to_server() if isinstance(e, h2.events.StreamReset)]
        assert [(e.stream_id, e.error_code) for e in reset] == [(stream_id, ErrorCodes.CANCEL)]
        assert pair.conn.reserved == 0


def test_a_connection_takes_no_more_streams_than_the_server_allows() -> None:
    with wired() as pair:
        pair.server.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 1})
        pair.to_proxy()
        pair.exchange()
        pool = pair.conn.pool
        first = pool.acquire()
        assert first is not None and first.conn is pair.conn
        assert pool.acquire() is None  # full: the next exchange connects anew (H2cPool.connect)
        pool.release(first)  # done with (never sent)
        second = pool.acquire()
        assert second is not None and second.conn is pair.conn


def test_slow_clients_hold_their_stream_windows_but_not_the_connections() -> None:
    """16 paused clients, each sent a full stream window: the connection still has room for a 17th."""
    with wired() as pair:
        entry = pair.client.entry
        streams = []
        for n in range(CONNECTION_WINDOW // STREAM_WINDOW):
            client = ClientConnection(entry)
            client.connection_made(Transport())
            client.data_received(b"GET /slow/%d HTTP/1.1\r\nHost: a.example\r\n\r\n" % n)
            client.pause_writing()  # its socket is full: its stream's window is held
            streams += [e.stream_id for e in pair.exchange() if isinstance(e, h2.events.RequestReceived)]
        for stream_id in streams:
            respond(pair, stream_id, b"s" * STREAM_WINDOW, trailers=False)
            pair.to_server()
        assert all(pair.server.local_flow_control_window(s) == 0 for s in streams)  # held, each
        assert pair.server.outbound_flow_control_window >= CONNECTION_WINDOW // 2  # given back


def test_a_graceful_goaway_keeps_the_connection_and_the_acks_queued_with_it() -> None:
    with wired() as pair:
        pair.client.data_received(b"GET /g HTTP/1.1\r\nHost: a.example\r\n\r\n")
        stream_id = next(e.stream_id for e in pair.exchange() if isinstance(e, h2.events.RequestReceived))
        pair.server.ping(b"12345678")
        goaway = GoAwayFrame(0)
        goaway.last_stream_id = stream_id
        pair.conn.data_received(pair.server.data_to_send() + goaway.serialize())
        assert any(isinstance(e, h2.events.PingAckReceived) for e in pair.to_server())  # not dropped
        respond(pair, stream_id, b"done")
        assert bytes(pair.client_side.data).startswith(b"HTTP/1.1 200 ")
        assert pair.conn.retiring and pair.conn.closed  # no new streams; closed after the last


def test_a_goaway_after_our_own_close_does_not_reopen_the_connection() -> None:
    with wired() as pair:
        pair.conn.state.close_connection()
        goaway = GoAwayFrame(0)
        goaway.last_stream_id = 0
        pair.conn.state.receive_data(goaway.serialize())
        assert pair.conn.state.state_machine.state == ConnectionState.CLOSED


def test_the_parts_of_h2_passerelle_reaches_into_are_there() -> None:
    """_ClientState overrides and uses h2 internals: an h2 upgrade that moves them fails here."""
    assert callable(vars(H2Connection).get("_receive_goaway_frame"))
    assert callable(vars(H2Connection).get("_prepare_for_sending"))
    state = H2Connection(H2Configuration(client_side=True))
    assert isinstance(state._data_to_send, bytearray)
    assert callable(state._inbound_flow_control_window_manager.process_bytes)


def test_a_stream_refused_for_too_many_streams_goes_on_another_connection() -> None:
    with wired() as pair:
        pair.server.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 1})
        pair.server.data_to_send()  # the server's SETTINGS are lost in transit: h2 still guesses
        pair.conn.state.remote_settings.update({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 1})
        pair.conn.state.remote_settings.acknowledge()
        pair.conn.settled = False  # passerelle's own guess (FIRST_STREAMS) still holds
        first = ClientConnection(pair.client.entry)
        first.connection_made(Transport())
        first.data_received(b"GET /one HTTP/1.1\r\nHost: a.example\r\n\r\n")
        pair.client.data_received(b"GET /two HTTP/1.1\r\nHost: a.example\r\n\r\n")
        loop = pair.conn.loop
        loop.run_until_complete(asyncio.sleep(0))  # the refused stream's retry is scheduled
        assert not pair.client_side.data.startswith(b"HTTP/1.1 502")
        assert pair.conn.settled  # has_room now goes by the server's limit
        assert pair.conn.reserved == 1
