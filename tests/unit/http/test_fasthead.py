"""The short way for plain heads: what it takes, what it must leave to llhttp, and, for any bytes,
that what it takes llhttp takes too, with the same meaning (a differential property test)."""

from __future__ import annotations

import pytest
from httptools import HttpParserError, HttpParserUpgrade, HttpRequestParser, HttpResponseParser
from hypothesis import example, given, settings

from passerelle.http import fasthead
from passerelle.http.fasthead import simple_request, simple_response
from passerelle.http.headers import REQUEST_HEADERS, RESPONSE_HEADERS
from tests.unit.http.heads import request_heads, response_heads

GET = b"GET /a/b?q=1 HTTP/1.1\r\nHost: example.org\r\nAccept: */*\r\n\r\n"


class Seen:
    """Everything llhttp reports of a byte stream."""

    def __init__(self) -> None:
        self.begun = self.complete = 0
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = b""
        self.parser: HttpRequestParser | HttpResponseParser | None = None
        self.keep_alive: list[bool] = []  # as llhttp says when each message completes

    def on_message_begin(self) -> None:
        self.begun += 1

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.complete += 1
        assert self.parser is not None
        self.keep_alive.append(self.parser.should_keep_alive())


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (GET, (b"GET", b"/a/b?q=1", b"example.org")),
        (b"DELETE /x HTTP/1.1\r\nhOST:example.org:8080 \t\r\n\r\n", (b"DELETE", b"/x", b"example.org:8080")),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-Prefix: /p\r\nCookie: a=b\r\n\r\n", (b"GET", b"/", b"a")),
        (
            b"OPTIONS /#f HTTP/1.1\r\nHost: [::1]:80\r\nX:\r\nY: \xff\t\x80 z \r\n\r\n",
            (b"OPTIONS", b"/#f", b"[::1]:80"),
        ),
    ],
    ids=["get", "port-and-trailing-space", "unrelated-x-forwarded", "obs-text-empty-value-ipv6"],
)
def test_plain_requests_are_taken_whole(data: bytes, expected: tuple[bytes, bytes, bytes]) -> None:
    assert simple_request(data, 8192) == expected


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.0\r\nHost: a\r\n\r\n",
        b"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
        b"CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n",
        b"PROPFIND / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"get / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / http/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nAccept: */*\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: \r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nconnection: x-secret\r\nX-Secret: 1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-REAL-IP: 10.0.0.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nx_forwarded-for: 10.0.0.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nSSL-Client-Verify: SUCCESS\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nProxy-Authorization: Basic x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nTE: trailers\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nKeep-Alive: 5\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Request-Id: abc\r\n\r\n",
        b"GET /" + b"x" * 100 + b" HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n \r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\nb\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00\r\n\r\n",
        b"GET / HTTP/1.1\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX : 1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\nx",
        b"GET / HTTP/1.1\r\nHost: a\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n\r",
    ],
    ids=[
        "http10", "absolute-form", "asterisk-form", "connect", "unknown-method", "lower-case-method",
        "lower-case-version", "host-not-first", "two-hosts", "empty-host", "space-in-host", "connection",
        "connection-names-a-header", "content-length", "chunked", "upgrade", "x-forwarded-for", "x-real-ip",
        "underscore-spelling", "client-cert-header", "proxy-authorization", "te", "keep-alive",
        "request-id", "target-too-long", "obs-fold", "bare-cr", "bare-lf-in-value", "nul", "bare-lf-line",
        "space-before-colon", "pipelined", "bytes-after-head", "partial-head", "partial-empty-line",
    ],
)  # fmt: skip
def test_requests_the_full_parser_must_see_are_declined(data: bytes) -> None:
    assert simple_request(data, 64) is None


OK = b"HTTP/1.1 200 OK\r\nServer: s\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello"


def test_a_content_length_response_loses_only_its_connection_line() -> None:
    status, length, left, keep_alive, forward = simple_response(OK)
    assert (status, length, left, keep_alive) == (200, 5, 0, True)
    assert forward == b"HTTP/1.1 200 OK\r\nServer: s\r\nContent-Length: 5\r\n\r\nhello"


def test_connection_close_is_cut_and_reported() -> None:
    data = b"HTTP/1.1 404 Not Found\r\nconnection:CLOSE \r\ncontent-LENGTH:  00\r\nX: y\r\n\r\n"
    assert simple_response(data) == (
        404,
        0,
        0,
        False,
        b"HTTP/1.1 404 Not Found\r\ncontent-LENGTH:  00\r\nX: y\r\n\r\n",
    )


def test_a_head_without_connection_line_is_sent_as_it_came() -> None:
    data = b"HTTP/1.1 200 OK\r\nContent-Length: 70000\r\n\r\n" + b"x" * 1000  # the body goes on
    status, length, left, keep_alive, forward = simple_response(data)
    assert (status, length, left, keep_alive) == (200, 70000, 69000, True)
    assert forward is data


@pytest.mark.parametrize(
    "data",
    [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nServer: s\r\n\r\nclose-delimited",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
        b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        b"HTTP/1.1 200 Fine\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: x-secret\r\nX-Secret: 1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive, close\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\nConnection: close\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nKeep-Alive: timeout=5\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nTrailer: X\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nProxy-Connection: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1 2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1234567890123456789\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiHTTP/1.1 200 OK\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX: 1\r\n y\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\nX: 1\r\n\r\n",
    ],
    ids=[
        "chunked", "no-length", "two-lengths", "204", "304", "100", "101", "own-reason-phrase", "http10",
        "connection-names-a-header", "two-connection-tokens", "two-connection-headers", "keep-alive",
        "trailer", "proxy-connection", "head-incomplete", "length-with-space", "empty-length",
        "length-too-long", "more-than-the-response", "obs-fold", "bare-lf",
    ],
)  # fmt: skip
def test_responses_the_full_parser_must_see_are_declined(data: bytes) -> None:
    assert simple_response(data)[0] == 0


def test_the_special_name_hashes_cover_exactly_the_full_paths_names() -> None:
    """A name the full path acts on, in any letter case, always gets the closer look."""
    for table, names in (
        (fasthead._REQUEST_SPECIAL, REQUEST_HEADERS),
        (fasthead._RESPONSE_SPECIAL, RESPONSE_HEADERS),
    ):
        for name in names:
            for spelling in (name, name.upper(), name.title()):
                assert table[fasthead._hash(spelling)] == 1, spelling


# -- the differential property test: whatever the bytes, what the short way takes, llhttp takes ---


def _llhttp(parser_type: type, data: bytes) -> tuple[Seen, object] | None:
    seen = Seen()
    parser = seen.parser = parser_type(seen)
    try:
        parser.feed_data(data)
    except (HttpParserError, HttpParserUpgrade):
        return None
    return seen, parser


@settings(max_examples=1500, deadline=None)
@given(request_heads())
@example(GET)
@example(b"GET / HTTP/1.1\r\nHost: a\r\nX: \x80\xff\t\r\n\r\n")
def test_what_the_short_way_takes_llhttp_takes_as_the_same_request(data: bytes) -> None:
    simple = simple_request(data, 8192)
    if simple is None:
        return
    parsed = _llhttp(HttpRequestParser, data)
    assert parsed is not None, "llhttp refuses what the short way took"
    seen, parser = parsed
    assert (seen.begun, seen.complete) == (1, 1)  # exactly one message, nothing after it
    assert not seen.body and seen.keep_alive == [True] and not parser.should_upgrade()  # type: ignore[attr-defined]
    assert parser.get_http_version() == "1.1"  # type: ignore[attr-defined]
    method, target, host = simple
    assert (parser.get_method(), seen.url) == (method, target)  # type: ignore[attr-defined]
    names = [name.lower() for name, _ in seen.headers]
    assert names[0] == b"host" and seen.headers[0][1].rstrip(b" \t") == host
    assert not set(names[1:]) & set(REQUEST_HEADERS)  # nothing the full path would act on


@settings(max_examples=1500, deadline=None)
@given(response_heads())
@example(OK)
def test_what_the_short_way_takes_llhttp_takes_as_the_same_response(data: bytes) -> None:
    status, length, left, keep_alive, forward = simple_response(data)
    if not status:
        return
    parsed = _llhttp(HttpResponseParser, data)
    assert parsed is not None, "llhttp refuses what the short way took"
    seen, parser = parsed
    assert parser.get_status_code() == status  # type: ignore[attr-defined]
    assert data.startswith(fasthead.STATUS_LINES[status])  # the reason phrase passerelle sends anyway
    assert seen.begun == 1 and seen.complete == (left == 0)  # one response, whole or not yet
    assert len(seen.body) + left == length
    names = [name.lower() for name, _ in seen.headers]
    lengths = [value for name, value in seen.headers if name.lower() == b"content-length"]
    assert len(lengths) == 1 and int(lengths[0]) == length
    assert not set(names) & (set(RESPONSE_HEADERS) - {b"content-length", b"connection"})
    assert names.count(b"connection") <= 1
    if left == 0:
        assert seen.keep_alive == [keep_alive]
    expected = data
    if b"connection" in names:
        start = data.lower().index(b"\r\nconnection:") + 2
        expected = data[:start] + data[data.index(b"\r\n", start) + 2 :]
    assert forward == expected
