"""HTTP/2 client connections (ALPN `h2` on TLS entry points), each stream an HTTP/1.1 exchange.

`ClientConnection.connection_made` hands a TLS connection whose handshake selected `h2` to the entry
point, which makes an `H2Connection` the transport's protocol (`transport.set_protocol`): from then
on the h2 library's state machine (sans-IO) turns bytes into events here, and its `data_to_send()` is
written once per read. Each request stream becomes a `Stream`: its fields become an HTTP/1.1 head
(http/h2fields.py), it is routed as on HTTP/1.1, and it takes a pooled `UpstreamConnection`, which
calls the stream back (`upstream_head`, `upstream_body`, ...) exactly as it calls a ClientConnection;
`Exchange.plain` is False, so responses always come through those callbacks. For an h2c Service
(h2c.py) the upstream is an H2cStream, whose trailers are sent with END_STREAM after the body.

Flow control, both ways. Request DATA is acknowledged to the client (WINDOW_UPDATE) only once it is
written to the upstream and the upstream's write buffer is below its high-water mark: the client
can never have more than a window (1 MiB, Go's default) of a stream's body in our buffers. Response
bytes are sent as far as the stream's and the connection's send windows allow; the rest waits in
the stream and the upstream socket stops being read until a WINDOW_UPDATE drains it, as it does
while the client socket's own write buffer is full. A client RST_STREAM cancels the exchange; its
upstream connection is closed, not pooled (it is mid-response). Draining sends GOAWAY naming the
last stream accepted, lets those streams finish and refuses later ones.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from time import perf_counter
from typing import TYPE_CHECKING

from h2.config import H2Configuration
from h2.connection import H2Connection as H2State
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    RemoteSettingsChanged,
    RequestReceived,
    StreamEnded,
    StreamReset,
    WindowUpdated,
)
from h2.exceptions import ProtocolError, StreamClosedError, StreamIDTooLowError
from h2.settings import SettingCodes, Settings
from hyperframe.frame import GoAwayFrame

from passerelle.http.errors import canned
from passerelle.http.h2fields import Refused, local_answer, request_head, response_head
from passerelle.proxy.connection import Exchange, request_parts
from passerelle.proxy.dispatch import TlsPeer, connect_failure, connect_retry, dispatch, replays_stale
from passerelle.proxy.upstream import Pool, UpstreamConnection

if TYPE_CHECKING:
    from passerelle.proxy.dataplane import EntryPoint

_CRLF = b"\r\n"
_LAST_CHUNK = b"0\r\n\r\n"
WINDOW = 1024 * 1024  # per stream and per connection, as Go's http2 server (MaxUploadBufferPer*)
MAX_STREAMS = 250  # concurrent streams a client may open (Go's default)
RESET_BUDGET = 100  # cancelled streams a connection may have before more than half cancelled closes it
_CONFIG = H2Configuration(client_side=False, header_encoding=None)


class Stream:
    """One request stream and its exchange: what an UpstreamConnection calls back.

    `transport` is the client connection's, as upstream.ExchangeOwner asks; upstream.py writes to
    it only on the short way for `Exchange.plain` exchanges, which a stream never is.
    """

    __slots__ = (
        "conn", "id", "exchange", "transport", "unacked", "upstream_full", "pending", "ending", "end_sent",
        "close_delimited", "trailers",
    )  # fmt: skip

    def __init__(self, conn: H2Connection, stream_id: int, exchange: Exchange) -> None:
        self.conn = conn
        self.id = stream_id
        self.exchange = exchange
        self.transport = conn.transport
        self.unacked = 0  # request DATA bytes received, not yet acknowledged to the client
        self.upstream_full = False  # the upstream's write buffer is over its high-water mark
        self.pending: deque[memoryview] = deque()  # response bytes waiting for send window
        self.ending = False  # END_STREAM goes once `pending` is sent
        self.end_sent = False  # END_STREAM went with the HEADERS frame
        self.close_delimited = False  # the upstream's body ends when it closes the connection
        self.trailers: list[tuple[bytes, bytes]] | None = None  # an h2c upstream's, sent at the end

    # -- request side ------------------------------------------------------------------------
    def start(self) -> None:
        ex = self.exchange
        route = ex.route
        pool = None if ex.local is not None or route is None else route.upstream.pools.pick()
        if pool is None:
            if ex.local is None:
                assert route is not None
                ex.local = canned(503, route.upstream.unavailable, head=ex.method == b"HEAD")
            self.answer(ex.local)
            return
        ex.pool = pool
        upstream = pool.acquire()
        if upstream is not None:
            self._send(upstream)
        else:
            ex.connecting = self.conn.loop.create_task(self._connect(pool))

    async def _connect(self, pool: Pool) -> None:
        ex = self.exchange
        try:
            upstream = await pool.connect()
        except (OSError, TimeoutError) as e:
            ex.connecting = None
            if self.conn.streams.get(self.id) is not self:
                return
            retry = connect_retry(ex, pool, self.conn.entry.observer)
            if retry is not None:
                ex.connecting = self.conn.loop.create_task(self._connect(retry))
                return
            self._fail(502, connect_failure(pool, e))
            self.conn.flush()
            return
        ex.connecting = None
        if self.conn.streams.get(self.id) is not self:
            pool.release(upstream)  # reset meanwhile
            return
        self._send(upstream)
        self.conn.flush()

    def _send(self, upstream: UpstreamConnection) -> None:
        ex = self.exchange
        ex.upstream = upstream
        upstream.attach(self, ex)
        upstream.transport.writelines(request_parts(ex))  # may call pause_for_upstream
        if not self.upstream_full:
            self._acknowledge()

    def data(self, data: bytes, flow_controlled: int) -> None:
        """Request body bytes (`flow_controlled` counts padding too)."""
        ex = self.exchange
        ex.received += len(data)
        if ex.local is not None:
            self.conn.state.acknowledge_received_data(flow_controlled, self.id)  # not read: discarded
            return
        self.unacked += flow_controlled
        if not data:
            pass
        elif ex.upstream is None:
            ex.body.append(data)  # until connected: bounded by the window we have not reopened
        else:
            ex.body_sent = True
            if ex.chunked:
                ex.upstream.transport.writelines((b"%x\r\n" % len(data), data, _CRLF))
            else:
                ex.upstream.transport.write(data)
        if ex.upstream is not None and not self.upstream_full:
            self._acknowledge()

    def ended(self) -> None:
        """The client's END_STREAM: the request is complete."""
        ex = self.exchange
        ex.request_done = True
        if ex.upstream is not None and ex.chunked:
            ex.upstream.transport.write(_LAST_CHUNK)

    def _acknowledge(self) -> None:
        if self.unacked:
            self.conn.state.acknowledge_received_data(self.unacked, self.id)
            self.unacked = 0

    def reset(self) -> None:
        """The client reset the stream (or the connection went): the exchange is abandoned."""
        ex = self.exchange
        if ex.connecting is not None:
            ex.connecting.cancel()
            ex.connecting = None
        upstream = ex.upstream
        if upstream is not None:
            ex.upstream = None
            upstream.detach()
            upstream.transport.abort()  # mid-exchange: out of sync, never pooled

    # -- response side -----------------------------------------------------------------------
    def answer(self, response: bytes) -> None:
        """A response passerelle writes itself (404, 503, redirects, errors)."""
        fields, body = local_answer(response)
        ex = self.exchange
        ex.response_started = True
        state = self.conn.state
        self.end_sent = not body
        state.send_headers(self.id, fields, end_stream=self.end_sent)
        if body:
            self._queue(memoryview(body))
        self._end()

    def _queue(self, data: memoryview) -> None:
        if self.pending:
            self.pending.append(data)
        else:
            self._push(data)

    def _push(self, data: memoryview) -> None:
        """Send what the windows allow of `data`; keep the rest, first in line."""
        state = self.conn.state
        while data:
            size = min(state.local_flow_control_window(self.id), state.max_outbound_frame_size, len(data))
            if size <= 0:
                self.pending.appendleft(data)
                return
            state.send_data(self.id, data[:size])
            data = data[size:]

    def window_opened(self) -> None:
        """A WINDOW_UPDATE or SETTINGS from the client may let pending bytes go."""
        pending = self.pending
        while pending:
            self._push(pending.popleft())
            if pending and self.conn.state.local_flow_control_window(self.id) <= 0:
                break
        if not pending and self.ending:
            self._end()
        self.reading()

    def reading(self) -> None:
        """Read from the upstream unless the stream's bytes wait for window or the client socket."""
        upstream = self.exchange.upstream
        if upstream is None:
            return
        paused = bool(self.pending) or self.conn.write_paused
        if paused != upstream.read_paused:
            upstream.read_paused = paused
            if paused:
                upstream.transport.pause_reading()
            else:
                upstream.transport.resume_reading()

    def _end(self) -> None:
        """END_STREAM once the pending bytes are out; then the stream is done with."""
        if self.pending:
            self.ending = True
            return
        self.ending = False
        conn = self.conn
        if conn.streams.pop(self.id, None) is None:
            return
        conn.observe(self)
        state = conn.state
        if not self.end_sent:
            try:
                if self.trailers:
                    state.send_headers(self.id, self.trailers, end_stream=True)
                else:
                    state.end_stream(self.id)
            except (StreamClosedError, StreamIDTooLowError):
                pass  # reset by the client later in the read being handled
        if not self.exchange.request_done:
            # RFC 9113 §8.1: a complete response before the whole request; stop the client sending
            conn.reset(self.id, ErrorCodes.NO_ERROR)
        if self.unacked:
            state.acknowledge_received_data(self.unacked, self.id)  # the connection window
            self.unacked = 0
        conn.stream_closed()

    def _fail(self, status: int, detail: str) -> None:
        ex = self.exchange
        if ex.response_started:
            self._abort(ErrorCodes.INTERNAL_ERROR)  # too late for a status: the client sees a reset
            return
        ex.local = canned(status, detail, head=ex.method == b"HEAD")
        self.answer(ex.local)

    def _abort(self, code: ErrorCodes) -> None:
        conn = self.conn
        if conn.streams.pop(self.id, None) is None:
            return
        conn.observe(self)
        self.reset()
        self.pending.clear()
        conn.reset(self.id, code)
        if self.unacked:
            conn.state.acknowledge_received_data(self.unacked, self.id)
            self.unacked = 0
        conn.stream_closed()

    # -- upstream.ExchangeOwner: events from the upstream connection --------------------------
    def upstream_head(
        self, conn: UpstreamConnection, status: int, headers: list[tuple[bytes, bytes]]
    ) -> None:
        ex = self.exchange
        ex.status = status
        ex.sent = 0
        if status == 101:
            return  # upstream_upgraded follows, and refuses it
        head = response_head(status, headers, head_request=ex.method == b"HEAD")
        if status < 200:
            self.conn.state.send_headers(self.id, head.fields)  # interim (100, 103): passed on
            return
        ex.response_started = True
        self.end_sent = ended = head.ended or conn.ends_with_head
        self.close_delimited = head.close_delimited
        self.conn.state.send_headers(self.id, head.fields, end_stream=ended)

    def upstream_body(self, body: bytes) -> None:
        self.exchange.sent += len(body)
        if self.conn.streams.get(self.id) is self:
            self._queue(memoryview(body))
            if self.pending:
                self.reading()

    def upstream_trailers(self, conn: UpstreamConnection, trailers: list[tuple[bytes, bytes]]) -> None:
        self.trailers = trailers  # sent with END_STREAM once the body has gone (`_end`)

    def flush(self) -> None:
        self.conn.flush()

    def upstream_done(self, conn: UpstreamConnection, *, keep_alive: bool) -> None:
        ex = self.exchange
        ex.upstream = None
        conn.detach()
        if keep_alive and ex.request_done:
            conn.pool.release(conn)
        else:
            conn.transport.close()
        self._end()
        self.conn.flush()

    def upstream_failed(self, conn: UpstreamConnection, status: int, detail: str) -> None:
        self.exchange.upstream = None
        conn.detach()
        conn.transport.abort()
        self._fail(status, detail)
        self.conn.flush()

    def upstream_lost(self, conn: UpstreamConnection) -> None:
        """The upstream closed the connection mid-exchange."""
        ex = self.exchange
        stale = conn.reused  # read before detach(), which marks the connection as reused
        ex.upstream = None
        conn.detach()
        if ex.response_started:
            if self.close_delimited:
                self._end()  # a close-delimited body ends here (RFC 9112 §6.3 item 8)
            else:
                self._abort(ErrorCodes.INTERNAL_ERROR)  # truncated: the client must see it as such
        elif replays_stale(ex, conn, stale, self.conn.entry.observer):
            assert ex.pool is not None
            ex.connecting = self.conn.loop.create_task(self._connect(ex.pool))
        else:
            self._fail(502, f"upstream {conn.pool.server} closed the connection before answering")
        self.conn.flush()

    def upstream_upgraded(self, conn: UpstreamConnection, rest: bytes) -> None:
        self.upstream_failed(conn, 502, f"upstream {conn.pool.server} switched protocols on an HTTP/2 stream")

    def pause_for_upstream(self) -> None:
        self.upstream_full = True

    def resume_for_upstream(self) -> None:
        self.upstream_full = False
        if self.conn.streams.get(self.id) is self:
            self._acknowledge()
            self.conn.flush()


