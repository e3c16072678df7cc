"""HTTP/2 header fields to HTTP/1.1 heads and back, for streams proxied to HTTP/1.1 upstreams (sans-IO).

A request's fields become an HTTP/1.1 request head: `:method` and `:path` the request line,
`:authority` the Host header (it wins over a `host` field, RFC 9113 §8.3.1), the other pseudo-header
fields dropped, and the same headers dropped and written afresh as on the HTTP/1.1 path
(headers.REQUEST_HEADERS: hop-by-hop, X-Forwarded-*, client-certificate headers). The h2 library
has already refused the connection-specific fields RFC 9113 §8.2.2 forbids, and any `te` but
`trailers`; `te: trailers` goes upstream as `TE: trailers` (gRPC servers need it; Go's
ReverseProxy, Traefik's, forwards it too).
Cookie crumbs arrive joined (§8.2.3, the library's header normalisation). A body without
`content-length` is sent chunked. The upstream's response head goes the other way: lower-cased
names, hop-by-hop headers and those Connection names dropped, `:status` first.
"""

from __future__ import annotations

from passerelle.http.headers import (
    HOP_BY_HOP,
    HOST,
    LENGTH,
    REQUEST_HEADERS,
    REQUEST_ID,
    REQUEST_ID_LINE,
    TE,
    TE_TRAILERS,
    RequestIds,
    forwarded_port,
    response_fields,
    valid_request_id,
)

Fields = list[tuple[bytes, bytes]]
_CRLF = b"\r\n"
# Go's transport (Traefik's) writes `Content-Length: 0` for these methods when there is no body:
# some servers answer 411 to a bodiless POST without it.
_LENGTH_EXPECTED = frozenset({b"POST", b"PUT", b"PATCH"})
_NO_BODY_STATUS = frozenset({204, 304})


class Refused(Exception):
    """A request passerelle answers itself with `status` (and `detail` as the body)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class RequestHead:
    """An HTTP/2 request as the HTTP/1.1 upstream will see it."""

    __slots__ = ("method", "target", "host", "head", "chunked")

    def __init__(self, method: bytes, target: bytes, host: bytes, head: bytes, chunked: bool) -> None:
        self.method = method
        self.target = target
        self.host = host
        self.head = head  # the whole HTTP/1.1 head, blank line included
        self.chunked = chunked  # the body is sent with chunked framing


def request_head(
    fields: Fields,
    *,
    ended: bool,
    forwarded: bytes,
    default_port: bytes,
    max_request_line: int,
    max_header_bytes: int,
    request_ids: RequestIds | None = None,
) -> RequestHead:
    """The HTTP/1.1 head for a request's fields; `ended`: the request has no body (END_STREAM).

    `forwarded` is the connection's X-Forwarded-For/X-Real-Ip/X-Forwarded-Proto lines
    (headers.forwarded_static); X-Forwarded-Host and -Port are added from the authority, as
    ClientConnection._forwarded_for does, and X-Request-Id: the first valid `x-request-id` field,
    else one of `request_ids` (if given). Raises Refused for requests that get a local answer.
    """
    method = target = authority = host = None
    request_id = b""
    lines: list[bytes] = []
    has_length = False
    size = 0
    for name, value in fields:
        size += len(name) + len(value) + 4
        if name[:1] == b":":
            if name == b":method":
                method = value
            elif name == b":path":
                target = value
            elif name == b":authority":
                authority = value
            continue  # :scheme (and :protocol) are not forwarded: the upstream scheme is ours
        if name in REQUEST_HEADERS:
            kind = REQUEST_HEADERS[name]
            if kind == HOST:
                host = value
                continue
            if kind == TE:  # the library lets `te: trailers` alone through (RFC 9113 §8.2.2)
                lines.append(TE_TRAILERS)
                continue
            if kind == REQUEST_ID:
                if not request_id and valid_request_id(value):
                    request_id = value
                continue
            if kind != LENGTH:
                continue
            has_length = True
        lines += (name, b": ", value, _CRLF)
    if method == b"CONNECT":
        raise Refused(405, "CONNECT is not supported: this is a reverse proxy")
    if method is None or not target:
        raise Refused(400, "malformed request: :method or :path missing")
    if b" " in method or b" " in target:
        # The library refuses CR, LF and NUL in any field (RFC 9113 §8.2.1); a space would still
        # make a different request line out of these two.
        raise Refused(400, "malformed request: a space in :method or :path")
    if len(target) > max_request_line:
        raise Refused(414, "request line too long")
    if size > max_header_bytes:
        raise Refused(431, "request header fields too large")
    host = authority or host
    if not host:
        raise Refused(400, "missing :authority and Host")
    port = default_port if host.find(b":") < 0 else forwarded_port(host, default_port)
    chunked = False
    if ended:
        if not has_length and method in _LENGTH_EXPECTED:
            lines.append(b"content-length: 0\r\n")
    elif not has_length:
        chunked = True
        lines.append(b"Transfer-Encoding: chunked\r\n")
    identified: tuple[bytes, ...] = ()
    if request_id:
        identified = (REQUEST_ID_LINE, request_id)
    elif request_ids is not None:
        identified = request_ids.take()
    head = b"".join(
        (
            method, b" ", target, b" HTTP/1.1\r\nHost: ", host, _CRLF,
            *lines,
            forwarded, b"X-Forwarded-Host: ", host, b"\r\nX-Forwarded-Port: ", port, *identified, _CRLF,
            _CRLF,
        )
    )  # fmt: skip
    return RequestHead(method, target, host, head, chunked)


class ResponseHead:
    """An HTTP/1.1 response head as HTTP/2 fields, and how its body ends."""

    __slots__ = ("fields", "ended", "close_delimited")

    def __init__(self, fields: Fields, ended: bool, close_delimited: bool) -> None:
        self.fields = fields
        self.ended = ended  # no body follows: END_STREAM goes with the HEADERS frame
        self.close_delimited = close_delimited  # the body ends when the upstream closes (RFC 9112 §6.3)


def response_head(status: int, headers: Fields, *, head_request: bool) -> ResponseHead:
    """HTTP/2 fields for an upstream response head (also 1xx interim ones)."""
    kept, length_known, chunked, _ = response_fields(headers)
    fields: Fields = [(b":status", b"%d" % status), *((lname, value) for _, lname, value in kept)]
    ended = head_request or status in _NO_BODY_STATUS
    return ResponseHead(fields, ended, not (ended or length_known or chunked))


def local_answer(response: bytes) -> tuple[Fields, bytes]:
    """A complete HTTP/1.1 response passerelle wrote (errors.canned, a redirect) as fields and body."""
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.split(_CRLF)
    fields: Fields = [(b":status", lines[0].split(b" ", 2)[1])]
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        lname = name.lower()
        if lname not in HOP_BY_HOP:
            fields.append((lname, value.strip()))
    return fields, body
