"""One request stream of an HTTP/2 client connection (h2.py), as the upstream side sees a client.

A `Stream` holds one exchange: its request fields, already turned into an HTTP/1.1 head
(http/h2fields.py), are routed as on HTTP/1.1 and go to a pooled `UpstreamConnection`, which calls
the stream back (`upstream_head`, `upstream_body`, ...) exactly as it calls a ClientConnection. Request
DATA is acknowledged to the client only once written upstream below the upstream's high-water mark;
response bytes go out as far as the stream's and the connection's send windows allow, the rest
waits here while the upstream socket stops being read (the flow control h2.py describes). A client
RST_STREAM cancels the exchange and closes its upstream connection, which is mid-response.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from h2.errors import ErrorCodes
from h2.exceptions import StreamClosedError, StreamIDTooLowError

from passerelle.http.errors import canned
from passerelle.http.h2fields import local_answer, response_head
from passerelle.proxy.connection import Exchange, request_parts
from passerelle.proxy.dispatch import connect_failure, connect_retry, replays_stale
from passerelle.proxy.upstream import Pool, UpstreamConnection

if TYPE_CHECKING:
    from passerelle.proxy.h2 import H2Connection

_CRLF = b"\r\n"
_LAST_CHUNK = b"0\r\n\r\n"


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
