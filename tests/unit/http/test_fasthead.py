"""The short way for plain heads: what it takes, and everything it must leave to the full parser."""

from __future__ import annotations

import pytest
from httptools import HttpRequestParser, HttpResponseParser

from passerelle.http.fasthead import MessageEnd, simple_request, simple_response

GET = b"GET /a/b?q=1 HTTP/1.1\r\nHost: example.org\r\nAccept: */*\r\n\r\n"


def validated_request(data: bytes) -> bool:
    """What the connection checks before asking: llhttp accepts `data` as one complete message."""
    end = MessageEnd()
    HttpRequestParser(end).feed_data(data)
    return end.complete


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (GET, (b"GET", b"/a/b?q=1", b"example.org")),
        (b"DELETE /x HTTP/1.1\r\nhOST:example.org:8080 \t\r\n\r\n", (b"DELETE", b"/x", b"example.org:8080")),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-Prefix: /p\r\nCookie: a=b\r\n\r\n", (b"GET", b"/", b"a")),
    ],
    ids=["get", "port-and-trailing-space", "unrelated-x-forwarded"],
)
def test_plain_requests_are_taken_whole(data: bytes, expected: tuple[bytes, bytes, bytes]) -> None:
    assert validated_request(data)
    assert simple_request(data, 8192) == expected


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.0\r\nHost: a\r\n\r\n",
        b"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nAccept: */*\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: \r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nconnection: x-secret\r\nX-Secret: 1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-REAL-IP: 10.0.0.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nProxy-Authorization: Basic x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nTE: trailers\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nKeep-Alive: 5\r\n\r\n",
        b"GET /" + b"x" * 100 + b" HTTP/1.1\r\nHost: a\r\n\r\n",
    ],
    ids=[
        "http10",
        "absolute-form",
        "asterisk-form",
        "host-not-first",
        "two-hosts",
        "empty-host",
        "connection",
        "connection-names-a-header",
        "content-length",
        "chunked",
        "upgrade",
        "x-forwarded-for",
        "x-real-ip",
        "proxy-authorization",
        "te",
        "keep-alive",
        "target-too-long",
    ],
)
def test_requests_the_full_parser_must_see_are_declined(data: bytes) -> None:
    assert simple_request(data, 64) is None


OK = b"HTTP/1.1 200 OK\r\nServer: s\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello"


def checked(data: bytes) -> tuple[int, bool]:
    end = MessageEnd()
    parser = HttpResponseParser(end)
    parser.feed_data(data)
    return parser.get_status_code(), end.complete


def test_a_content_length_response_loses_only_its_connection_line() -> None:
    status, complete = checked(OK)
    assert (status, complete) == (200, True)
    simple = simple_response(OK, status)
    assert simple is not None
    assert (simple.body_at, simple.length, simple.keep_alive) == (OK.index(b"hello"), 5, True)
    assert simple.forward(OK) == b"HTTP/1.1 200 OK\r\nServer: s\r\nContent-Length: 5\r\n\r\nhello"


def test_connection_close_is_cut_and_reported() -> None:
    data = b"HTTP/1.1 404 Not Found\r\nconnection:close\r\nContent-Length: 0\r\nX: y\r\n\r\n"
    simple = simple_response(data, 404)
    assert simple is not None and simple.keep_alive is False and simple.length == 0
    assert simple.forward(data) == b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nX: y\r\n\r\n"


def test_a_head_without_connection_line_is_sent_as_it_came() -> None:
    data = b"HTTP/1.1 200 OK\r\nContent-Length: 70000\r\n\r\n" + b"x" * 1000  # the body goes on
    simple = simple_response(data, 200)
    assert simple is not None and simple.length == 70000 and simple.keep_alive
    assert simple.forward(data) is data


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 200),
        (b"HTTP/1.1 200 OK\r\nServer: s\r\n\r\nclose-delimited", 200),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", 200),
        (b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", 204),
        (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 0\r\n\r\n", 304),
        (b"HTTP/1.1 100 Continue\r\n\r\n", 100),
        (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", 101),
        (b"HTTP/1.1 200 Fine\r\nContent-Length: 0\r\n\r\n", 200),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", 200),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: x-secret\r\nX-Secret: 1\r\n\r\n", 200),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\nConnection: close\r\n\r\n", 200),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nKeep-Alive: timeout=5\r\n\r\n", 200),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nTrailer: X\r\n\r\n", 200),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nProxy-Connection: x\r\n\r\n", 200),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n", 200),
    ],
    ids=[
        "chunked",
        "no-length",
        "two-lengths",
        "204",
        "304",
        "100",
        "101",
        "own-reason-phrase",
        "http10",
        "connection-names-a-header",
        "two-connection-headers",
        "keep-alive",
        "trailer",
        "proxy-connection",
        "head-incomplete",
    ],
)
def test_responses_the_full_parser_must_see_are_declined(data: bytes, status: int) -> None:
    assert simple_response(data, status) is None


def test_the_special_header_search_matches_exactly_the_full_paths_names() -> None:
    from passerelle.http import fasthead
    from passerelle.http.headers import REQUEST_HEADERS, RESPONSE_HEADERS

    for pattern, names in (
        (fasthead._REQUEST_SPECIAL, REQUEST_HEADERS),
        (fasthead._RESPONSE_SPECIAL, RESPONSE_HEADERS),
    ):
        for name in names:
            assert pattern.fullmatch(b"\n" + name + b":" + (b"v" if pattern.groups else b"")), name
            for near in (name[:-1], name + b"x", b"x" + name):
                if near not in names:
                    assert not pattern.match(b"\n" + near + b":"), near
