"""An upstream HTTP/1.1 request head as HTTP/2 fields, for h2c upstreams, and trailers back (sans-IO).

Both client protocols build one HTTP/1.1 head per request for the upstream (proxy/connection.py,
http/h2fields.py): X-Forwarded-*, client-certificate lines and dropped headers are settled there,
once, whatever the upstream speaks. An h2c upstream takes that head and turns it into fields here:
the request line into `:method` and `:path`, Host into `:authority`, `:scheme` http, names
lower-cased. Every request carries `:authority`: without a Host (HTTP/1.0) it is the server's
`host:port`, as Go's transport does. Each field is checked here, before the h2 library sees it:
h2 updates its HPACK table as it encodes and only then refuses a bad field, which would leave the
shared connection's compressor out of step with the server's. The framing lines passerelle wrote itself (`Transfer-Encoding: chunked`, and
`Connection`/`Upgrade` of a tunnel) go, since HTTP/2 frames bodies itself and has no such fields
(RFC 9113 §8.2.2). `te: trailers` stays: gRPC servers need it. `ChunkReader` takes off the chunked
framing passerelle wrote around a body of unknown length. Response trailers go to HTTP/2 clients
as fields and to HTTP/1.1 clients as the chunked body's trailer section (RFC 9112 §7.1.2).
"""

from __future__ import annotations

import re

from passerelle.http.headers import HOP_BY_HOP

Fields = list[tuple[bytes, bytes]]
_CRLF = b"\r\n"
# Fields that describe a message's framing, routing, authentication, caching or content, never a
# trailer (RFC 9110 §6.5.1 and the fields it points to there).
_NOT_TRAILERS = HOP_BY_HOP | {
    b"content-length", b"content-encoding", b"content-type", b"content-range", b"host",
    b"cache-control", b"expect", b"max-forwards", b"pragma", b"range", b"authorization",
    b"proxy-authorization", b"www-authenticate", b"proxy-authenticate", b"set-cookie", b"cookie",
    b"location", b"retry-after", b"age", b"expires", b"date", b"vary", b"warning",
}  # fmt: skip
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-z]+\Z")  # a lower-case field name (RFC 9110 §5.6.2)
_NOT_IN_VALUE = re.compile(rb"[\x00\r\n]|\A[ \t]|[ \t]\Z")  # RFC 9113 §8.2.1


class BadField(ValueError):
    """A field HTTP/1.1 carried that HTTP/2 cannot: the request does not go (502, as Go's transport)."""


class UpstreamRequest:
    """A request head as HTTP/2 fields, and how its body is framed on the way in."""

    __slots__ = ("fields", "length", "chunked", "upgrade")

    def __init__(self, fields: Fields, length: int, chunked: bool, upgrade: bool) -> None:
        self.fields = fields
        self.length = length  # Content-Length (0: none, or no body)
        self.chunked = chunked  # the body comes in passerelle's chunked framing
        self.upgrade = upgrade  # a tunnel (WebSocket) was asked for: HTTP/2 cannot carry it this way


def upstream_request(head: bytes, authority: bytes) -> UpstreamRequest:
    """The fields of a head passerelle wrote (request line, `Name: value` lines, blank line);
    `authority` is the server's `host:port`, for a request without Host. Raises BadField."""
    lines = head.split(_CRLF)
    parts = lines[0].split(b" ", 2)
    if len(parts) != 3:
        raise BadField(f"not a request line: {lines[0][:40]!r}")
    method, target, _ = parts
    if target[:1] != b"/" and target != b"*":
        # absolute-form (RFC 9112 §3.2.2), as a client may send to a proxy: :path is origin-form,
        # the query kept (RFC 9113 §8.3.1)
        rest = target.partition(b"://")[2]
        start = min((at for at in (rest.find(b"/"), rest.find(b"?")) if at >= 0), default=-1)
        target = b"/" if start < 0 else rest[start:] if rest[start] == 0x2F else b"/" + rest[start:]
    fields: Fields = [(b":method", method), (b":scheme", b"http"), (b":authority", b""), (b":path", target)]
    length = 0
    chunked = upgrade = False
    for line in lines[1:]:
        if not line:
            break
        name, _, value = line.partition(b":")
        name = name.lower()
        value = value.strip(b" \t")
        if _TOKEN.match(name) is None or _NOT_IN_VALUE.search(value) is not None:
            raise BadField(f"field {name[:40]!r} cannot be sent over HTTP/2")
        if name == b"host":
            fields[2] = (b":authority", value)
            continue
        if name in HOP_BY_HOP:  # all of RFC 9113 §8.2.2's connection-specific fields among them
            if name == b"transfer-encoding":
                chunked = True
            elif name == b"upgrade":
                upgrade = True
            elif name == b"te":
                fields.append((b"te", b"trailers"))  # passerelle writes no other TE (headers.py)
            continue
        if name == b"content-length":
            length = int(value)  # llhttp or the h2 library has checked it is digits
        fields.append((name, value))
    if not fields[2][1]:
        # No Host (HTTP/1.0), or an empty one: the server's own name, as Go's transport sends.
        # (h2 refuses a request with neither :authority nor host, after encoding the others.)
        fields[2] = (b":authority", authority)
    return UpstreamRequest(fields, length, chunked, upgrade)


def status_and_fields(headers: Fields) -> tuple[int, Fields]:
    """(status, the header fields) of an HTTP/2 response head: pseudo-header fields leave."""
    status = 0
    kept: Fields = []
    for name, value in headers:
        if name[:1] == b":":
            if name == b":status":
                status = int(value)
            continue
        kept.append((name, value))
    return status, kept


def trailer_fields(trailers: Fields) -> Fields:
    """The trailer fields to pass on (lower-cased): none that frame, route or belong to a hop."""
    return [
        (lname, value)
        for name, value in trailers
        if name[:1] != b":" and (lname := name.lower()) not in _NOT_TRAILERS
    ]


def last_chunk(trailers: Fields) -> bytes:
    """The end of a chunked body carrying `trailers` (RFC 9112 §7.1: last-chunk, trailer section)."""
    return b"".join((b"0\r\n", *(b"%s: %s\r\n" % field for field in trailers), _CRLF))


class ChunkReader:
    """Takes passerelle's own chunked framing (`%x CRLF data CRLF`, then `0 CRLF CRLF`) off a body.

    The framing comes from proxy/connection.py and proxy/h2.py, not from a client: it is well
    formed, but it may be split across writes anywhere.
    """

    __slots__ = ("_left", "_skip", "_line", "done")

    def __init__(self) -> None:
        self._left = 0  # data bytes of the current chunk still to come
        self._skip = 0  # bytes of the CRLF after a chunk's data still to come
        self._line = b""  # a size line split across writes
        self.done = False  # the last chunk was read

    def feed(self, data: bytes) -> list[bytes]:
        """The body bytes in `data`, in order."""
        out: list[bytes] = []
        i, n = 0, len(data)
        while i < n and not self.done:
            if self._left:
                take = min(self._left, n - i)
                out.append(data if take == n else data[i : i + take])
                i += take
                self._left -= take
                if not self._left:
                    self._skip = 2
            elif self._skip:
                take = min(self._skip, n - i)
                i += take
                self._skip -= take
            else:
                end = data.find(b"\n", i)
                if end < 0:
                    self._line += data[i:]
                    break
                line, self._line = self._line + data[i:end], b""
                i = end + 1
                size = int(line.strip(), 16)
                if size:
                    self._left = size
                else:
                    self.done = True  # what follows is the final CRLF: nothing of the body
        return out