class H2Connection(asyncio.Protocol):
    """An HTTP/2 client connection: the h2 state machine, its streams, and the socket's pacing."""

    protocol = "HTTP/2.0"  # for the access log

    __slots__ = (
        "entry", "loop", "transport", "state", "streams", "deadline", "peer", "write_paused", "client",
        "_forwarded", "_closed", "_last_accepted", "_draining", "_handlers", "_accepted", "_cancelled",
    )  # fmt: skip

    def __init__(self, entry: EntryPoint, forwarded: bytes, peer: TlsPeer | None) -> None:
        self.entry = entry
        self.loop = entry.loop
        self._forwarded = forwarded  # X-Forwarded-For, X-Real-Ip, X-Forwarded-Proto lines
        self.peer = peer  # the handshake's context and client certificate (proxy/dispatch.py)
        self.state = H2State(config=_CONFIG)
        self.state.local_settings = Settings(
            client=False,
            initial_values={
                SettingCodes.MAX_CONCURRENT_STREAMS: MAX_STREAMS,
                SettingCodes.INITIAL_WINDOW_SIZE: WINDOW,
                SettingCodes.MAX_HEADER_LIST_SIZE: 65536,  # what the library's HPACK decoder enforces
            },
        )
        self.streams: dict[int, Stream] = {}
        self.deadline = 0.0
        self.write_paused = False
        self._closed = False
        self._last_accepted = 0
        self._accepted = 0  # streams taken on
        self._cancelled = 0  # of them, reset by the client before their response was complete
        self._draining = False
        self._handlers: dict[type[Event], Callable[[Event], None]] = {
            RequestReceived: self._on_request,  # type: ignore[dict-item]
            DataReceived: self._on_data,  # type: ignore[dict-item]
            StreamEnded: self._on_stream_ended,  # type: ignore[dict-item]
            StreamReset: self._on_stream_reset,  # type: ignore[dict-item]
            WindowUpdated: self._on_window_updated,  # type: ignore[dict-item]
            RemoteSettingsChanged: self._on_settings,  # type: ignore[dict-item]
            ConnectionTerminated: self._on_terminated,  # type: ignore[dict-item]
        }

    # -- asyncio callbacks ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.client = transport.get_extra_info("peername")  # for the access log
        self.state.initiate_connection()
        self.state.increment_flow_control_window(WINDOW - 65535)  # the connection's starts at 65535
        self.deadline = self.loop.time() + self.entry.options.header_timeout
        self.entry.connection_opened(self)
        self.flush()

    def data_received(self, data: bytes) -> None:
        try:
            events = self.state.receive_data(data)
        except ProtocolError:
            self.flush()  # the library has queued its GOAWAY
            self._abandon()
            return
        handlers = self._handlers
        for event in events:
            handler = handlers.get(type(event))
            if handler is not None:
                try:
                    handler(event)
                except (StreamClosedError, StreamIDTooLowError):
                    # The library has applied the whole read: a stream the client reset further on
                    # in it refuses frames now (TooLow: it is forgotten already, so sending would
                    # open it anew); its StreamReset event follows and cleans up.
                    pass
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.entry.connection_closed(self)
        self._abandon()

    def _abandon(self) -> None:
        """Close now: the state machine takes no more frames, so every exchange is cut off."""
        self._closed = True
        streams, self.streams = self.streams, {}
        for stream in streams.values():
            self.observe(stream)
            stream.reset()
        self.transport.close()

    def pause_writing(self) -> None:
        self.write_paused = True
        for stream in self.streams.values():
            stream.reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        for stream in list(self.streams.values()):
            stream.reading()

    def on_deadline(self) -> None:
        if not self.streams:  # idle for idle_timeout, or no request within header_timeout
            self.state.close_connection(last_stream_id=self._last_accepted)
            self.flush()
            self.transport.close()

    # -- h2 events -------------------------------------------------------------------------------
    def _on_request(self, event: RequestReceived) -> None:
        stream_id = event.stream_id
        if self._draining:
            self.reset(stream_id, ErrorCodes.REFUSED_STREAM)  # after our GOAWAY: retry elsewhere
            return
        self._last_accepted = stream_id
        self._accepted += 1
        self.deadline = 0.0
        options = self.entry.options
        ended = event.stream_ended is not None
        try:
            request = request_head(
                event.headers or [],  # bytes, as header_encoding is None
                ended=ended,
                forwarded=self._forwarded,
                default_port=self.entry.default_port,
                max_request_line=options.max_request_line,
                max_header_bytes=options.max_header_bytes,
                request_ids=self.entry.request_ids,
            )
        except Refused as refused:
            method = next((v for n, v in event.headers or () if n == b":method"), b"")
            path = next((v for n, v in event.headers or () if n == b":path"), b"")
            ex = Exchange(method, b"", None, True, True, b"", path)
            ex.start = perf_counter()
            ex.request_done = ended
            ex.local = canned(refused.status, refused.detail, head=method == b"HEAD")
            stream = self.streams[stream_id] = Stream(self, stream_id, ex)
            stream.answer(ex.local)
            return
        method, target, host = request.method, request.target, request.host
        route, head, local = dispatch(self.entry, self.peer, method, target, host, request.head)
        ex = Exchange(method, head, route, True, True, host, target)
        if self.entry.observer is not None:
            ex.start = perf_counter()
        ex.chunked = request.chunked
        ex.request_done = ended
        ex.local = local
        stream = self.streams[stream_id] = Stream(self, stream_id, ex)
        stream.start()

    def _on_data(self, event: DataReceived) -> None:
        stream = self.streams.get(event.stream_id)
        size = event.flow_controlled_length or 0
        if stream is None:  # answered already: what it still sends is dropped
            if size:
                self.state.acknowledge_received_data(size, event.stream_id)
            return
        stream.data(event.data or b"", size)

    def _on_stream_ended(self, event: StreamEnded) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is not None:
            stream.ended()

    def _on_stream_reset(self, event: StreamReset) -> None:
        stream = self.streams.pop(event.stream_id, None)
        if stream is not None:
            self.observe(stream)
            stream.reset()
            if stream.unacked:
                self.state.acknowledge_received_data(stream.unacked, stream.id)
            self._cancelled += 1
            if self._cancelled > RESET_BUDGET and self._cancelled * 2 > self._accepted:
                # "Rapid reset" (CVE-2023-44487): each stream costs an upstream request, and each
                # cancelled one an upstream connection; no browser cancels most of what it asks.
                self.state.close_connection(ErrorCodes.ENHANCE_YOUR_CALM, last_stream_id=self._last_accepted)
                self.flush()
                self._abandon()
                return
            self.stream_closed()

    def _on_window_updated(self, event: WindowUpdated) -> None:
        if event.stream_id:
            stream = self.streams.get(event.stream_id)
            if stream is not None and stream.pending:
                stream.window_opened()
        else:
            self._window_opened()

    def _on_settings(self, event: RemoteSettingsChanged) -> None:
        if SettingCodes.INITIAL_WINDOW_SIZE in event.changed_settings:
            self._window_opened()

    def _on_terminated(self, event: ConnectionTerminated) -> None:
        self._abandon()  # the client's GOAWAY: the library sends and accepts nothing more

    # -- used by streams and the data plane ------------------------------------------------------
    def _window_opened(self) -> None:
        for stream in list(self.streams.values()):
            if stream.pending:
                stream.window_opened()

    def reset(self, stream_id: int, code: ErrorCodes) -> None:
        """RST_STREAM, unless the stream has closed already: the client's END_STREAM can be in the
        very read whose events are being handled (the library has applied the whole read)."""
        try:
            self.state.reset_stream(stream_id, code)
        except (StreamClosedError, StreamIDTooLowError):
            pass

    def observe(self, stream: Stream) -> None:
        """A stream is over (answered, failed or reset): metrics and the access log hear of it."""
        observer = self.entry.observer
        if observer is not None:
            observer.exchange(stream.exchange, self)

    def flush(self) -> None:
        """Write what the state machine has queued, in one write."""
        data = self.state.data_to_send()
        if data and not self._closed:
            self.transport.write(data)

    def stream_closed(self) -> None:
        if not self.streams:
            if self._draining:
                self.state.close_connection(last_stream_id=self._last_accepted)
                self.flush()
                self.transport.close()
            else:
                self.deadline = self.loop.time() + self.entry.options.idle_timeout

    def drain(self) -> None:
        """GOAWAY naming the last stream accepted: those finish, later ones are refused."""
        if self._draining or self._closed:
            return
        self._draining = True
        self.flush()
        goaway = GoAwayFrame(0)
        goaway.last_stream_id = self._last_accepted
        self.transport.write(goaway.serialize())
        self.stream_closed()

    @property
    def busy(self) -> bool:
        return bool(self.streams)
