"""Which headers a proxy must not forward, and the X-Forwarded-* set it writes instead.

RFC 9110 §7.6.1: Connection and the headers it names are hop-by-hop, as are Keep-Alive, TE,
Trailer, Transfer-Encoding (re-framed by the proxy), Upgrade (re-added for tunnels) and, by long
practice, Proxy-*; a TE that lists `trailers` goes upstream as `TE: trailers` (gRPC needs it), as
Go's ReverseProxy (Traefik's) sends it. X-Forwarded-* and X-Real-Ip from clients are not trusted: they are dropped and
written afresh, as Traefik does without `forwardedHeaders.trustedIPs`. So are the client-certificate
headers of every compatibility level (`passerelle.tls.certinfo.STRIPPED`), on every route, so that a
backend can trust them whenever they arrive. Both sets are dropped in every spelling that mixes `-`
and `_`, since CGI and WSGI servers fold both into one variable name (Traefik's `isManagedXHeader`
compares names with `_` read as `-`). X-Request-Id is taken out and written again, once, in one
spelling: the client's if valid (`valid_request_id`), else one made here (`RequestIds`).
"""

from __future__ import annotations

from itertools import product
from typing import Final

from passerelle.tls.certinfo import STRIPPED as CLIENT_CERT


def _spellings(name: bytes) -> set[bytes]:
    """`name` with each `-` written as `-` or `_`: x-real-ip, x_real-ip, x-real_ip, x_real_ip."""
    parts = name.replace(b"_", b"-").split(b"-")
    return {b"".join(p for pair in zip(parts, seps, strict=False) for p in pair) + parts[-1]
            for seps in product((b"-", b"_"), repeat=len(parts) - 1)}  # fmt: skip


HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
FORWARDED = frozenset(
    {
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"x-forwarded-port",
        b"x-forwarded-server",
        b"x-real-ip",
    }
)
IDENTITY = frozenset(spelling for name in FORWARDED | CLIENT_CERT for spelling in _spellings(name))
REQUEST_DROP = HOP_BY_HOP | IDENTITY
RESPONSE_DROP = HOP_BY_HOP

# What the proxy does with a header, by lower-cased name: one dict lookup per header on the hot
# path. Names absent from a table are forwarded as they are.
DROP, HOST, LENGTH, CHUNKED, CONNECTION, UPGRADE, TE, REQUEST_ID = range(8)
_SPECIAL = {
    b"connection": CONNECTION,
    b"transfer-encoding": CHUNKED,
    b"upgrade": UPGRADE,
    b"content-length": LENGTH,
}
REQUEST_HEADERS = (
    {name: DROP for name in REQUEST_DROP}
    | _SPECIAL
    | {
        b"host": HOST,
        b"te": TE,
        b"x-request-id": REQUEST_ID,
    }
)
RESPONSE_HEADERS = {name: DROP for name in RESPONSE_DROP} | _SPECIAL

# Connection tokens that name no extra header to drop: the common case costs one set lookup. `te`
# is hop-by-hop already; a client that sends `TE: trailers` must also send `Connection: TE` (RFC
# 9110 §10.1.4), which must not drop the `TE: trailers` line the proxy writes itself.
_PLAIN_CONNECTION_TOKENS = frozenset({b"keep-alive", b"close", b"upgrade", b"te"})
# The TE line sent upstream when the client's TE lists `trailers`, as Go's ReverseProxy (Traefik's)
# does: gRPC servers want it. Written in this one spelling, so it can be looked for in a head.
TE_TRAILERS = b"TE: trailers\r\n"


_NOTHING: frozenset[bytes] = frozenset()
# A client must not get these dropped by naming them in Connection: the proxy forwards the body
# framed by them, so dropping Content-Length would smuggle the body in as a second request.
_FRAMING = frozenset({b"content-length", b"transfer-encoding", b"host"})
_PLAIN_CONNECTION_VALUES = frozenset(
    {b"keep-alive", b"Keep-Alive", b"close", b"Close", b"upgrade", b"Upgrade", b"Keep-alive"}
)


def connection_named(value: bytes) -> frozenset[bytes]:
    """The header names a Connection header value asks to drop, beyond the standard hop-by-hop ones."""
    if value in _PLAIN_CONNECTION_VALUES:
        return _NOTHING  # nearly every Connection header: no parsing
    tokens = {t.strip().lower() for t in value.split(b",")}
    return frozenset(t for t in tokens if t and t not in _PLAIN_CONNECTION_TOKENS and t not in _FRAMING)


