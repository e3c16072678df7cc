"""Cleartext HTTP/2 (h2c) to upstream servers, for Services that ask for it (gRPC backends).

An `H2cPool` holds a server's HTTP/2 connections: usually one, every exchange a stream on it;
another opens when the server's MAX_CONCURRENT_STREAMS are taken or once it has sent GOAWAY. To
the side that owns an exchange (connection.ClientConnection, h2.Stream) an `H2cStream`
(h2cstream.py) *is* an UpstreamConnection: the same attributes and callbacks, and a transport that takes the HTTP/1.1
request they write — the head passerelle built, which http/h2c.py turns into fields, and the body
in passerelle's own framing. So the HTTP/1.1 path has no branch for h2c and pays nothing for it.
The response comes back through the same `upstream_*` calls; trailers through `upstream_trailers`.

Flow control, both ways. Request DATA goes as far as the upstream's windows allow; past 64 KiB
waiting, the owner is paused (`pause_for_upstream`) as by a full socket buffer. Response DATA is
acknowledged (WINDOW_UPDATE) at connection level on receipt, and at stream level once handed to
the owner, except while the owner has paused reading (its client is slow): then that stream can
have no more than a stream window in flight, and the others are not held up.

Errors as on HTTP/1.1: connect refused or timed out 502, no response head within
`response_header_timeout` 504, RST_STREAM or a lost connection 502 (a cut response once it has
started), a server that does not answer in HTTP/2 502 saying so. Streams the server did not
process (REFUSED_STREAM, after the last stream a GOAWAY names, or never sent) are retried once
whatever the method, their body kept up to 64 KiB (RFC 9113 §8.7); those cut by a connection
that closed without GOAWAY only as a stale pooled HTTP/1.1 connection's are (idempotent, no body).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from h2.config import H2Configuration
from h2.connection import ConnectionState
from h2.connection import H2Connection as H2State
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    InformationalResponseReceived,
    RemoteSettingsChanged,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from h2.exceptions import H2Error, ProtocolError
from h2.settings import SettingCodes, Settings
from hyperframe.frame import Frame, GoAwayFrame, WindowUpdateFrame

from passerelle.model import Server
from passerelle.proxy.deadlines import Deadlines
from passerelle.proxy.h2cstream import H2cStream
from passerelle.proxy.options import ForwardingOptions
from passerelle.proxy.upstream import Pool, UpstreamConnection

STREAM_WINDOW = 1024 * 1024  # what the server may send a stream before we acknowledge (Go's 4 MiB is more)
CONNECTION_WINDOW = 16 * STREAM_WINDOW  # so that one slow client's stream does not stall the others
FIRST_STREAMS = 100  # streams opened before the server's SETTINGS say how many it takes (Go's guess)
_CONFIG = H2Configuration(client_side=True, header_encoding=None)


def _retrieved(task: asyncio.Task[H2cConnection]) -> None:
    """A connect that failed after every exchange waiting for it went: nothing to log."""
    if not task.cancelled():
        task.exception()


class _ClientState(H2State):
    """h2's client state machine, with two changes that reach into its private parts (h2 is
    pinned to the tested range in pyproject.toml; tests/unit/proxy/test_h2c.py checks they exist).

    A graceful GOAWAY leaves the connection open. RFC 9113 §6.8: streams up to the GOAWAY's
    last_stream_id may still complete; that is how a server shuts down gracefully (gRPC servers
    do on every pod termination). The library takes any received GOAWAY as the end of the
    connection, refuses the frames that follow it, even in the same read, and drops what it had
    queued to send (a SETTINGS or PING ACK among them). After a NO_ERROR GOAWAY on an open
    connection, the state is put back to open and the queued bytes are kept. H2cConnection opens
    no new stream on it (`retiring`).

    Received DATA is acknowledged in two halves: the connection's window at once, the stream's
    when its owner reads (h2's acknowledge_received_data does both together).
    """

    def _receive_goaway_frame(self, frame: GoAwayFrame) -> tuple[list[Frame], list[Event]]:
        was = self.state_machine.state
        queued = bytes(self._data_to_send)
        frames, events = super()._receive_goaway_frame(frame)
        if frame.error_code == ErrorCodes.NO_ERROR and was == ConnectionState.CLIENT_OPEN:
            self.state_machine.state = ConnectionState.CLIENT_OPEN
            self._data_to_send = bytearray(queued) + self._data_to_send
        return frames, events

    def acknowledge_connection_data(self, size: int) -> None:
        increment = self._inbound_flow_control_window_manager.process_bytes(size)
        if increment:
            update = WindowUpdateFrame(0)
            update.window_increment = increment
            self._prepare_for_sending([update])

    def acknowledge_stream_data(self, size: int, stream_id: int) -> None:
        stream = self.streams.get(stream_id)
        if stream is not None and stream.open:
            self._prepare_for_sending(stream.acknowledge_received_data(size))


class H2cPool(Pool):
    """A server's h2c connections. `acquire` and `connect` give a new H2cStream on one of them."""

    __slots__ = ("conns", "_opening", "authority")
    scheme = "h2c"

    def __init__(
        self,
        server: Server,
        loop: asyncio.AbstractEventLoop,
        options: ForwardingOptions,
        deadlines: Deadlines,
    ) -> None:
        super().__init__(server, loop, options, deadlines)
        self.conns: list[H2cConnection] = []
        self._opening: asyncio.Task[H2cConnection] | None = None  # one connect at a time, shared
        host = f"[{server.host}]" if ":" in server.host else server.host
        self.authority = f"{host}:{server.port}".encode()  # :authority of a request without Host

    def acquire(self) -> H2cStream | None:
        for conn in self.conns:
            if conn.has_room():
                return H2cStream(conn)
        return None

    async def connect(self) -> H2cStream:
        while True:
            opening = self._opening
            if opening is None:
                opening = self._opening = self.loop.create_task(self._open())
                opening.add_done_callback(_retrieved)
            # shield: an exchange that gives up (its client left) must not cancel the others' connect
            conn = await asyncio.shield(opening)
            if conn.has_room():
                return H2cStream(conn)

    async def _open(self) -> H2cConnection:
        try:
            async with asyncio.timeout(self._options.dial_timeout):
                _, conn = await self.loop.create_connection(
                    lambda: H2cConnection(self, self._options, self._deadlines),
                    self.server.host,
                    self.server.port,
                )
        finally:
            self._opening = None
        if not self.closed:
            self.conns.append(conn)
        # else: an exchange routed before a reload still gets its stream; the connection closes
        # after its last one (stream_closed), or at once if that exchange went (on_deadline)
        return conn

    def release(self, conn: UpstreamConnection) -> None:
        """The exchange is over (its response complete): the stream is done with."""
        if isinstance(conn, H2cStream):
            conn.finish()

    def forgotten(self, conn: H2cConnection) -> None:
        if conn in self.conns:
            self.conns.remove(conn)

    def close(self) -> None:
        """No new streams; connections close once their streams are done (make before break)."""
        self.closed = True
        for conn in list(self.conns):
            conn.retire()
        self.conns.clear()


class H2cConnection(asyncio.Protocol):
    """One h2c connection: the h2 state machine (client side) and the streams on it."""

    __slots__ = (
        "pool", "loop", "transport", "state", "streams", "reserved", "settled", "carried", "retiring", "refusing",
        "closed",
        "deadline", "write_paused", "touched", "options", "deadlines", "_handlers",
    )  # fmt: skip

    def __init__(self, pool: H2cPool, options: ForwardingOptions, deadlines: Deadlines) -> None:
        self.pool = pool
        self.loop = pool.loop
        self.options = options
        self.deadlines = deadlines
        self.state = _ClientState(config=_CONFIG)
        # Set before initiate_connection, which sends them: a later update() would only be
        # pending (sent on update_settings), and the windows of both sides would disagree.
        self.state.local_settings = Settings(
            client=True,
            initial_values={SettingCodes.ENABLE_PUSH: 0, SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW},
        )
        self.streams: dict[int, H2cStream] = {}  # by stream id, once their HEADERS went
        self.reserved = 0  # H2cStreams handed out and not finished, sent or not yet
        self.settled = False  # the server's SETTINGS came: it speaks HTTP/2
        self.carried = 0  # responses completed on it
        self.retiring = False  # no new streams: the pool closed, or the server sent GOAWAY
        self.refusing = False  # the server sent GOAWAY: it will not process a stream sent now
        self.closed = False
        self.deadline = 0.0
        self.write_paused = False
        self.touched: list[H2cStream] = []  # streams whose owner has output from the current read
        self._handlers: dict[type[Event], Callable[[Any], None]] = {
            ResponseReceived: self._on_response,
            InformationalResponseReceived: self._on_interim,
            DataReceived: self._on_data,
            TrailersReceived: self._on_trailers,
            StreamEnded: self._on_ended,
            StreamReset: self._on_reset,
            WindowUpdated: self._on_window,
            RemoteSettingsChanged: self._on_settings,
            ConnectionTerminated: self._on_goaway,
        }

    def full(self) -> None:
        """h2 refused a stream (TooManyStreamsError): the server allows fewer than were guessed."""
        self.settled = True  # has_room goes by the server's limit, which h2 has by now

    def compressor_broken(self) -> None:
        """h2 refused a header block it may have half-encoded: no more HEADERS on this connection."""
        self.retiring = self.refusing = True
        self.pool.forgotten(self)
        self.stream_closed()

    def has_room(self) -> bool:
        if self.retiring or self.closed:
            return False
        limit = self.state.remote_settings.max_concurrent_streams if self.settled else FIRST_STREAMS
        return self.reserved < limit

    # -- asyncio callbacks -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.state.initiate_connection()
        self.state.increment_flow_control_window(CONNECTION_WINDOW - 65535)  # starts at 65535
        self.flush()
        self.deadline = self.loop.time() + self.options.idle_conn_timeout
        self.deadlines.add(self)

    def data_received(self, data: bytes) -> None:
        try:
            events = self.state.receive_data(data)
        except ProtocolError as e:
            self._broken(self._why(f"broke HTTP/2 ({e})"))
            return
        handlers = self._handlers
        for event in events:
            handler = handlers.get(type(event))
            if handler is not None:
                handler(event)
        self.flush()
        touched, self.touched = self.touched, []
        for stream in touched:
            if stream.client is not None:
                stream.client.flush()  # what this read produced for each client, in one write

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.deadlines.discard(self)
        self.pool.forgotten(self)
        why = "closed the connection" if exc is None else f"connection failed: {exc}"
        if self.carried:
            # A connection that has carried exchanges, closed without GOAWAY: as for a stale pooled
            # HTTP/1.1 connection, streams not answered yet may not have been processed either.
            for stream in list(self.streams.values()):
                if stream.exchange is not None and not stream.exchange.response_started:
                    stream.unprocessed(certain=False)
        self._fail_streams(self._why(why))

    def pause_writing(self) -> None:
        self.write_paused = True
        for stream in list(self.streams.values()):
            stream.pace()

    def resume_writing(self) -> None:
        self.write_paused = False
        for stream in list(self.streams.values()):
            stream.pace()

    def on_deadline(self) -> None:
        if not self.reserved:
            self.close()  # idle for idle_conn_timeout

    # -- h2 events ---------------------------------------------------------------------------
    def _on_response(self, event: ResponseReceived) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is not None:
            stream.response(event.headers or [], ended=event.stream_ended is not None)

    def _on_interim(self, event: InformationalResponseReceived) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is not None:
            stream.interim(event.headers or [])

    def _on_data(self, event: DataReceived) -> None:
        stream = self.streams.get(event.stream_id)
        size = event.flow_controlled_length or 0
        if stream is None:
            if size:
                self.state.acknowledge_received_data(size, event.stream_id)
            return
        stream.body(event.data or b"", size)

    def _on_trailers(self, event: TrailersReceived) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is not None:
            stream.trailers(event.headers or [])

    def _on_ended(self, event: StreamEnded) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is not None:
            stream.ended()

    def _on_reset(self, event: StreamReset) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is not None:
            stream.reset_by_server(event.error_code)

    def _on_window(self, event: WindowUpdated) -> None:
        if event.stream_id:
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.push()
        else:
            for stream in list(self.streams.values()):
                stream.push()

    def _on_settings(self, event: RemoteSettingsChanged) -> None:
        self.settled = True
        if SettingCodes.INITIAL_WINDOW_SIZE in event.changed_settings:
            for stream in list(self.streams.values()):
                stream.push()

    def _on_goaway(self, event: ConnectionTerminated) -> None:
        """The server's GOAWAY: streams after `last_stream_id` were not processed; no new ones."""
        self.retiring = self.refusing = True
        self.pool.forgotten(self)
        last = event.last_stream_id if event.last_stream_id is not None else 0
        for stream_id, stream in list(self.streams.items()):
            if stream_id > last:
                stream.unprocessed(certain=True)
        if event.error_code != ErrorCodes.NO_ERROR:
            self._fail_streams(f"upstream {self.pool.server} ended the connection ({event.error_code!r})")
            self.close()
            return
        self.stream_closed()  # the others finish first (_ClientState)

    # -- used by streams and the pool --------------------------------------------------------
    def flush(self) -> None:
        data = self.state.data_to_send()
        if data and not self.closed:
            self.transport.write(data)

    def stream_closed(self) -> None:
        if self.reserved:
            return
        if self.retiring or self.pool.closed:
            self.close()
        else:
            self.deadline = self.loop.time() + self.options.idle_conn_timeout

    def retire(self) -> None:
        """No new streams; close once the last one is done."""
        self.retiring = True
        self.stream_closed()

    def close(self) -> None:
        if self.closed:
            return
        try:
            self.state.close_connection()
        except H2Error:
            pass  # the state machine is closed already (a protocol error, or the server's GOAWAY)
        self.flush()
        self.closed = True
        self.transport.close()

    def _why(self, detail: str) -> str:
        if not self.settled:  # nothing HTTP/2 came back: most likely an HTTP/1.1 server
            return f"upstream {self.pool.server} does not speak HTTP/2 (h2c): {detail}"
        return f"upstream {self.pool.server} {detail}"

    def _broken(self, detail: str) -> None:
        self._fail_streams(detail)
        self.closed = True
        self.transport.abort()

    def _fail_streams(self, detail: str) -> None:
        for stream in list(self.streams.values()):
            stream.failed(detail)
        self.streams.clear()
