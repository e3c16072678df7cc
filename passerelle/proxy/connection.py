"""One client connection: parse requests, route them, stream them through an upstream connection.

Life of a request: `on_headers_complete` routes it and builds the upstream request head into an
`Exchange`; `_start` takes an idle pooled connection (synchronously, the common case) or opens one
in a task, buffering any body that arrives meanwhile. Response events come back through the
`upstream_*` methods. Pipelined requests queue behind the active one, with reading paused, so
responses leave in order. Reading from the client is paused for three independent reasons, kept as
bits in `_paused`: the upstream's write buffer is full, requests are queued, or body bytes are
buffered while an upstream connection is being opened.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING

from httptools import HttpParserCallbackError, HttpParserError, HttpParserUpgrade, HttpRequestParser

from passerelle.http.errors import canned
from passerelle.http.fasthead import STATUS_LINES, simple_request
from passerelle.http.h2c import last_chunk
from passerelle.http.headers import (
    CHUNKED,
    CONNECTION,
    HOST,
    LENGTH,
    REQUEST_HEADERS,
    REQUEST_ID,
    REQUEST_ID_LINE,
    TE,
    TE_TRAILERS,
    UPGRADE,
    accepts_trailers,
    connection_named,
    forwarded_port,
    forwarded_static,
    response_fields,
    valid_request_id,
)
from passerelle.observability.recorder import CLOCK
from passerelle.proxy.dispatch import TlsPeer, connect_failure, connect_retry, dispatch, replays_stale
from passerelle.proxy.upstream import Pool, UpstreamConnection

if TYPE_CHECKING:
    from passerelle.proxy.dataplane import EntryPoint, Route

log = logging.getLogger("passerelle.proxy")
_CRLF = b"\r\n"
_LAST_CHUNK = b"0\r\n\r\n"
_NO_BODY_STATUS = frozenset({204, 304})

_PAUSE_UPSTREAM = 1  # the upstream's write buffer is full
_PAUSE_QUEUE = 2  # pipelined requests are waiting
_PAUSE_BUFFER = 4  # body bytes are buffered while connecting
_BUFFER_LIMIT = 256 * 1024


class _Reject(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class Exchange:
    """One request and its response on a client connection."""

    __slots__ = (
        "method",
        "head",
        "route",
        "local",
        "keep_alive",
        "http11",
        "chunked",
        "upgrade",
        "body",
        "buffered",
        "body_sent",
        "request_done",
        "response_started",
        "response_chunked",
        "response_length_known",
        "upstream",
        "pool",
        "tries",
        "retries",
        "retried_stale",
        "connecting",
        "plain",
        "start",
        "received",
        "host",
        "target",
        "status",
        "sent",
    )
    status: int  # the response's, set with its head: unset while none began
    sent: int  # response body bytes, from the head on

    def __init__(
        self,
        method: bytes,
        head: bytes,
        route: Route | None,
        keep_alive: bool,
        http11: bool,
        host: bytes = b"",
        target: bytes = b"",
    ) -> None:
        self.method = method
        self.head = head
        self.route = route
        self.local: bytes | None = None  # a response passerelle writes itself (404, 503, ...)
        self.keep_alive = keep_alive
        self.http11 = http11
        self.chunked = False
        self.upgrade = False
        self.body: list[bytes] = []
        self.buffered = 0
        self.body_sent = False
        self.request_done = False
        self.response_started = False
        self.response_chunked = False
        self.response_length_known = True
        self.upstream: UpstreamConnection | None = None
        self.pool: Pool | None = None
        self.tries = 0
        self.retries = 0  # sent again: to another server, or on a fresh connection (the access log)
        self.retried_stale = False
        self.connecting: asyncio.Task[None] | None = None
        self.plain = False  # its response may be passed on as it comes (no re-framing, no added lines)
        # For metrics and the access log (observability/recorder.py): when the head was complete
        # (set only when something observes exchanges: a clock read costs), request body bytes
        # received, Host, target; and `status` and `sent` (response body bytes), set with the
        # response head, so unset when no response began.
        self.start = 0.0
        self.received = 0
        self.host = host
        self.target = target


class ClientConnection(asyncio.Protocol):
    protocol = "HTTP/1.1"  # of its exchanges, for the access log (HTTP/1.0 when Exchange.http11 is False)
    __slots__ = (
        "entry",
        "transport",
        "parser",
        "deadline",
        "tunnel",
        "_loop",
        "_forwarded",
        "_host",
        "_host_lines",
        "_url",
        "_headers",
        "_head_bytes",
        "_received",
        "_in_head",
        "_current",
        "_active",
        "_queue",
        "_paused",
        "_upgrading",
        "_closed",
        "_out",
        "peer",
        "client",
        "observer",
    )

    def __init__(self, entry: EntryPoint) -> None:
        self.entry = entry
        self.observer = entry.observer  # metrics and the access log (observability/recorder.py)
        self._loop = entry.loop
        self.parser = HttpRequestParser(self)
        self.deadline = 0.0
        self.tunnel: asyncio.Transport | None = None
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_bytes = 0
        self._received = 0
        self._in_head = False
        self._current: Exchange | None = None  # being parsed: its body chunks arrive now
        self._active: Exchange | None = None  # being answered
        self._queue: deque[Exchange] = deque()
        self._paused = 0
        self._upgrading: list[bytes] | None = None  # client bytes after an Upgrade request, until 101
        self._closed = False
        self._out: list[bytes] = []  # response bytes from one upstream read, sent in one writev

    # -- asyncio callbacks ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        client_ip = (peer[0] if isinstance(peer, tuple) else "").encode()
        self.client = peer  # for the access log
        self._forwarded = forwarded_static(client_ip, self.entry.scheme)
        self._host = b"\x00"  # no Host is this: the first request makes _host_lines
        self._host_lines = b""
        self.deadline = self._loop.time() + self.entry.options.header_timeout
        self.peer: TlsPeer | None = None  # what the TLS handshake settled (proxy/dispatch.py)
        if self.entry.tls is not None:
            ssl_object = transport.get_extra_info("ssl_object")
            if ssl_object is not None:
                self.peer = TlsPeer(ssl_object)
                if ssl_object.selected_alpn_protocol() == "h2":
                    self.entry.serve_h2(transport, self._forwarded, self.peer)  # proxy/h2.py takes over
                    return
        self.entry.connection_opened(self)

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel.write(data)
            return
        if self._upgrading is not None:
            self._upgrading.append(data)
            return
        if (
            self._active is None
            and not self._in_head
            and data.endswith(b"\r\n\r\n")
            and len(data) <= self.entry.options.max_header_bytes
            and self._simple(data)
        ):
            return
        self._received = len(data)
        if self._in_head:
            self._head_bytes += len(data)
            options = self.entry.options
            if self._head_bytes > options.max_header_bytes + options.max_request_line + 4096:
                self._reject(431, "request header fields too large")
                return
        try:
            self.parser.feed_data(data)
        except HttpParserUpgrade as upgrade:
            self._client_upgraded(data[upgrade.args[0] :])
        except HttpParserCallbackError as e:
            reason = e.__context__
            if isinstance(reason, _Reject):
                self._reject(reason.status, reason.detail)
            else:
                raise
        except HttpParserError as e:
            self._reject(400, f"malformed request: {e}")

    def _simple(self, data: bytes) -> bool:
        """Take `data` the short way if it is one whole bodiless request (see http.fasthead)."""
        simple = simple_request(data, self.entry.options.max_request_line)
        if simple is None:
            return False
        method: bytes = simple[0]
        target: bytes = simple[1]
        host: bytes = simple[2]
        # a client's X-Request-Id takes the full way: none here. b"%s" % bytes: one allocation.
        ids = self.entry.request_ids
        if ids is not None:
            line, low = ids.take()
            head = b"%s%s%s%s\r\n\r\n" % (data[:-2], self._forwarded_lines(host), line, low)
        else:
            head = b"%s%s\r\n\r\n" % (data[:-2], self._forwarded_lines(host))
        ex = self._begin(method, target, host, head, True, True, False, False)
        ex.request_done = True
        self.deadline = 0.0
        if self._start(ex):
            self._finish(ex)
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self.entry.connection_closed(self)
        cut = self._active
        if cut is not None and self.observer is not None:  # cut short, or a tunnel's end
            self.observer.exchange(cut, self)
        if self.tunnel is not None:
            self.tunnel.close()  # flushes what the client sent last, then closes
            return
        ex = self._active
        if ex is not None:
            if ex.connecting is not None:
                ex.connecting.cancel()
            if ex.upstream is not None:
                upstream = ex.upstream
                upstream.detach()
                upstream.transport.abort()  # mid-exchange: the upstream connection is out of sync

    def pause_writing(self) -> None:
        ex = self._active
        if ex is not None and ex.upstream is not None and not ex.upstream.read_paused:
            ex.upstream.read_paused = True
            ex.upstream.transport.pause_reading()

    def resume_writing(self) -> None:
        ex = self._active
        if ex is not None and ex.upstream is not None and ex.upstream.read_paused:
            ex.upstream.read_paused = False
            ex.upstream.transport.resume_reading()

    def on_deadline(self) -> None:
        if self._in_head:
            self._reject(408, "request head not received in time")
        elif self._active is None:
            self.transport.close()  # idle keep-alive connection

    # -- request parser callbacks -----------------------------------------------------------
    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._head_bytes = self._received  # this head is at most what this read brought, and later ones
        self._in_head = True
        if self._active is None:
            self.deadline = self.entry.deadlines.now + self.entry.options.header_timeout

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self.entry.options.max_request_line:
            raise _Reject(414, "request line too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        # Size is checked once the head is complete; data_received bounds memory meanwhile.
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._in_head = False
        parser = self.parser
        method = parser.get_method()
        if method == b"CONNECT":
            raise _Reject(405, "CONNECT is not supported: this is a reverse proxy")
        http11 = parser.get_http_version() == "1.1"
        url = self._url
        head = [method, b" ", url, b" HTTP/1.1\r\n"]
        host = None
        connection = None
        chunked = False
        upgrade = None
        has_length = False
        request_id = b""
        for name, value in self._headers:
            lname = name.lower()
            if lname in REQUEST_HEADERS:  # `in` is one bytecode; most headers stop here
                kind = REQUEST_HEADERS[lname]
                if kind == HOST:
                    if host is not None:
                        raise _Reject(400, "more than one Host header")  # RFC 9112 §3.2
                    host = value
                elif kind == LENGTH:
                    has_length = value != b"0"
                elif kind == REQUEST_ID:  # the first valid one is the id; it goes with X-Forwarded-*
                    if not request_id and valid_request_id(value):
                        request_id = value
                    continue
                else:
                    if kind == CHUNKED:
                        chunked = True  # llhttp has checked that chunked is the final coding
                    elif kind == CONNECTION:
                        connection = value if connection is None else connection + b"," + value
                    elif kind == UPGRADE:
                        upgrade = value
                    elif kind == TE and accepts_trailers(value):
                        head += (b"TE", b": ", b"trailers", _CRLF)  # headers.TE_TRAILERS
                    continue
            head += (name, b": ", value, _CRLF)
        if self._head_bytes > self.entry.options.max_header_bytes:
            # The bytes received during this head are an upper bound; only a big head is measured.
            if sum(len(n) + len(v) + 4 for n, v in self._headers) > self.entry.options.max_header_bytes:
                raise _Reject(431, "request header fields too large")
        if connection is not None:
            named = connection_named(connection)
            if named:
                head = _without(head, 4, named)
        if host is None:
            if http11:
                raise _Reject(400, "missing Host header")
            host = b""
        else:
            host = host.rstrip(b" \t")  # llhttp strips the leading whitespace only (RFC 9110 §5.5)
        head += self._forwarded_for(host, request_id)
        is_upgrade = upgrade is not None and parser.should_upgrade()
        if is_upgrade:
            head += (b"Connection: Upgrade\r\nUpgrade: ", upgrade, _CRLF)  # type: ignore[arg-type]
        elif chunked:
            head.append(b"Transfer-Encoding: chunked\r\n")
        head.append(_CRLF)
        ex = self._begin(
            method,
            url,
            host,
            b"".join(head),
            parser.should_keep_alive(),
            http11,
            chunked or has_length,
            is_upgrade,
        )
        ex.chunked = chunked
        self._current = ex
        if self._active is None:
            self.deadline = 0.0
            if ex.local is None or not ex.keep_alive:
                if self._start(ex):
                    self._finish(ex)
            else:
                self._active = ex  # answered at message complete, after the (empty) body
        else:
            self._queue.append(ex)
            self._pause(_PAUSE_QUEUE)

    def _forwarded_lines(self, host: bytes) -> bytes:
        """The X-Forwarded-* lines for a request with this Host, less the last CRLF; kept for the
        connection's last Host: its requests nearly always name one."""
        if host != self._host:
            default = self.entry.default_port
            port = default if host.find(b":") < 0 else forwarded_port(host, default)
            self._host_lines = b"%sX-Forwarded-Host: %s\r\nX-Forwarded-Port: %s" % (
                self._forwarded,
                host,
                port,
            )
            self._host = host
        return self._host_lines

    def _forwarded_for(self, host: bytes, request_id: bytes) -> tuple[bytes, ...]:
        """The X-Forwarded-* lines, and X-Request-Id: `request_id` (the client's), else one made
        here (two pieces, no allocation: headers.RequestIds), else none."""
        lines = self._forwarded_lines(host)
        if request_id:
            return (lines, REQUEST_ID_LINE, request_id, _CRLF)
        ids = self.entry.request_ids
        if ids is not None:
            line, low = ids.take()
            return (lines, line, low, _CRLF)
        return (lines, _CRLF)

    def _begin(
        self,
        method: bytes,
        target: bytes,
        host: bytes,
        head: bytes,
        keep_alive: bool,
        http11: bool,
        has_body: bool,
        upgrade: bool,
    ) -> Exchange:
        """Route a request whose head is complete; decide here whether passerelle answers it itself."""
        route, head, local = dispatch(self.entry, self.peer, method, target, host, head)
        ex = Exchange(method, head, route, keep_alive, http11, host, target)
        if self.observer is not None:
            ex.start = CLOCK()
        ex.upgrade = upgrade
        ex.local = local
        if ex.local is not None and (has_body or upgrade):
            ex.keep_alive = False  # answer now without reading the body, then close (RFC 9112 §9.6)
        ex.plain = (
            http11
            and ex.keep_alive
            and not upgrade
            and method != b"HEAD"
            and (route is None or route.response is None)
        )
        return ex

    def on_body(self, body: bytes) -> None:
        ex = self._current
        if ex is None:
            return
        ex.received += len(body)
        if ex.local is not None:
            return
        upstream = ex.upstream
        if upstream is not None:
            ex.body_sent = True
            if ex.chunked:
                upstream.transport.writelines((b"%x\r\n" % len(body), body, _CRLF))
            else:
                upstream.transport.write(body)
        elif not ex.response_started:
            ex.body.append(body)
            ex.buffered += len(body)
            if ex.buffered > _BUFFER_LIMIT:
                self._pause(_PAUSE_BUFFER)

    def on_message_complete(self) -> None:
        ex = self._current
        if ex is None:
            return
        self._current = None
        ex.request_done = True
        if ex.upstream is not None and ex.chunked:
            ex.upstream.transport.write(_LAST_CHUNK)
        if ex is self._active and ex.local is not None and not ex.response_started:
            if self._start(ex):  # a local answer waited for the end of the (empty) body
                self._finish(ex)

    # -- exchange life ----------------------------------------------------------------------
    def _start(self, ex: Exchange) -> bool:
        """Make `ex` the active exchange; True if it was answered and is complete already."""
        self._active = ex
        route = ex.route
        pool = None if ex.local is not None or route is None else route.upstream.pools.pick()
        if pool is None:
            if ex.local is None:  # a reload emptied the service while the request was queued
                assert route is not None
                ex.local = canned(503, route.upstream.unavailable, head=ex.method == b"HEAD")
            ex.response_started = True
            if ex.upgrade or not ex.request_done:
                ex.keep_alive = False  # the client may already be sending what we will not read
            if ex.keep_alive:
                self.transport.write(ex.local)
            else:
                self.transport.write(ex.local.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1))
            return ex.request_done or not ex.keep_alive
        ex.pool = pool
        conn = pool.acquire()
        if conn is not None:
            self._send(ex, conn)
        else:
            ex.connecting = self._loop.create_task(self._connect(ex, pool))
        return False

    async def _connect(self, ex: Exchange, pool: Pool) -> None:
        try:
            conn = await pool.connect()
        except (OSError, TimeoutError) as e:
            ex.connecting = None
            if self._closed:
                return
            retry = connect_retry(ex, pool, self.observer)
            if retry is not None:
                ex.connecting = self._loop.create_task(self._connect(ex, retry))
            else:
                self._fail(ex, 502, connect_failure(pool, e))
            return
        ex.connecting = None
        if self._closed or ex is not self._active:
            pool.release(conn)
            return
        self._send(ex, conn)

    def _send(self, ex: Exchange, conn: UpstreamConnection) -> None:
        ex.upstream = conn
        conn.attach(self, ex)
        if not ex.body and not ex.chunked:
            conn.transport.write(ex.head)  # the common case: a request without a body
            return
        buffered = bool(ex.body)
        conn.transport.writelines(request_parts(ex))
        if buffered:
            self._resume(_PAUSE_BUFFER)

    def _finish(self, ex: Exchange) -> None:
        """The response is complete and so is the request: on to the next ones, or close.

        A loop, not recursion: thousands of pipelined requests answered locally finish in turn.
        """
        while True:
            if self.observer is not None:
                self.observer.exchange(ex, self)
            self._active = None
            if not ex.keep_alive or self._closed:
                self.transport.close()
                return
            if not self._queue:
                self.deadline = self.entry.deadlines.now + self.entry.options.idle_timeout
                return
            ex = self._queue.popleft()
            if not self._queue:
                self._resume(_PAUSE_QUEUE)
            if not self._start(ex):
                return

    def _fail(self, ex: Exchange, status: int, detail: str) -> None:
        if ex.response_started:
            self.transport.close()  # too late for a status: cut the response short
            return
        ex.response_started = True
        ex.keep_alive = ex.keep_alive and ex.request_done and not ex.upgrade
        ex.local = canned(status, detail, close=not ex.keep_alive, head=ex.method == b"HEAD")
        self.transport.write(ex.local)
        self._finish(ex)  # complete, or (keep_alive False) the connection closes

    def _reject(self, status: int, detail: str) -> None:
        """The client broke the protocol or a limit: answer if nothing else is in flight, then close."""
        self._in_head = False
        if self._active is None:
            self.transport.write(canned(status, detail, close=True))
            if self.observer is not None:
                self.observer.rejected(status)
        self.transport.close()

    def _pause(self, reason: int) -> None:
        if not self._paused:
            self.transport.pause_reading()
        self._paused |= reason

    def _resume(self, reason: int) -> None:
        if self._paused & reason:
            self._paused &= ~reason
            if not self._paused and not self._closed:
                self.transport.resume_reading()

    # -- events from the upstream connection ------------------------------------------------
    def _release(self, conn: UpstreamConnection) -> None:
        """Detach `conn` from this client; its back-pressure on our reading ends with it."""
        conn.detach()
        self._resume(_PAUSE_UPSTREAM)

    def pause_for_upstream(self) -> None:
        self._pause(_PAUSE_UPSTREAM)

    def resume_for_upstream(self) -> None:
        self._resume(_PAUSE_UPSTREAM)

    def upstream_head(
        self, conn: UpstreamConnection, status: int, headers: list[tuple[bytes, bytes]]
    ) -> None:
        ex = conn.exchange
        assert ex is not None
        ex.status = status
        ex.sent = 0
        # An unknown code gets an empty reason phrase, which RFC 9112 §4 allows.
        head = [STATUS_LINES.get(status) or b"HTTP/1.1 %d \r\n" % status]
        kept, length_known, chunked, upgrade = response_fields(headers)
        for name, _, value in kept:
            head += (name, b": ", value, _CRLF)
        if status < 200:
            if status == 101 and upgrade is not None:
                head += (b"Connection: Upgrade\r\nUpgrade: ", upgrade, _CRLF, _CRLF)
                ex.response_started = True
                self._out.append(b"".join(head))
            elif ex.http11:
                head.append(_CRLF)  # interim response (100 Continue, 103 Early Hints): pass it on
                self._out.append(b"".join(head))
            return
        ex.response_started = True
        if ex.upgrade:
            ex.keep_alive = False  # the client may already be speaking the new protocol
        if ex.method == b"HEAD" or status in _NO_BODY_STATUS:
            pass
        elif not length_known:
            ex.response_length_known = chunked  # else close-delimited: the close is the end
            if ex.http11:
                ex.response_chunked = True
                head.append(b"Transfer-Encoding: chunked\r\n")
            else:
                ex.keep_alive = False  # HTTP/1.0 client: the body ends when the connection does
        if not ex.keep_alive:
            head.append(b"Connection: close\r\n")
        elif not ex.http11:
            head.append(b"Connection: keep-alive\r\n")
        head.append(_CRLF)
        self._out.append(b"".join(head))

    def upstream_body(self, body: bytes) -> None:
        ex = self._active
        if ex is not None:
            ex.sent += len(body)
        if ex is not None and ex.response_chunked:
            self._out += (b"%x\r\n" % len(body), body, _CRLF)
        else:
            self._out.append(body)

    def upstream_trailers(self, conn: UpstreamConnection, trailers: list[tuple[bytes, bytes]]) -> None:
        """Response trailers (h2c or HTTP/1.1 upstreams): the chunked body ends with them when the client
        said it takes them (`TE: trailers`, RFC 9110 §10.1.4); otherwise they are dropped."""
        ex = conn.exchange
        # A line of its own: only passerelle writes a `TE:` line (a client's TE is rewritten), and
        # no field value holds a CRLF, so no other header's value can match (unlike a bare substring).
        if ex is not None and ex.response_chunked and trailers and _CRLF + TE_TRAILERS in ex.head:
            self._out.append(last_chunk(trailers))
            ex.response_chunked = False  # the last chunk is out: upstream_done must not add one

    def flush(self) -> None:
        """Send what the upstream's last read produced: head and body in one system call."""
        out = self._out
        if out:
            self._out = []
            if len(out) == 1:
                self.transport.write(out[0])
            else:
                self.transport.writelines(out)

    def upstream_done(self, conn: UpstreamConnection, *, keep_alive: bool) -> None:
        ex = conn.exchange
        assert ex is not None
        if ex.response_chunked:
            self._out.append(_LAST_CHUNK)
        if self._out:
            self.flush()
        ex.upstream = None
        self._release(conn)
        if keep_alive and ex.request_done:
            conn.pool.release(conn)
        else:
            conn.transport.close()
        if not ex.request_done:
            ex.keep_alive = False  # the rest of the request body is unread: close after this response
        self._finish(ex)

    def upstream_failed(self, conn: UpstreamConnection, status: int, detail: str) -> None:
        self.flush()
        ex = conn.exchange
        self._release(conn)
        conn.transport.abort()
        if ex is not None:
            ex.upstream = None
            self._fail(ex, status, detail)

    def upstream_lost(self, conn: UpstreamConnection) -> None:
        """The upstream closed the connection mid-exchange."""
        self.flush()
        ex = conn.exchange
        stale = conn.reused  # read before detach(), which marks the connection as reused
        self._release(conn)
        if ex is None:
            return
        ex.upstream = None
        if ex.response_started:
            if not ex.response_length_known and not ex.response_chunked:
                self._finish(ex)  # a close-delimited body ends here (RFC 9112 §6.3 item 8)
            elif not ex.response_length_known:
                self.transport.write(_LAST_CHUNK)
                self._finish(ex)
            else:
                self.transport.close()  # truncated: the client must see it as such
            return
        if replays_stale(ex, conn, stale, self.observer):
            assert ex.pool is not None
            ex.connecting = self._loop.create_task(self._connect(ex, ex.pool))
            return
        self._fail(ex, 502, f"upstream {conn.pool.server} closed the connection before answering")

    # -- upgrades (WebSocket and others) ----------------------------------------------------
    def _client_upgraded(self, rest: bytes) -> None:
        self._upgrading = [rest] if rest else []
        self._pause(_PAUSE_BUFFER)  # nothing more is read until the upstream agrees (101) or not

    def upstream_upgraded(self, conn: UpstreamConnection, rest: bytes) -> None:
        """The upstream said 101: from now on both sides are a byte tunnel."""
        ex = conn.exchange
        if ex is None or self._closed:
            conn.transport.close()
            return
        if rest:
            self._out.append(rest)
        self.flush()
        pending = self._upgrading or []
        self._upgrading = None
        self._resume(_PAUSE_BUFFER)
        conn.tunnel = self.transport
        self.tunnel = conn.transport
        self.deadline = 0.0
        conn.deadline = 0.0
        if pending:
            conn.transport.writelines(pending)


def request_parts(ex: Exchange) -> list[bytes]:
    """The request head and the body buffered while connecting, framed for the upstream (taken)."""
    parts = [ex.head]
    if ex.body:
        ex.body_sent = True
        if ex.chunked:
            for chunk in ex.body:
                parts += (b"%x\r\n" % len(chunk), chunk, _CRLF)
        else:
            parts += ex.body
        ex.body = []
        ex.buffered = 0
    if ex.request_done and ex.chunked:
        parts.append(_LAST_CHUNK)
    return parts


def _without(parts: list[bytes], start: int, named: frozenset[bytes]) -> list[bytes]:
    """Drop the header lines (name, ": ", value, CRLF) from `start` on whose name is in `named`."""
    kept = parts[:start]
    for i in range(start, len(parts), 4):
        if parts[i].lower() not in named:
            kept += parts[i : i + 4]
    return kept