def accepts_trailers(te: bytes) -> bool:
    """Does a TE header value list the `trailers` token (RFC 9110 §10.1.4)?"""
    return any(part.partition(b";")[0].strip().lower() == b"trailers" for part in te.split(b","))


def forwarded_static(client_ip: bytes, scheme: bytes) -> bytes:
    """The X-Forwarded-* lines that are the same for every request on one client connection."""
    return b"".join(
        (
            b"X-Forwarded-For: ", client_ip, b"\r\n",
            b"X-Real-Ip: ", client_ip, b"\r\n",
            b"X-Forwarded-Proto: ", scheme, b"\r\n",
        )
    )  # fmt: skip


def forwarded_port(host: bytes, default: bytes) -> bytes:
    """X-Forwarded-Port: the port in the Host header, else the scheme's default (Traefik's rule)."""
    colon = host.rfind(b":")
    if colon < 0 or host.endswith(b"]"):
        return default
    return host[colon + 1 :]


# (name as received, its lower-cased form, value)
Kept = list[tuple[bytes, bytes, bytes]]


def response_fields(headers: list[tuple[bytes, bytes]]) -> tuple[Kept, bool, bool, bytes | None]:
    """An upstream response's header lines to pass on, and its framing, for HTTP/1.1 and HTTP/2.

    Returns (kept lines, Content-Length present, chunked, Upgrade value). Hop-by-hop lines and
    those a Connection header names are left out; Content-Length stays, as it is forwarded.
    """
    kept: Kept = []
    connection = upgrade = None
    length_known = chunked = False
    for name, value in headers:
        lname = name.lower()
        if lname in RESPONSE_HEADERS:
            kind = RESPONSE_HEADERS[lname]
            if kind == LENGTH:
                length_known = True
            else:
                if kind == CHUNKED:
                    chunked = True
                elif kind == CONNECTION:
                    connection = value if connection is None else connection + b"," + value
                elif kind == UPGRADE:
                    upgrade = value
                continue
        kept.append((name, lname, value))
    if connection is not None:
        named = connection_named(connection)
        if named:
            kept = [line for line in kept if line[1] not in named]
    return kept, length_known, chunked, upgrade


# X-Request-Id (ingress-nginx's `$req_id`): a client's is kept when it is at most this long and
# of these characters (UUIDs, hex, base64, Heroku's and AWS's forms), so no id can break a log
# line or a header; any other is dropped, and one is made in its place when ids are generated.
REQUEST_ID_MAX = 200
_REQUEST_ID_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.:+/=@~"


def valid_request_id(value: bytes) -> bool:
    return 0 < len(value) <= REQUEST_ID_MAX and not value.translate(None, _REQUEST_ID_CHARS)


# The line passerelle writes, in this one spelling (a client's is dropped and written again), so
# the access log finds it in the head it sent (`request_id_in`): no CRLF can be inside a value.
REQUEST_ID_LINE = b"\r\nX-Request-Id: "
_LOWS: Final = tuple(b"%02x" % n for n in range(256))


class RequestIds:
    """Made request ids: `line` (the X-Request-Id line's start: the random prefix and a counter of
    14 hex digits) then one of 256 ready low parts (2 hex digits), 32 hex digits in all, nginx's
    `$request_id` shape. A request takes two existing pieces and allocates nothing (formatting
    bytes costs ~2,000 instructions); `take` gives both, rolling the counter every 256 ids."""

    __slots__ = ("line", "_low", "_prefix", "_high")

    def __init__(self, prefix: bytes) -> None:
        self._prefix = prefix
        self._high = 0
        self._low = 255  # the first take() wraps to 0, which rolls: that makes `line`
        self.line = b""

    def take(self) -> tuple[bytes, bytes]:
        """The next id: the line's start, then its last two digits."""
        low = self._low = (self._low + 1) & 255
        if not low:
            self.roll()
        return self.line, _LOWS[low]

    def roll(self) -> None:
        self._high += 1
        self.line = b"%s%s%014x" % (REQUEST_ID_LINE, self._prefix, self._high)


def request_id_in(head: bytes) -> bytes:
    """The X-Request-Id passerelle wrote in a request head it sent upstream; b"" if none."""
    at = head.find(REQUEST_ID_LINE)
    if at < 0:
        return b""
    start = at + len(REQUEST_ID_LINE)
    return head[start : head.find(b"\r\n", start)]
