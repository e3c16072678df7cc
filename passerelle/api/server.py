"""A small HTTP/1.1 server for the API: GET and HEAD, one handler per path, bounded requests.

Handlers are looked up by the exact path, then by the path's parent with a trailing slash (a
prefix route such as `/dashboard/` or `/api/http/routers/`), whose handler reads `Request.tail`,
the percent-decoded rest. Anything but GET or HEAD on a known path is `405` with `Allow`; a request
the parser refuses is `400`, a longer request line `414`, more header bytes `431`, and each closes
the connection. Keep-alive and pipelining follow the client (`Connection`, HTTP/1.0 or 1.1); a
connection with no complete request for `IDLE_TIMEOUT` seconds is closed.

Bound to loopback, the server answers only requests whose Host is a loopback name or address, so a
web page cannot read the API through DNS rebinding (a name of the attacker's that resolves to
127.0.0.1); bound elsewhere, any Host is accepted, as the operator chose.

Actions (POST, such as `/api/drain`) change the process's state, so they are answered only to a
peer on this host (a loopback address, or the very address the API listens on) and never to a
browser (a request with an `Origin` header: a page could otherwise post a form to 127.0.0.1).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, unquote

from httptools import HttpParserError, HttpParserUpgrade, HttpRequestParser, parse_url

log = logging.getLogger("passerelle.api")

MAX_TARGET = 8192  # bytes of request-target: longer is 414
MAX_HEADERS = 32768  # bytes of header names and values: more is 431
MAX_BODY = 65536  # bytes of a request body (GET and HEAD carry none): more closes the connection
IDLE_TIMEOUT = 30.0  # seconds a connection may go without completing a request


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: tuple[tuple[str, str], ...] = ()) -> Answer:
        return cls(status, json.dumps(data, indent=2).encode() + b"\n", "application/json", headers)

    @classmethod
    def error(cls, status: int, message: str) -> Answer:
        """A JSON error body, `{"message": ...}`, as Traefik's API answers."""
        return cls.json({"message": message}, status)


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    method: str
    path: str  # as sent (percent-encoded), without the query
    query: Mapping[str, list[str]] = field(default_factory=dict)
    tail: str = ""  # for a prefix route: the percent-decoded rest of the path after the prefix

    def arg(self, name: str, default: str = "") -> str:
        """The first value of query parameter `name`."""
        values = self.query.get(name)
        return values[0] if values else default


Handler = Callable[[Request], Answer]


def loopback_host(host: bytes) -> bool:
    """Whether a Host header names this machine: localhost (or a `.localhost` name, RFC 6761 §6.3),
    or a loopback address, with any port."""
    if host[:1] == b"[":
        name = host[1 : host.find(b"]")].decode("latin-1")
    else:
        name = host.partition(b":")[0].decode("latin-1").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class ApiProtocol(asyncio.Protocol):
    def __init__(
        self,
        routes: Mapping[str, Handler],
        *,
        loopback_only: bool,
        actions: Mapping[str, Handler] | None = None,
    ) -> None:
        self._routes = routes
        self._actions = actions or {}
        self._loopback_only = loopback_only
        self._origin = False
        self._parser = HttpRequestParser(self)
        self._url = b""
        self._header_bytes = 0
        self._body_bytes = 0
        self._host = b""
        self._header_name = b""
        self._closed = False
        self._timer: asyncio.TimerHandle | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        try:
            self._parser.feed_data(data)
        except HttpParserUpgrade:  # answered already (on_message_complete); the protocol switch is not
            self._close()
        except HttpParserError as e:
            # httptools wraps what a callback raises (HttpParserCallbackError, the cause as context)
            status = e.__context__.status if isinstance(e.__context__, _TooLarge) else 400
            self._write(Answer(status, f"{HTTPStatus(status).phrase}\n".encode()), keep_alive=False)

    # -- parser callbacks ---------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._url = b""
        self._header_bytes = self._body_bytes = 0
        self._host = self._header_name = b""
        self._origin = False

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
        elif name.lower() == b"origin":
            self._origin = True

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > MAX_BODY:
            raise _TooLarge(413)

    def on_message_complete(self) -> None:
        method = self._parser.get_method()
        keep_alive = self._parser.should_keep_alive()
        try:
            answer = self._answer(method)
        except Exception:
            log.exception("api handler failed for %s", self._url[:200].decode("latin-1"))
            answer = Answer(500, b"internal error, see the log\n")
        self._write(answer, keep_alive=keep_alive, head=method == b"HEAD")
        self._arm()

    # -- internals ------------------------------------------------------------------------------
    def _answer(self, method: bytes) -> Answer:
        # Browsers always send Host, so a request without one (HTTP/1.0 tools) is no rebinding.
        if self._loopback_only and self._host and not loopback_host(self._host):
            return Answer(421, b"this API answers only requests for localhost or a loopback address\n")
        try:
            url = parse_url(self._url)
        except HttpParserError:
            return Answer(400, b"malformed request target\n")
        raw_path = (url.path or b"/").decode("latin-1")
        action = self._actions.get(raw_path)
        if method == b"POST" and action is not None:
            if self._origin or not self._from_this_host():
                return Answer(403, b"actions are taken only from this host, and not from a browser\n")
            return action(Request(method="POST", path=raw_path))
        handler, tail = self._routes.get(raw_path), ""
        if handler is None:
            prefix = raw_path[: raw_path.rfind("/") + 1]
            handler = self._routes.get(prefix) if 1 < len(prefix) < len(raw_path) else None
            if handler is not None:
                tail = unquote(raw_path[len(prefix) :])
        if handler is None:
            return Answer(404, b"404 page not found\n")
        if method not in (b"GET", b"HEAD"):
            allow = "GET, HEAD, POST" if raw_path in self._actions else "GET, HEAD"
            return Answer(405, b"method not allowed\n", headers=(("Allow", allow),))
        query = parse_qs((url.query or b"").decode("latin-1"), keep_blank_values=True)
        request = Request(method=method.decode(), path=raw_path, query=query, tail=tail)
        return handler(request)

    def _from_this_host(self) -> bool:
        """The peer is a loopback address, or the address the API listens on (an API bound to the
        node's address, reached from the node itself)."""
        if self.transport is None:
            return False
        peer, local = self.transport.get_extra_info("peername"), self.transport.get_extra_info("sockname")
        try:
            address = ipaddress.ip_address(peer[0]) if peer else None
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if address is None:
            return False
        return address.is_loopback or (local is not None and peer[0] == local[0])

    def _write(self, answer: Answer, *, keep_alive: bool, head: bool = False) -> None:
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
        elif self._parser.get_http_version() == "1.0":
            lines.append("Connection: keep-alive")
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode() + (b"" if head else answer.body))
        if not keep_alive:
            self._close()

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


def is_loopback_address(host: str) -> bool:
    """Whether a listening host (from `api.address`) is loopback only; "" (all addresses) is not."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def serve_api(
    host: str, port: int, routes: Mapping[str, Handler], actions: Mapping[str, Handler] | None = None
) -> asyncio.Server:
    """`actions`: POST handlers (see the module's docstring for who may call them)."""
    loop = asyncio.get_running_loop()
    loopback_only = is_loopback_address(host)
    return await loop.create_server(
        lambda: ApiProtocol(routes, loopback_only=loopback_only, actions=actions),
        host or None,
        port,
        reuse_address=True,
    )
