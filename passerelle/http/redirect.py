"""Redirect responses: the Location a scheme redirect sends, and the response that carries it.

A redirect keeps the request's host (without its port), path and query, and swaps the scheme and
port: `http://shop.example.com:8080/cart?id=1` to `https://shop.example.com/cart?id=1`. The
target port is written only when it is not the scheme's default (443 for https, 80 for http), as
Traefik's redirectScheme middleware does (`pkg/middlewares/redirect/redirect_scheme.go`). The
status follows Traefik's `moveHandler` (`pkg/middlewares/redirect/redirect.go`): GET gets 302, or
301 when permanent; any other method gets 307, or 308 when permanent, so a POST keeps its method
and body (RFC 9110 §15.4.8, §15.4.9). The Location's host is always the Host header's (or the
fixed `host`): routing is by Host, so an absolute-form target (`GET http://other/x`) only lends
its path, never its authority.
"""

from __future__ import annotations

import re
from http import HTTPStatus

from passerelle.http.errors import canned

_DEFAULT_PORTS = {b"http": 80, b"https": 443}
BAD_HOST = 400  # the status of a redirect whose Host cannot go into a Location
# A Host value we are willing to copy into a Location: a DNS name, IPv4 or [IPv6], and a port.
# Anything else (spaces, slashes, "@") could make the Location point somewhere the client did not
# name, so it is refused with 400 rather than echoed.
_HOST = re.compile(rb"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(:[0-9]*)?")  # used with fullmatch


def is_authority(value: str) -> bool:
    """Is `value` a host[:port] fit to be copied into a Location (a fixed redirect host)?

    The request's Host check, plus a port that is a port number: no scheme, path, space or line
    break can get through, so the value can neither split the response nor point elsewhere.
    """
    match = _HOST.fullmatch(value.encode()) if value.isascii() else None
    if match is None:
        return False
    port = match.group(2)
    return port is None or (len(port) > 1 and 0 < int(port[1:]) < 65536)


def status_line(status: int) -> bytes:
    return f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n".encode()


def move_status(permanent: bool, method: bytes) -> int:
    """Traefik's moveHandler: GET gets 302 (301 when permanent), every other method 307 (308)."""
    if method == b"GET":
        return 301 if permanent else 302
    return 308 if permanent else 307  # HEAD too gets 307/308, as in Traefik


def moved(line: bytes, location: bytes, *, head: bool) -> bytes:
    """A redirect answer after its status line, as Traefik's: the phrase as a text body (none for HEAD)."""
    phrase = line[13:-2]  # b"HTTP/1.1 301 " is 13 bytes
    lines = (
        line,
        b"Location: ", location, b"\r\n",
        b"Content-Type: text/plain; charset=utf-8\r\n",
        b"Content-Length: %d\r\n\r\n" % len(phrase),
    )  # fmt: skip
    return b"".join(lines) if head else b"".join(lines) + phrase


class Redirect:
    """A compiled scheme redirect: `response(host, target, method)` is the whole answer.

    scheme: the target scheme (`https`, `http`).
    port: the target port; None or the scheme's default port is left out of the Location.
    permanent: 301/308 instead of 302/307.
    host: a fixed host[:port] for the Location (Traefik 1.7's `ssl-host`), instead of the request's.
    """

    __slots__ = ("scheme", "port", "permanent", "host", "_prefix", "_statuses", "_heads")

    def __init__(
        self, *, scheme: str, port: int | None = None, permanent: bool = False, host: str | None = None
    ) -> None:
        if host is not None and not is_authority(host):
            raise ValueError(f"redirect host {host!r} must be host[:port]")
        self.scheme = scheme
        self.port = port
        self.permanent = permanent
        self.host = host
        scheme_bytes = scheme.encode()
        port_part = b"" if port is None or _DEFAULT_PORTS.get(scheme_bytes) == port else b":%d" % port
        self._prefix = (scheme_bytes + b"://", port_part)
        self._statuses = {True: move_status(permanent, b"GET"), False: move_status(permanent, b"POST")}
        self._heads = {is_get: status_line(status) for is_get, status in self._statuses.items()}

    def status(self, method: bytes) -> int:
        """The status of the redirect for `method` (a usable Host): GET's, or every other method's."""
        return self._statuses[method == b"GET"]

    def location(self, host: bytes, target: bytes) -> bytes | None:
        """The Location for a request with this Host header and request-target; None if the Host is unusable."""
        if target[:1] != b"/":
            target = path_of(target)
        if self.host is not None:
            authority = self.host.encode()
        else:
            if not _HOST.fullmatch(host):
                return None
            authority = host_name(host) + self._prefix[1]
        return self._prefix[0] + authority + target

    def response(self, host: bytes, target: bytes, method: bytes) -> bytes:
        location = self.location(host, target)
        head = method == b"HEAD"
        if location is None:
            return canned(BAD_HOST, "cannot redirect: the Host header is not a host name", head=head)
        return moved(self._heads[method == b"GET"], location, head=head)  # as status(method)


def host_name(host: bytes) -> bytes:
    """A valid Host header's name, its port dropped (`[v6]` kept bracketed)."""
    return host[: host.index(b"]") + 1] if host[:1] == b"[" else host.partition(b":")[0]


def path_of(target: bytes) -> bytes:
    """The path and query of an absolute-form target (RFC 9112 §3.2.2, `http://h:1/p?q` -> `/p?q`);
    `/` for the asterisk-form (OPTIONS *). Its authority is dropped: the Host header was routed."""
    _, sep, rest = target.partition(b"://")
    if not sep:
        return b"/"
    slash = rest.find(b"/")
    question = rest.find(b"?")
    cut = min(i for i in (slash, question, len(rest)) if i >= 0)
    path = rest[cut:]
    return path if path[:1] == b"/" else b"/" + path
