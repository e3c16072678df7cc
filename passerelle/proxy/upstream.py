"""Connections to upstream servers, pooled per server, and the response side of an exchange.

An `UpstreamConnection` parses responses with httptools and reports each event to the client
connection that owns its current exchange (h2c.py has the HTTP/2 kind, for Services that ask). Between exchanges it sits idle in its `Pool`, where a
deadline closes it after `idle_conn_timeout`. A connection that the server closes while idle
simply leaves the pool.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, ClassVar, Protocol, cast

from httptools import HttpParserCallbackError, HttpParserError, HttpParserUpgrade, HttpResponseParser
from mypy_extensions import mypyc_attr

from passerelle.http.fasthead import simple_response
from passerelle.http.h2c import trailer_fields
from passerelle.model import Server
from passerelle.proxy.deadlines import Deadlines
from passerelle.proxy.options import ForwardingOptions

if TYPE_CHECKING:
    from passerelle.proxy.connection import ClientConnection, Exchange


class ExchangeOwner(Protocol):
    """What an UpstreamConnection calls on the side that owns its exchange: a ClientConnection
    (HTTP/1.1), or an h2.Stream. `transport` is written to directly only on the short way, which
    only `Exchange.plain` exchanges take (never an HTTP/2 stream's)."""

    transport: asyncio.Transport

    def upstream_head(
        self, conn: UpstreamConnection, status: int, headers: list[tuple[bytes, bytes]]
    ) -> None: ...
    def upstream_body(self, body: bytes) -> None: ...
    def upstream_trailers(self, conn: UpstreamConnection, trailers: list[tuple[bytes, bytes]]) -> None: ...
    def upstream_done(self, conn: UpstreamConnection, *, keep_alive: bool) -> None: ...
    def upstream_failed(self, conn: UpstreamConnection, status: int, detail: str) -> None: ...
    def upstream_lost(self, conn: UpstreamConnection) -> None: ...
    def upstream_upgraded(self, conn: UpstreamConnection, rest: bytes) -> None: ...
    def pause_for_upstream(self) -> None: ...
    def resume_for_upstream(self) -> None: ...
    def flush(self) -> None: ...


class _StopParsing(Exception):
    """Raised from a parser callback to end the current feed (a HEAD response is complete)."""


@mypyc_attr(allow_interpreted_subclasses=True)  # h2c.H2cPool
class Pool:
    """A server's idle HTTP/1.1 connections (h2c.H2cPool: its HTTP/2 ones)."""

    __slots__ = ("server", "idle", "loop", "_options", "_deadlines", "closed")
    scheme: ClassVar[str] = "http"

    def __init__(
        self,
        server: Server,
        loop: asyncio.AbstractEventLoop,
        options: ForwardingOptions,
        deadlines: Deadlines,
    ) -> None:
        self.server = server
        self.idle: list[UpstreamConnection] = []
        self.loop = loop
        self._options = options
        self._deadlines = deadlines
        self.closed = False

    def acquire(self) -> UpstreamConnection | None:
        idle = self.idle
        while idle:
            conn = idle.pop()
            if not conn.transport.is_closing():
                return conn
        return None

    async def connect(self) -> UpstreamConnection:
        async with asyncio.timeout(self._options.dial_timeout):
            _, conn = await self.loop.create_connection(
                lambda: UpstreamConnection(self, self._options, self._deadlines),
                self.server.host,
                self.server.port,
            )
        return conn

    def release(self, conn: UpstreamConnection) -> None:
        if self.closed or len(self.idle) >= self._options.max_idle_per_host or conn.transport.is_closing():
            conn.transport.close()
            return
        conn.deadline = self._deadlines.now + self._options.idle_conn_timeout  # proxy/deadlines.py
        self.idle.append(conn)

    def forget(self, conn: UpstreamConnection) -> None:
        if conn in self.idle:
            self.idle.remove(conn)

    def close(self) -> None:
        """No new connections are pooled; idle ones close now, busy ones when their exchange ends."""
        self.closed = True
        for conn in self.idle:
            conn.transport.close()
        self.idle.clear()


@mypyc_attr(allow_interpreted_subclasses=True)  # h2cstream.H2cStream
class UpstreamConnection(asyncio.Protocol):
    __slots__ = (
        "ends_with_head",
        "refused",
        "pool",
        "transport",
        "parser",
        "client",
        "exchange",
        "deadline",
        "reused",
        "read_paused",
        "tunnel",
        "_options",
        "_deadlines",
        "_headers",
        "_status",
        "_fresh",
        "_body_left",
        "_body_keep_alive",
        "_ended",
    )

    def __init__(self, pool: Pool, options: ForwardingOptions, deadlines: Deadlines) -> None:
        self.pool = pool
        self._options = options
        self._deadlines = deadlines
        self.parser = HttpResponseParser(self)
        self.client: ExchangeOwner | None = None
        self.exchange: Exchange | None = None
        self.deadline = 0.0
        self.reused = False  # has carried an exchange before: a reset may just be a stale socket
        self.read_paused = False
        self.tunnel: asyncio.Transport | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._status = 0
        self._fresh = True  # the parser has seen nothing of the current response
        self._body_left = 0  # body bytes to pass on, of a response that took the short way
        self._body_keep_alive = False
        self._ended = False  # a final response ended during the read being parsed
        # An h2c.H2cStream, the other kind of upstream, sets this when the response head was the
        # whole response (HTTP/2 HEADERS with END_STREAM: a gRPC "trailers-only" answer) ...
        self.ends_with_head = False
        # ... and this when the server certainly did not process the request (RFC 9113 §8.7:
        # refused, or after a GOAWAY's last stream), so that any method may go again.
        self.refused = False

    # -- asyncio callbacks ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self._deadlines.add(self)

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel.write(data)
            return
        client = self.client
        if client is None:
            self.transport.close()  # an idle connection must not talk: it is out of sync
            return
        # The short way's exchanges are a ClientConnection's (h2 streams' are never plain): cast,
        # its methods are called natively, not through the protocol with a keyword argument.
        left = self._body_left
        if left:
            self._pass_body(cast("ClientConnection", client), data, left)
            return
        if self._fresh:
            ex = self.exchange
            if ex is not None and ex.plain and self._simple(cast("ClientConnection", client), ex, data):
                return
            self._fresh = False
        try:
            self.parser.feed_data(data)
        except HttpParserUpgrade as upgrade:
            if self.client is not None and self._status == 101:
                self.client.upstream_upgraded(self, data[upgrade.args[0] :])
        except HttpParserCallbackError as e:
            if not isinstance(e.__context__, _StopParsing):
                raise
        except HttpParserError as e:
            if self.client is not None and not self._ended:
                self.client.upstream_failed(
                    self, 502, f"invalid response from upstream {self.pool.server}: {e}"
                )
            else:  # idle, or past the end of its response: its parser is broken, never reuse it
                self.transport.close()
        finally:
            self._ended = False
        client.flush()  # whatever this read produced for the client leaves in one write

    def _simple(self, client: ClientConnection, ex: Exchange, data: bytes) -> bool:
        """Pass on a response head, and what came of its body, as it is (see http.fasthead)."""
        status, length, left, keep_alive, forward = simple_response(data)
        if not status:
            return False
        self.deadline = 0.0
        ex.response_started = True
        ex.status, ex.sent = status, length  # for metrics and the access log
        client.transport.write(forward)
        if left:
            self._body_left = left
            self._body_keep_alive = keep_alive
        else:
            client.upstream_done(self, keep_alive=keep_alive)
        return True

    def _pass_body(self, client: ClientConnection, data: bytes, left: int) -> None:
        size = len(data)
        if size < left:
            self._body_left = left - size
            client.transport.write(data)
            return
        self._body_left = 0
        if size == left:
            client.transport.write(data)
            client.upstream_done(self, keep_alive=self._body_keep_alive)
        else:  # more than Content-Length said: out of sync, so the connection is not reused
            client.transport.write(data[:left])
            client.upstream_done(self, keep_alive=False)

    def connection_lost(self, exc: Exception | None) -> None:
        self._deadlines.discard(self)
        self.pool.forget(self)
        if self.tunnel is not None:
            self.tunnel.close()
        elif self.client is not None:
            self.client.upstream_lost(self)

    def pause_writing(self) -> None:
        if self.client is not None:
            self.client.pause_for_upstream()

    def resume_writing(self) -> None:
        if self.client is not None:
            self.client.resume_for_upstream()

    def on_deadline(self) -> None:
        if self.client is not None and self.exchange is not None and not self.exchange.response_started:
            seconds = self._options.response_header_timeout
            self.client.upstream_failed(
                self, 504, f"upstream {self.pool.server} did not answer within {seconds:g}s"
            )
        elif self.client is None:
            self.transport.close()  # idle in the pool for too long

    # -- parser callbacks -------------------------------------------------------------------
    # No on_status: httptools skips callbacks a protocol does not define, and the reason phrase
    # is not forwarded (the status table's is sent, as Traefik does).
    def on_message_begin(self) -> None:
        if self._ended:
            # More after a complete final response, in the same read (a body longer than its
            # Content-Length, a response nobody asked for): the connection is out of sync with the
            # server. Whoever has it now (it went back to the pool, and a pipelined request may
            # have taken it already) must not read these bytes as its own response: close it.
            self.transport.close()
            raise _StopParsing

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._status = status = self.parser.get_status_code()
        headers, self._headers = self._headers, []
        client = self.client
        if client is None:  # a response after the exchange ended: nobody asked for it
            self.transport.close()  # out of sync with the server: never reused
            raise _StopParsing
        self.deadline = 0.0
        route = self.exchange.route if self.exchange is not None else None
        if route is not None and route.response is not None:  # a headers middleware's response edits
            for edits in route.response:
                headers = edits.apply(headers)
        client.upstream_head(self, status, headers)
        if status >= 200 and self.exchange is not None and self.exchange.method == b"HEAD":
            # A response to HEAD has no body whatever its framing headers say (RFC 9110 §9.3.2);
            # the parser cannot be told so, so the message ends here and a fresh parser takes over.
            keep_alive = self.parser.should_keep_alive()
            self.parser = HttpResponseParser(self)
            self._fresh = True
            client.upstream_done(self, keep_alive=keep_alive)
            raise _StopParsing

    def on_body(self, body: bytes) -> None:
        if self.client is not None:
            self.client.upstream_body(body)

    def on_message_complete(self) -> None:
        self._fresh = True
        trailers = self._headers  # what on_header gave after the head: a chunked body's trailers
        if trailers:
            self._headers = []  # never carried to the next response
            if self.client is not None and self._status >= 200:
                # passed on as h2c's are: a client that sent `TE: trailers` was promised them
                self.client.upstream_trailers(self, trailer_fields(trailers))
        if self._status < 200 or self.client is None:
            return  # an interim response (100 Continue, 103) or a 101 about to become a tunnel
        self._ended = True  # the rest of this read, if any, belongs to no exchange
        self.client.upstream_done(self, keep_alive=self.parser.should_keep_alive())

    # -- used by the client connection -------------------------------------------------------
    def attach(self, client: ExchangeOwner, exchange: Exchange) -> None:
        self.client = client
        self.exchange = exchange
        self.deadline = self._deadlines.now + self._options.response_header_timeout

    def detach(self) -> None:
        self.client = None
        self.exchange = None
        self.reused = True
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
