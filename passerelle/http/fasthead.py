"""The common request and response heads, validated and taken whole in one pass, without llhttp.

Most requests a router sees are a head alone (GET, HEAD, DELETE …, no body) arriving in one read,
and most responses a Content-Length head with its body. For those the proxy needs neither llhttp
nor a callback per header: one scan over the bytes (compiled with mypyc: C loops over a bytes
buffer, a few instructions a byte) accepts a strict subset of RFC 9112 that llhttp accepts too,
with the same meaning — a method from METHODS, an origin-form target of visible ASCII, HTTP/1.1,
header names of tchar, values of VCHAR, obs-text, SP and HTAB, CRLF line ends, no obs-fold, one
head ending in the first empty line — and declines every header a proxy acts on: the full path's
own tables (REQUEST_HEADERS: hop-by-hop, X-Forwarded-*, framing, Upgrade, X-Request-Id, a second
Host; RESPONSE_HEADERS, less one Content-Length and one plain Connection) in any letter case. A
name's hash, taken as it is scanned, finds the few lines worth a closer look. The head is then
forwarded as it came, with X-Forwarded lines appended (request) or the Connection line cut
(response).

Anything else — another version or method, a body, bytes after the head (a pipelined request),
Host not first, a 1xx/204/304 status, an own reason phrase, no or two Content-Length, a
Connection that names headers — is declined, and the caller hands the same bytes to llhttp, the
full path. The short way is only taken where the full way would accept the same bytes and send
the same message: tests/unit/proxy/test_short_way.py checks both against llhttp. No parser state
is involved: llhttp never sees what the short way takes.
"""

from __future__ import annotations

from collections.abc import Iterable
from http import HTTPStatus
from typing import Final

from mypy_extensions import i64

from passerelle.http.headers import REQUEST_HEADERS, RESPONSE_HEADERS

# The methods a request may have on the short way: llhttp knows each (it refuses methods it does
# not know), none is CONNECT (405 on the full path), and without Content-Length or
# Transfer-Encoding (declined) none has a body (RFC 9112 §6.3).
METHODS: Final = frozenset({b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"TRACE"})

# The status lines passerelle sends: the reason phrase is its own, not the upstream's, as in Traefik.
STATUS_LINES = {s.value: b"HTTP/1.1 %d %s\r\n" % (s.value, s.phrase.encode()) for s in HTTPStatus}
# Those of responses with a body framed by Content-Length: 1xx, 204 and 304 are not here.
_BODY_STATUS_LINES: Final = {
    code: line for code, line in STATUS_LINES.items() if code >= 200 and code not in (204, 304)
}


def _table(allowed: Iterable[int], size: int = 256) -> bytes:
    """`size` bytes: 1 at the indexes in `allowed`, 0 elsewhere (looked up as table[byte])."""
    table = bytearray(size)
    for byte in allowed:
        table[byte] = 1
    return bytes(table)


