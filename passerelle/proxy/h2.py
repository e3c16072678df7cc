"""HTTP/2 client connections (ALPN `h2` on TLS entry points), each stream an HTTP/1.1 exchange.

`ClientConnection.connection_made` hands a TLS connection whose handshake selected `h2` to the entry
point, which makes an `H2Connection` the transport's protocol (`transport.set_protocol`): from then
on the h2 library's state machine (sans-IO) turns bytes into events here, and its `data_to_send()` is
written once per read. Each request stream becomes a `Stream`: its fields become an HTTP/1.1 head
(http/h2fields.py), it is routed as on HTTP/1.1, and it takes a pooled `UpstreamConnection`, which
calls the stream back (`upstream_head`, `upstream_body`, ...) exactly as it calls a ClientConnection;
`Exchange.plain` is False, so responses always come through those callbacks. For an h2c Service
(h2c.py) the upstream is an H2cStream, whose trailers are sent with END_STREAM after the body.
Streams are in h2stream.py; this module holds the connection.

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
from passerelle.http.h2fields import Refused, request_head
from passerelle.proxy.connection import Exchange
from passerelle.proxy.dispatch import TlsPeer, dispatch
from passerelle.proxy.h2stream import Stream

if TYPE_CHECKING:
    from passerelle.proxy.dataplane import EntryPoint

WINDOW = 1024 * 1024  # per stream and per connection, as Go's http2 server (MaxUploadBufferPer*)
MAX_STREAMS = 250  # concurrent streams a client may open (Go's default)
RESET_BUDGET = 100  # cancelled streams a connection may have before more than half cancelled closes it
_CONFIG = H2Configuration(client_side=False, header_encoding=None)


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
