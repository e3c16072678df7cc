"""The common request and response heads, taken whole instead of header by header.

Most requests a router sees are a head alone (GET, HEAD, DELETE …, no body) arriving in one read,
and most responses a Content-Length head with its body. For those the proxy does not need a
callback per header: llhttp still validates every byte (a parser whose only callback is
`on_message_complete` costs about as much as one Python call), and the functions here look at the
validated bytes once — a regex for the request line and Host, one search for the headers a proxy
must act on — so the head can be forwarded as it came, with X-Forwarded lines appended (request)
or the `Connection` line cut (response).

Anything else — another HTTP version, a body, a header the proxy drops or interprets (hop-by-hop,
X-Forwarded-*, framing, Upgrade), Host not first or twice, a 1xx/204/304 status, no Content-Length
— is declined (None), and the caller hands the same bytes to the full parser: the short way is
only taken where the full way would send exactly the same bytes (a property test checks this).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from http import HTTPStatus

from passerelle.http.headers import REQUEST_HEADERS, RESPONSE_HEADERS


def _names(names: Iterable[bytes]) -> bytes:
    """An alternation of `names` as a trie ("con(?:nection|tent-length)"): at each line start the
    regex engine then tests a few characters, not every name in turn."""
    groups: dict[bytes, list[bytes]] = {}
    for name in sorted(set(names)):
        groups.setdefault(name[:1], []).append(name)
    branches = []
    for group in groups.values():
        if len(group) == 1:
            branches.append(re.escape(group[0]))
            continue
        common = os.path.commonprefix(group) or b""  # typeshed allows it to return "" for bytes
        rests = [name[len(common) :] for name in group]
        optional = b"?" if b"" in rests else b""
        branches.append(re.escape(common) + b"(?:" + _names(r for r in rests if r) + b")" + optional)
    return b"|".join(branches)


# Run on bytes llhttp accepted, so these only pick fields out. Host comes first in nearly every
# request (RFC 9110 §7.2 asks user agents to send it first); a request where it does not is declined.
# CONNECT never matches: its target is not origin-form.
_REQUEST_START = re.compile(rb"([A-Z]+) (/[^ ]*) HTTP/1\.1\r\n[Hh][Oo][Ss][Tt]:[ \t]*([^\r]*)\r\n")
# Searched in the lower-cased rest of the head; built from the full path's own tables, so a header
# it treats specially is never skipped here. Host again means a second Host: the full path's 400.
_REQUEST_SPECIAL = re.compile(rb"\n(?:" + _names(REQUEST_HEADERS) + rb"):")
_RESPONSE_SPECIAL = re.compile(rb"\n(" + _names(RESPONSE_HEADERS) + rb"):([^\r]*)")

# The status lines passerelle sends: the reason phrase is its own, not the upstream's, as in Traefik.
STATUS_LINES = {s.value: b"HTTP/1.1 %d %s\r\n" % (s.value, s.phrase.encode()) for s in HTTPStatus}
# Those of responses with a body framed by Content-Length: 1xx, 204 and 304 are not here.
_BODY_STATUS_LINES = {
    code: line for code, line in STATUS_LINES.items() if code >= 200 and code not in (204, 304)
}
_PLAIN_CONNECTION = {b"keep-alive": True, b"close": False}


def simple_request(data: bytes, max_target: int) -> tuple[bytes, bytes, bytes] | None:
    """(method, target, host) if `data`, one whole bodiless HTTP/1.1 request head, can go as it is."""
    match = _REQUEST_START.match(data)
    if match is None:
        return None
    method, target, host = match.group(1, 2, 3)
    if len(target) > max_target or _REQUEST_SPECIAL.search(data.lower(), match.end() - 1) is not None:
        return None
    host = host.rstrip(b" \t")
    return (method, target, host) if host else None


class MessageEnd:
    """The protocol of a parser that only validates: it counts the messages that ended, nothing else.

    The count matters: one read may hold two pipelined requests, and the second, without Host or
    any header the search below would catch, must not pass as part of the first.
    """

    __slots__ = ("complete",)

    def __init__(self) -> None:
        self.complete = 0

    def on_message_complete(self) -> None:
        self.complete += 1


class SimpleResponse:
    """A response head that needs no re-framing: where its body starts, and the line to cut."""

    __slots__ = ("body_at", "length", "keep_alive", "cut")

    def __init__(self, body_at: int, length: int, keep_alive: bool, cut: tuple[int, int] | None) -> None:
        self.body_at = body_at  # the head is data[:body_at]
        self.length = length  # of the body, from Content-Length
        self.keep_alive = keep_alive  # the upstream connection may carry another exchange
        self.cut = cut  # data[start:end] is the Connection line, hop-by-hop (RFC 9110 §7.6.1)

    def forward(self, data: bytes) -> bytes:
        """The bytes of `data` to send on: all of them, less the Connection line if there is one."""
        if self.cut is None:
            return data
        start, end = self.cut
        return data[:start] + data[end:]


def simple_response(data: bytes, status: int) -> SimpleResponse | None:
    """How to pass on the HTTP/1.1 response head that starts `data`, if it is whole and plain.

    `data` must have been accepted by llhttp, which also read `status` from it.
    """
    line = _BODY_STATUS_LINES.get(status)
    if line is None or not data.startswith(line):
        return None  # a status line of another form is rewritten by the full path
    end = data.find(b"\r\n\r\n") + 2  # the first empty line ends the head
    if end < 2:
        return None
    low = data[:end].lower()
    length = -1
    keep_alive = True
    cut = None
    for name, value in _RESPONSE_SPECIAL.findall(low):
        if name == b"content-length" and length < 0:
            length = int(value)  # llhttp has checked it: digits, with optional whitespace
        elif name == b"connection" and cut is None:
            keep = _PLAIN_CONNECTION.get(value.strip(b" \t"))
            if keep is None:
                return None  # it may name other headers to drop
            keep_alive = keep
            start = low.find(b"\nconnection:") + 1
            cut = (start, start + 13 + len(value))
        else:
            return None  # framing, a duplicate, or a hop-by-hop header to drop
    if length < 0:
        return None  # close-delimited: the full path re-frames it
    return SimpleResponse(end + 2, length, keep_alive, cut)