_TCHAR: Final = _table(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
# A field value's bytes (RFC 9110 §5.5): VCHAR, obs-text, SP and HTAB; never CR, LF, NUL, DEL.
_VALUE: Final = _table([9, *range(0x20, 0x7F), *range(0x80, 0x100)])
# A Host value's (reg-name, IPv4, IP-literal in brackets, port); any other goes the full way.
_HOST: Final = _table(b"-._~:[]0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_LOWER: Final = bytes(c + 32 if 65 <= c <= 90 else c for c in range(256))
_HASH_BITS: Final = 0xFFF


def _hash(name: bytes) -> i64:
    """The hash the scan takes of a header name as it goes, the same for every letter case
    (`| 32` lower-cases ASCII letters; it merges a few other bytes too, which only costs a
    closer look at a name now and then)."""
    h: i64 = 0
    for c in name:
        h = (h * 31 + (c | 32)) & _HASH_BITS
    return h


def _hashes(names: Iterable[bytes]) -> bytes:
    """table[hash] is 1 where a name of `names` hashes: the lines to look at twice."""
    return _table({_hash(name) for name in names}, _HASH_BITS + 1)


_REQUEST_SPECIAL: Final = _hashes(REQUEST_HEADERS)
_RESPONSE_SPECIAL: Final = _hashes(RESPONSE_HEADERS)
_DECLINED: Final = (0, 0, 0, False, b"")


def _is(data: bytes, start: i64, end: i64, name: bytes) -> bool:
    """data[start:end] is `name` (lower-case) in some letter case."""
    if end - start != len(name) or end > len(data):
        return False
    i: i64 = 0
    while i < end - start:
        if _LOWER[data[start + i]] != name[i]:
            return False
        i += 1
    return True


def _at(data: bytes, start: i64, literal: bytes) -> bool:
    """`literal` is in `data` at `start`, exactly."""
    if start + len(literal) > len(data):
        return False
    i: i64 = 0
    while i < len(literal):
        if data[start + i] != literal[i]:
            return False
        i += 1
    return True


def _name_end(data: bytes, i: i64, n: i64, special: bytes) -> tuple[i64, bool]:
    """Where the header name that starts at `i` ends (at its colon; -1 for no name or no colon),
    and whether its hash is one of `special`'s."""
    h: i64 = 0
    start = i
    while i < n:
        c: i64 = data[i]
        if not _TCHAR[c]:
            break
        h = (h * 31 + (c | 32)) & _HASH_BITS
        i += 1
    if i == start or i >= n or data[i] != 58:  # ":"
        return -1, False
    return i, special[h] == 1


def _line_end(data: bytes, i: i64, n: i64) -> i64:
    """Past the CRLF that ends the field value starting at `i` (-1 if another byte comes first)."""
    while i < n and _VALUE[data[i]]:
        i += 1
    if i + 1 < n and data[i] == 13 and data[i + 1] == 10:
        return i + 2
    return -1


def _ows(data: bytes, i: i64, n: i64) -> i64:
    while i < n and (data[i] == 32 or data[i] == 9):
        i += 1
    return i


def _crlf(data: bytes, i: i64, n: i64) -> bool:
    return i + 1 < n and data[i] == 13 and data[i + 1] == 10


def simple_request(data: bytes, max_target: int) -> tuple[bytes, bytes, bytes] | None:
    """(method, target, host) if `data` is exactly one bodiless HTTP/1.1 request head that can go
    on as it is, Host first, with a target of at most `max_target` bytes; else None."""
    n: i64 = len(data)
    i: i64 = 0
    if data.startswith(b"GET /"):  # nearly every request: no slice, no set lookup
        method = b"GET"
        i = 3
    else:
        while i < n and 65 <= data[i] <= 90:  # A-Z
            i += 1
        method = data[:i]
        if method not in METHODS or i + 1 >= n or data[i] != 32 or data[i + 1] != 47:  # " /": origin-form
            return None
    target = i + 1
    i = target
    while i < n and 33 <= data[i] <= 126:
        i += 1
    target_end = i
    if target_end - target > max_target or not _at(data, i, b" HTTP/1.1\r\n"):
        return None  # a long target: the full path answers 414
    i += 11
    if not _is(data, i, i + 5, b"host:"):
        return None
    i = _ows(data, i + 5, n)
    host = i
    while i < n and _HOST[data[i]]:
        i += 1
    host_end = i
    i = _ows(data, i, n)
    if host_end == host or not _crlf(data, i, n):
        return None
    i += 2
    while i < n and data[i] != 13:
        start = i
        i, special = _name_end(data, i, n, _REQUEST_SPECIAL)
        if i < 0 or special and data[start:i].lower() in REQUEST_HEADERS:
            return None
        i = _line_end(data, i + 1, n)
        if i < 0:
            return None
    if i + 2 != n or not _crlf(data, i, n):  # the empty line, and nothing after it
        return None
    return method, data[target:target_end], data[host:host_end]


def simple_response(data: bytes) -> tuple[int, int, int, bool, bytes]:
    """How to pass on the HTTP/1.1 response that starts `data`, if its head is whole and plain:
    (status, Content-Length, body bytes still to come, keep-alive, the bytes to send: `data` less
    its Connection line). Status 0: declined, the full parser must see it; and so when `data`
    holds more than the response (a second one nobody asked for: out of sync)."""
    n: i64 = len(data)
    if n < 16 or not data.startswith(b"HTTP/1.1 "):
        return _DECLINED
    status = (data[9] - 48) * 100 + (data[10] - 48) * 10 + data[11] - 48
    line = _BODY_STATUS_LINES.get(status)
    if line is None or not data.startswith(line):
        return _DECLINED  # a status line of another form is rewritten by the full path
    i: i64 = len(line)
    length: i64 = -1
    keep_alive = True
    cut: i64 = -1  # the Connection line: data[cut:cut_end], hop-by-hop (RFC 9110 §7.6.1)
    cut_end: i64 = -1
    while i < n and data[i] != 13:
        start = i
        i, special = _name_end(data, i, n, _RESPONSE_SPECIAL)
        if i < 0:
            return _DECLINED
        if special:
            if length < 0 and _is(data, start, i, b"content-length"):
                i = _ows(data, i + 1, n)
                digits = i
                length = 0
                while i < n and 48 <= data[i] <= 57 and i - digits < 18:  # llhttp takes 18 digits
                    length = length * 10 + data[i] - 48
                    i += 1
                if i == digits:
                    return _DECLINED
                i = _ows(data, i, n)
                if not _crlf(data, i, n):
                    return _DECLINED
                i += 2
                continue
            if cut < 0 and _is(data, start, i, b"connection"):
                token = _ows(data, i + 1, n)
                i = token
                while i < n and _TCHAR[data[i]]:
                    i += 1
                if _is(data, token, i, b"close"):
                    keep_alive = False
                elif not _is(data, token, i, b"keep-alive"):
                    return _DECLINED  # it may name other headers to drop
                i = _ows(data, i, n)
                if not _crlf(data, i, n):
                    return _DECLINED
                cut, cut_end = start, i + 2
                i += 2
                continue
            if data[start:i].lower() in RESPONSE_HEADERS:
                return _DECLINED  # framing, a duplicate, or a hop-by-hop header to drop
        i = _line_end(data, i + 1, n)
        if i < 0:
            return _DECLINED
    if length < 0 or not _crlf(data, i, n):
        return _DECLINED  # no Content-Length: the full path re-frames the body
    left = length - (n - i - 2)
    if left < 0:
        return _DECLINED
    if cut < 0:
        return status, length, left, keep_alive, data
    return status, length, left, keep_alive, data[:cut] + data[cut_end:]
