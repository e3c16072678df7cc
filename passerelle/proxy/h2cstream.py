"""One exchange on an h2c connection (h2c.py), as its owner sees an UpstreamConnection.

The owner (connection.ClientConnection, h2.Stream) writes the HTTP/1.1 request it would send any
upstream to `StreamTransport`: the head becomes HEADERS (http/h2c.py), the body DATA, taken off
passerelle's chunked framing or counted against Content-Length, END_STREAM at its end. DATA waits
for the server's windows; past PENDING_HIGH waiting the owner is paused. Response events from the
connection go to the owner through the `upstream_*` calls; response DATA is acknowledged as it is
handed over; while the owner has paused reading (`pause_reading` on the transport) only the
stream's window is held back, the connection's is given back at once, so that slow clients do
not stall the other streams on the connection.

A head that does not go (a field HTTP/2 cannot carry, an Upgrade, a connection that went) leaves
the stream `dead`: what the owner writes after it is dropped, never read as another head.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING

from h2.connection import ConnectionState
from h2.errors import ErrorCodes
from h2.exceptions import H2Error, TooManyStreamsError

from passerelle.http.h2c import (
    BadField,
    ChunkReader,
    UpstreamRequest,
    status_and_fields,
    trailer_fields,
    upstream_request,
)
from passerelle.proxy.upstream import ExchangeOwner, UpstreamConnection

if TYPE_CHECKING:
    from passerelle.proxy.connection import Exchange
    from passerelle.proxy.h2c import H2cConnection

PENDING_HIGH = 64 * 1024  # request bytes waiting for the server's window before the owner pauses
RESEND_BODY = 64 * 1024  # request bodies up to this size are kept, to go again if the stream is refused


class H2cStream(UpstreamConnection):
    """One exchange on an H2cConnection, as its owner sees an UpstreamConnection.

    Of UpstreamConnection only the attributes owners use are set (pool, transport, client,
    exchange, deadline, reused, read_paused, tunnel); its HTTP/1.1 parsing is never reached.
    """

    __slots__ = (
        "conn", "id", "finished", "dead", "_kept", "_kept_bytes", "_chunks", "_left", "_pending", "_pending_bytes",
        "_ending", "_holding", "_held", "_owner_paused",
    )  # fmt: skip

    def __init__(self, conn: H2cConnection) -> None:
        self.conn = conn
        self.pool = conn.pool
        self._options = conn.options
        self._deadlines = conn.deadlines
        self.transport = StreamTransport(self)
        self.client: ExchangeOwner | None = None
        self.exchange: Exchange | None = None
        self.deadline = 0.0
        self.reused = False  # set when the server did not process the stream: retrying is safe
        self.read_paused = False  # the owner's flag; `_holding` is what this stream does about it
        self.tunnel = None
        self.id = 0  # the HTTP/2 stream id, once the head has gone
        self.ends_with_head = False
        self.finished = False
        self.dead = False  # the head did not go: everything written after it is dropped
        self.refused = False  # certainly not processed (RFC 9113 §8.7): any method may go again
        self._kept: list[bytes] | None = []  # the request body so far, while it is small enough to resend
        self._kept_bytes = 0
        self._chunks: ChunkReader | None = None
        self._left = 0  # request body bytes still to come (Content-Length)
        self._pending: deque[memoryview] = deque()  # request body waiting for the server's window
        self._pending_bytes = 0
        self._ending = False  # END_STREAM goes once _pending is sent
        self._holding = False  # the owner paused reading: response DATA is not acknowledged
        self._held = 0
        self._owner_paused = False  # pause_for_upstream was called and not yet undone
        conn.reserved += 1
        conn.deadline = 0.0

    # -- UpstreamConnection, as owners use it ------------------------------------------------------
    def attach(self, client: ExchangeOwner, exchange: Exchange) -> None:
        self.client = client
        self.exchange = exchange
        self.deadline = self.conn.loop.time() + self._options.response_header_timeout
        self._deadlines.add(self)

    def detach(self) -> None:
        self.client = None
        self.exchange = None
        self.deadline = 0.0
        self._deadlines.discard(self)
        self.release_reading()

    def on_deadline(self) -> None:
        client, ex = self.client, self.exchange
        if client is not None and ex is not None and not ex.response_started:
            seconds = self._options.response_header_timeout
            client.upstream_failed(
                self, 504, f"upstream {self.pool.server} did not answer within {seconds:g}s"
            )

    # -- request side: what the owner writes (StreamTransport) -----------------------------------
    def send(self, data: bytes) -> None:
        if self.finished or self.dead or self.client is None:
            return
        if not self.id and not self.refused:
            self._send_head(data)
            return
        if self._chunks is not None:
            for piece in self._chunks.feed(data):
                self._queue(piece)
            if self._chunks.done:
                self._end_request()
        elif self._left:
            take = min(self._left, len(data))
            self._left -= take
            self._queue(data if take == len(data) else data[:take])
            if not self._left:
                self._end_request()

    def _send_head(self, head: bytes) -> None:
        self.dead = True  # until the HEADERS have gone: a failed head takes nothing after it
        conn = self.conn
        try:
            request = upstream_request(head, self.conn.pool.authority)
        except BadField as e:
            self._fail_soon(f"the request cannot go to upstream {self.pool.server} over HTTP/2: {e}")
            return
        if request.upgrade:
            self._fail_soon(
                f"upstream {self.pool.server} is HTTP/2 (h2c): it cannot take an Upgrade (WebSocket)"
            )
            return
        if conn.closed or conn.refusing or conn.state.state_machine.state == ConnectionState.CLOSED:
            # the connection went, or the server's GOAWAY came, between acquire and this write:
            # nothing was sent, so the owner may send it again elsewhere
            self._not_sent(request)
            return
        ended = not request.chunked and not request.length
        stream_id = conn.state.get_next_available_stream_id()
        try:
            conn.state.send_headers(stream_id, request.fields, end_stream=ended)
        except TooManyStreamsError:
            # the server's SETTINGS allow fewer streams than were guessed: nothing went, and this
            # connection takes no more until one ends; another connection takes the request
            conn.full()
            self._not_sent(request)
            return
        except H2Error as e:
            # Fields are checked before (http/h2c.py), so this should not happen; if it does, h2
            # may have updated its HPACK table for a block the server never saw: no more HEADERS
            # may go on this connection. Streams in flight finish; unsent ones go elsewhere.
            conn.compressor_broken()
            self._fail_soon(f"the request cannot go to upstream {self.pool.server} over HTTP/2: {e}")
            return
        self.dead = False
        self.id = stream_id
        conn.streams[stream_id] = self
        self._chunks = ChunkReader() if request.chunked else None
        self._left = request.length

    def _not_sent(self, request: UpstreamRequest) -> None:
        """Nothing reached the server: the owner may send it again, body and all. What it writes
        of the body meanwhile (in this same call, usually) is kept, not sent (`refused`)."""
        self.dead = False
        self.refused = True
        self._chunks = ChunkReader() if request.chunked else None
        self._left = request.length
        self.conn.loop.call_soon(self._lost_soon)

    def _queue(self, data: bytes) -> None:
        kept = self._kept
        if kept is not None and data:
            self._kept_bytes += len(data)
            if self._kept_bytes > RESEND_BODY:
                self._kept = None  # too big to keep: a refused stream with this body is a 502
            else:
                kept.append(data)
        if data and not self.refused:
            self._pending.append(memoryview(data))
            self._pending_bytes += len(data)
            self.push()

    def _end_request(self) -> None:
        if self.refused:
            return
        self._ending = True
        self.push()

    def push(self) -> None:
        """Send what the windows allow of the pending request body; END_STREAM once all went."""
        state = self.conn.state
        pending = self._pending
        try:
            while pending:
                data = pending[0]
                size = min(state.local_flow_control_window(self.id), state.max_outbound_frame_size, len(data))
                if size <= 0:
                    break
                state.send_data(self.id, data[:size])
                self._pending_bytes -= size
                if size == len(data):
                    pending.popleft()
                else:
                    pending[0] = data[size:]
            if not pending and self._ending:
                self._ending = False
                state.end_stream(self.id)
        except H2Error:
            pending.clear()  # the stream was reset meanwhile: its reset event cleans up
            self._pending_bytes = 0
        self.pace()

    def pace(self) -> None:
        """Pause the owner while request bytes pile up (window or socket full), resume it after."""
        paused = self._pending_bytes > PENDING_HIGH or (self.conn.write_paused and bool(self.id))
        client = self.client
        if paused != self._owner_paused and client is not None:
            self._owner_paused = paused
            if paused:
                client.pause_for_upstream()
            else:
                client.resume_for_upstream()

    # -- response side: events from the connection ------------------------------------------------
    def response(self, headers: list[tuple[bytes, bytes]], *, ended: bool) -> None:
        client = self.client
        if client is None:
            return
        status, fields = self._fields(headers)
        self.deadline = 0.0
        self.ends_with_head = ended
        self.conn.touched.append(self)
        client.upstream_head(self, status, fields)
        if ended:
            self.ended()

    def interim(self, headers: list[tuple[bytes, bytes]]) -> None:
        if self.client is not None:
            status, fields = self._fields(headers)
            self.conn.touched.append(self)
            self.client.upstream_head(self, status, fields)

    def _fields(self, headers: list[tuple[bytes, bytes]]) -> tuple[int, list[tuple[bytes, bytes]]]:
        """The status and the fields of a response head, with the route's response header edits
        made (a headers middleware, a ResponseHeaderModifier), as an HTTP/1.1 upstream's are."""
        status, fields = status_and_fields(headers)
        route = self.exchange.route if self.exchange is not None else None
        if route is not None and route.response is not None:
            for edits in route.response:
                fields = edits.apply(fields)
        return status, fields

    def body(self, data: bytes, size: int) -> None:
        if self.client is not None and data:
            self.conn.touched.append(self)
            self.client.upstream_body(data)
        if size:
            state = self.conn.state
            state.acknowledge_connection_data(size)  # at once: the bytes are out of the shared window
            if self._holding:
                self._held += size  # the stream's window waits for the owner: at most STREAM_WINDOW held
            else:
                state.acknowledge_stream_data(size, self.id)

    def trailers(self, headers: list[tuple[bytes, bytes]]) -> None:
        if self.client is not None:
            self.client.upstream_trailers(self, trailer_fields(headers))

    def ended(self) -> None:
        """The response is complete (END_STREAM)."""
        self.conn.streams.pop(self.id, None)
        self.conn.carried += 1
        if self.client is not None:
            self.client.upstream_done(self, keep_alive=True)  # it releases or closes the stream
        else:
            self.finish()

    def reset_by_server(self, code: int) -> None:
        self.conn.streams.pop(self.id, None)
        if code == ErrorCodes.REFUSED_STREAM:
            self.unprocessed(certain=True)
            return
        name = code.name if isinstance(code, ErrorCodes) else str(code)
        self.failed(f"upstream {self.pool.server} reset the stream ({name})")

    def unprocessed(self, *, certain: bool) -> None:
        """Not processed by the server: the owner may send the request again.

        `certain` (REFUSED_STREAM, after a GOAWAY's last stream, never sent; RFC 9113 §8.7): any
        method, with the body kept so far put back to go again. Otherwise (the connection closed
        without GOAWAY) only what the owner would repeat on a stale HTTP/1.1 connection.
        """
        self.conn.streams.pop(self.id, None)
        client = self.client
        ex = self.exchange
        if client is None or (ex is not None and ex.response_started):
            self.failed(f"upstream {self.pool.server} did not process the stream")
            return
        self.reused = True
        if certain:
            self.refused = True
            if ex is not None and ex.body_sent and self._kept is not None:
                ex.body[:0] = self._kept  # un-framed: request_parts frames it again
                ex.buffered += self._kept_bytes
                ex.body_sent = False
                self._kept = None
        client.upstream_lost(self)  # a retry, or 502; either way it detaches this stream
        self.finish()

    def failed(self, detail: str) -> None:
        self.conn.streams.pop(self.id, None)
        if self.client is not None:
            self.client.upstream_failed(self, 502, detail)  # a cut response if it had started
        self.finish()

    def _fail_soon(self, detail: str) -> None:
        """Fail from the event loop, not inside the owner's own write."""
        self.conn.loop.call_soon(lambda: self.failed(detail) if not self.finished else None)

    def _lost_soon(self) -> None:
        if not self.finished:
            self.unprocessed(certain=True)

    # -- the end of the stream, and reading pace ----------------------------------------------------
    def hold_reading(self) -> None:
        self._holding = True

    def release_reading(self) -> None:
        self._holding = False
        held, self._held = self._held, 0
        if held and not self.conn.closed:
            self.conn.state.acknowledge_stream_data(held, self.id)
            self.conn.flush()

    def cancel(self) -> None:
        """The owner is done with the stream before its end (a failure, or its client left)."""
        if self.finished:
            return
        conn = self.conn
        if self.id and not conn.closed:
            try:
                conn.state.reset_stream(self.id, ErrorCodes.CANCEL)
            except H2Error:
                pass  # closed both ways already
            conn.flush()
        self.finish()

    def finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        self._pending.clear()
        self._pending_bytes = 0
        self._deadlines.discard(self)
        conn = self.conn
        conn.streams.pop(self.id, None)
        conn.reserved -= 1
        conn.stream_closed()


class StreamTransport(asyncio.Transport):
    """What an owner writes to and pauses: an H2cStream's side of the transport interface."""

    __slots__ = ("_stream",)

    def __init__(self, stream: H2cStream) -> None:
        super().__init__()
        self._stream = stream

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._stream.send(bytes(data))
        self._stream.conn.flush()

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        for data in list_of_data:
            self._stream.send(bytes(data))
        self._stream.conn.flush()

    def close(self) -> None:
        self._stream.cancel()

    def abort(self) -> None:
        self._stream.cancel()

    def is_closing(self) -> bool:
        return self._stream.finished

    def pause_reading(self) -> None:
        self._stream.hold_reading()

    def resume_reading(self) -> None:
        self._stream.release_reading()

    def is_reading(self) -> bool:
        return not self._stream._holding
