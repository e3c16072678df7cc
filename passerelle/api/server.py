"""A small HTTP/1.1 server for the API: GET and HEAD, one handler per path, bounded requests.

Handlers are looked up by the exact path, then by the path's parent with a trailing slash (a
prefix route such as `/dashboard/` or `/api/http/routers/`), whose handler reads `Request.tail`,
the percent-decoded rest. A handler returns an `Answer`, or `Answer.after(work)` for work kept off
the event loop (explain builds its tables in a thread). Anything but GET or HEAD on a known path is
`405` with `Allow`; a request the parser refuses, an HTTP/1.1 request without Host and one with two
Host headers are `400` (RFC 9112 §3.2), a longer request line `414`, more header bytes or a longer
head `431`, and each closes the connection. The head is measured as it arrives, before httptools
has finished any header, so a header value that never ends is cut at `MAX_HEAD` bytes.

Keep-alive and pipelining follow the client (`Connection`, HTTP/1.0 or 1.1). Pipelined requests
wait parsed, in order, and are answered one at a time while the transport takes writes: when its
buffer is full (`pause_writing`) no answer is made and the socket is not read until it drains, so a
client that sends and never reads holds at most one answer beyond the buffer. A connection with no
complete request for `IDLE_TIMEOUT` seconds is closed; past `MAX_CONNECTIONS` open connections a new
one is answered 503 and closed.

Which requests are answered at all (the loopback Host check against DNS rebinding, the Host rules,
the connection limit) is admission.py's.

Actions (POST, such as `/api/drain`) change the process's state, so they are answered only to a
peer on this host (admission.from_this_host) that sends the header `X-Passerelle-Action: 1`,
and never to a browser (a request with an `Origin` header: a page could otherwise post a form to
127.0.0.1; a form cannot set a custom header, and a script that does needs a CORS preflight this
server never grants).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import parse_qs, unquote

from httptools import HttpParserError, HttpParserUpgrade, HttpRequestParser, parse_url

from passerelle.api.admission import (
    MAX_CONNECTIONS,
    Slots,
    from_this_host,
    host_refusal,
    is_loopback_address,
    loopback_host,
)
from passerelle.api.messages import Answer as Answer
from passerelle.api.messages import Handler as Handler
from passerelle.api.messages import Request as Request

log = logging.getLogger("passerelle.api")

MAX_TARGET = 8192  # bytes of request-target: longer is 414
MAX_HEADERS = 32768  # bytes of header names and values: more is 431
MAX_HEAD = 65536  # bytes of a whole head, line ends included, counted as it arrives: more is 431
MAX_BODY = 65536  # bytes of a request body (GET and HEAD carry none): more closes the connection
IDLE_TIMEOUT = 30.0  # seconds a connection may go without completing a request
_SLICE = 8192  # bytes fed to the parser at a time: the head is measured to within this
LINGER = 2.0  # seconds a refused request's connection stays half-open, reading what is still sent
LINGER_BYTES = 1 << 20  # bytes read and dropped in that time, at most
ACTION_HEADER = "X-Passerelle-Action"  # must be "1" on a POST action


@dataclass(frozen=True, slots=True)
class _Asked:
    """A parsed request waiting for its answer (pipelined behind others, or the transport full)."""

    method: bytes
    url: bytes
    host: bytes
    hosts: int  # Host header lines
    origin: bool  # an Origin header: a browser sent it
    action_header: bool  # X-Passerelle-Action: 1
    keep_alive: bool
    http10: bool


class ApiProtocol(asyncio.Protocol):
    def __init__(
        self,
        routes: Mapping[str, Handler],
        *,
        loopback_only: bool,
        actions: Mapping[str, Handler] | None = None,
        slots: Slots | None = None,
    ) -> None:
        self._routes = routes
        self._actions = actions or {}
        self._origin = False
        self._loopback_only = loopback_only
        self._slots = slots
        self._counted = False
        self._action_header = False
        self._parser = HttpRequestParser(self)
        self._url = b""
        self._in_head = False  # from message begin to headers complete
        self._head_bytes = 0  # bytes of the head in progress, as received
        self._header_bytes = 0
        self._body_bytes = 0
        self._host = b""
        self._hosts = 0
        self._queue: deque[_Asked | Answer] = deque()  # an Answer: the last one (an error), then close
        self._final = False  # nothing more is parsed: close once the queue is answered
        self._writing_paused = False
        self._reading_paused = False
        self._pending: asyncio.Future[Answer] | None = None  # an async handler's answer, awaited
        self._lingering = -1  # bytes dropped after a refusal, once lingering (-1: not)
        self._closed = False
        self._timer: asyncio.TimerHandle | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if self._slots is not None:
            self._counted = self._slots.take()
            if not self._counted:
                self._final = True
                busy = Answer(503, b"too many API connections\n")
                self._write(busy, keep_alive=False, http10=False, linger=True)  # it may be sending
                return
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if self._counted and self._slots is not None:
            self._counted = False
            self._slots.give_back()
        if self._timer is not None:
            self._timer.cancel()
        if self._pending is not None:
            self._pending.cancel()

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._drain()

    def data_received(self, data: bytes) -> None:
        if self._lingering >= 0:
            self._lingering += len(data)
            if self._lingering > LINGER_BYTES:
                self._close()
            return
        if self._closed or self._final:
            return
        view = memoryview(data)
        for start in range(0, len(view), _SLICE):
            piece = view[start : start + _SLICE]
            try:
                self._parser.feed_data(piece)
            except HttpParserUpgrade:  # answered as any request; the protocol switch is not made
                self._final = True
            except HttpParserError as e:
                # httptools wraps what a callback raises (HttpParserCallbackError, the cause as context)
                status = e.__context__.status if isinstance(e.__context__, _TooLarge) else 400
                self._stop(status)
            if self._final:
                break
            if self._in_head:  # a head still arriving: count it before the parser buffers more
                self._head_bytes += len(piece)
                if self._head_bytes > MAX_HEAD:
                    self._stop(431)
                    break
        self._drain()

    # -- parser callbacks ---------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._url = b""
        self._in_head = True
        self._head_bytes = self._header_bytes = self._body_bytes = self._hosts = 0
        self._host = b""
        self._origin = self._action_header = False

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > MAX_TARGET:
            raise _TooLarge(414)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > MAX_HEADERS:
            raise _TooLarge(431)
        if name.lower() == b"host":
            self._host = value
            self._hosts += 1
        elif name.lower() == b"origin":
            self._origin = True
        elif name.lower() == ACTION_HEADER.lower().encode() and value.strip() == b"1":
            self._action_header = True

    def on_headers_complete(self) -> None:
        self._in_head = False

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > MAX_BODY:
            raise _TooLarge(413)

    def on_message_complete(self) -> None:
        if self._final:
            return
        keep_alive = self._parser.should_keep_alive()
        http10 = self._parser.get_http_version() == "1.0"
        self._queue.append(
            _Asked(
                self._parser.get_method(),
                self._url,
                self._host,
                self._hosts,
                self._origin,
                self._action_header,
                keep_alive,
                http10,
            )
        )
        if not keep_alive:
            self._final = True  # what follows a `Connection: close` request is not read
        self._arm()

    # -- answering, in order, while the transport takes writes --------------------------------
    def _stop(self, status: int) -> None:
        """A request that cannot be read: answered `status` after those before it, then closed."""
        self._final = True
        self._queue.append(Answer(status, f"{HTTPStatus(status).phrase}\n".encode()))

    def _drain(self) -> None:
        if self._lingering >= 0:
            return
        while self._queue and not (self._writing_paused or self._pending or self._closed):
            asked = self._queue.popleft()
            if isinstance(asked, Answer):
                self._write(asked, keep_alive=False, http10=False, linger=True)
                return
            refusal = host_refusal(asked.hosts, http10=asked.http10)
            if refusal is not None:  # a request framed wrong: answered, and nothing after it read
                self._final = True
                bad = Answer(400, f"{refusal}\n".encode())
                self._write(bad, keep_alive=False, http10=asked.http10, linger=True)
                return
            keep_alive = asked.keep_alive and not (self._final and not self._queue)
            answer = self._answer(asked)
            if answer.later is None:
                self._write(answer, keep_alive=keep_alive, http10=asked.http10, head=asked.method == b"HEAD")
                continue
            self._pending = asyncio.ensure_future(answer.later)
            self._pending.add_done_callback(
                functools.partial(self._answered, asked=asked, keep_alive=keep_alive)
            )
        if self._closed:
            return
        if self._queue or self._pending:
            if not self._reading_paused and self.transport is not None:
                self._reading_paused = True
                self.transport.pause_reading()
        elif self._final:
            self._close()
        elif self._reading_paused and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()

    def _answered(self, done: asyncio.Future[Answer], *, asked: _Asked, keep_alive: bool) -> None:
        self._pending = None
        if done.cancelled() or self._closed:
            return
        error = done.exception()
        if error is not None:
            log.error("api handler failed for %s", asked.url[:200].decode("latin-1"), exc_info=error)
            answer = Answer(500, b"internal error, see the log\n")
        else:
            answer = done.result()
        self._write(answer, keep_alive=keep_alive, http10=asked.http10, head=asked.method == b"HEAD")
        self._drain()

    def _answer(self, asked: _Asked) -> Answer:
        try:
            return self._route(asked)
        except Exception:
            log.exception("api handler failed for %s", asked.url[:200].decode("latin-1"))
            return Answer(500, b"internal error, see the log\n")

    def _route(self, asked: _Asked) -> Answer:
        # Browsers always send Host, so a request without one (HTTP/1.0 tools) is no rebinding.
        if self._loopback_only and asked.host and not loopback_host(asked.host):
            return Answer(421, b"this API answers only requests for localhost or a loopback address\n")
        try:
            url = parse_url(asked.url)
        except HttpParserError:
            return Answer(400, b"malformed request target\n")
        raw_path = (url.path or b"/").decode("latin-1")
        action = self._actions.get(raw_path)
        if asked.method == b"POST" and action is not None:
            if asked.origin or self.transport is None or not from_this_host(self.transport):
                return Answer(403, b"actions are taken only from this host, and not from a browser\n")
            if not asked.action_header:
                return Answer(403, f"an action needs the header {ACTION_HEADER}: 1\n".encode())
            return action(Request(method="POST", path=raw_path))
        handler, tail = self._routes.get(raw_path), ""
        if handler is None:
            prefix = raw_path[: raw_path.rfind("/") + 1]
            handler = self._routes.get(prefix) if 1 < len(prefix) < len(raw_path) else None
            if handler is not None:
                tail = unquote(raw_path[len(prefix) :])
        if handler is None:
            return Answer(404, b"404 page not found\n")
        if asked.method not in (b"GET", b"HEAD"):
            allow = "GET, HEAD, POST" if raw_path in self._actions else "GET, HEAD"
            return Answer(405, b"method not allowed\n", headers=(("Allow", allow),))
        query = parse_qs((url.query or b"").decode("latin-1"), keep_blank_values=True)
        return handler(Request(method=asked.method.decode(), path=raw_path, query=query, tail=tail))

    def _write(
        self, answer: Answer, *, keep_alive: bool, http10: bool, head: bool = False, linger: bool = False
    ) -> None:
        if self.transport is None or self._closed:
            return
        reason = HTTPStatus(answer.status).phrase
        lines = [
            f"HTTP/1.1 {answer.status} {reason}",
            f"Content-Type: {answer.content_type}",
            f"Content-Length: {len(answer.body)}",
            "Cache-Control: no-store",
            "X-Content-Type-Options: nosniff",
        ]
        lines += [f"{name}: {value}" for name, value in answer.headers]
        if not keep_alive:
            lines.append("Connection: close")
        elif http10:
            lines.append("Connection: keep-alive")
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode() + (b"" if head else answer.body))
        if linger and self.transport.can_write_eof():
            self._linger()
        elif not keep_alive:
            self._close()

    def _linger(self) -> None:
        """Close a refused request's connection gently: end our side, then read and drop what the
        client is still sending for a while (as nginx's lingering_close). Closing at once with its
        bytes unread would reset the connection, and the client might never read the refusal."""
        assert self.transport is not None
        self._lingering = 0
        self.transport.write_eof()
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(LINGER, self._close)

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(IDLE_TIMEOUT, self._close)

    def _close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        if self.transport is not None:
            self.transport.close()


class _TooLarge(Exception):
    def __init__(self, status: int) -> None:
        self.status = status


async def serve_api(
    host: str,
    port: int,
    routes: Mapping[str, Handler],
    actions: Mapping[str, Handler] | None = None,
    *,
    max_connections: int = MAX_CONNECTIONS,
) -> asyncio.Server:
    """`actions`: POST handlers (see the module's docstring for who may call them)."""
    loop = asyncio.get_running_loop()
    loopback_only = is_loopback_address(host)
    slots = Slots(max_connections)
    return await loop.create_server(
        lambda: ApiProtocol(routes, loopback_only=loopback_only, actions=actions, slots=slots),
        host or None,
        port,
        reuse_address=True,
    )
