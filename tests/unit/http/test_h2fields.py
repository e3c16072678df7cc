"""HTTP/2 fields to HTTP/1.1 heads and back (http/h2fields.py), without sockets."""

from __future__ import annotations

import pytest

from passerelle.http.errors import NOT_FOUND, canned
from passerelle.http.h2fields import Refused, local_answer, request_head, response_head
from passerelle.http.headers import RequestIds, forwarded_static, request_id_in
from passerelle.http.redirect import Redirect

FORWARDED = forwarded_static(b"192.0.2.7", b"https")


def head(fields: list[tuple[bytes, bytes]], *, ended: bool = True) -> bytes:
    return request_head(
        fields,
        ended=ended,
        forwarded=FORWARDED,
        default_port=b"443",
        max_request_line=100,
        max_header_bytes=400,
    ).head


def base(
    method: bytes = b"GET", path: bytes = b"/p?q=1", authority: bytes = b"h.test"
) -> list[tuple[bytes, bytes]]:
    return [(b":method", method), (b":scheme", b"https"), (b":authority", authority), (b":path", path)]


def test_a_get_becomes_an_http11_head_with_the_forwarded_headers() -> None:
    assert head([*base(), (b"accept", b"*/*"), (b"x-forwarded-for", b"6.6.6.6"), (b"te", b"trailers")]) == (
        b"GET /p?q=1 HTTP/1.1\r\nHost: h.test\r\naccept: */*\r\nTE: trailers\r\n"
        b"X-Forwarded-For: 192.0.2.7\r\nX-Real-Ip: 192.0.2.7\r\nX-Forwarded-Proto: https\r\n"
        b"X-Forwarded-Host: h.test\r\nX-Forwarded-Port: 443\r\n\r\n"
    )


def test_authority_wins_over_host_and_its_port_is_forwarded() -> None:
    out = head([*base(authority=b"h.test:8443"), (b"host", b"other.test")])
    assert b"Host: h.test:8443\r\n" in out and b"other.test" not in out
    assert b"X-Forwarded-Port: 8443\r\n" in out
    only_host = [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/"), (b"host", b"x.test")]
    assert b"Host: x.test\r\n" in head(only_host)


def test_body_framing() -> None:
    streamed = request_head(
        base(b"POST"),
        ended=False,
        forwarded=b"",
        default_port=b"443",
        max_request_line=99,
        max_header_bytes=999,
    )
    assert streamed.chunked and b"Transfer-Encoding: chunked\r\n" in streamed.head
    sized = head([*base(b"PUT"), (b"content-length", b"5")], ended=False)
    assert b"content-length: 5\r\n" in sized and b"chunked" not in sized
    assert b"content-length: 0\r\n" in head(base(b"POST"))  # bodiless POST: as Go's transport
    assert b"content-length" not in head(base(b"GET"))


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ([(b":method", b"CONNECT"), (b":authority", b"h.test:443")], 405),
        (base(path=b"/" + b"a" * 100), 414),
        ([*base(), (b"x-big", b"b" * 400)], 431),
        ([(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/")], 400),
        (base(path=b"/a HTTP/1.1"), 400),
        (base(method=b"GET /b"), 400),
    ],
)
def test_refusals(fields: list[tuple[bytes, bytes]], status: int) -> None:
    with pytest.raises(Refused) as refused:
        head(fields)
    assert refused.value.status == status


def test_response_heads() -> None:
    upstream = [
        (b"Content-Type", b"text/plain"),
        (b"Content-Length", b"3"),
        (b"Connection", b"keep-alive, X-Private"),
        (b"X-Private", b"no"),
        (b"Keep-Alive", b"timeout=5"),
    ]
    out = response_head(200, upstream, head_request=False)
    assert out.fields == [(b":status", b"200"), (b"content-type", b"text/plain"), (b"content-length", b"3")]
    assert not out.ended and not out.close_delimited
    chunked = response_head(200, [(b"Transfer-Encoding", b"chunked")], head_request=False)
    assert chunked.fields == [(b":status", b"200")] and not chunked.close_delimited
    assert response_head(200, [], head_request=False).close_delimited  # ends when the upstream closes
    assert response_head(200, [(b"Content-Length", b"9")], head_request=True).ended
    assert response_head(304, [], head_request=False).ended


def test_local_answers_become_fields_and_a_body() -> None:
    fields, body = local_answer(NOT_FOUND)
    assert fields[0] == (b":status", b"404") and body == b"404 page not found\n"
    assert (b"content-length", b"19") in fields
    closing, _ = local_answer(canned(503, "none", close=True))
    assert all(name != b"connection" for name, _ in closing)
    moved, _ = local_answer(Redirect(scheme="https").response(b"h.test:80", b"/a?b", b"GET"))
    assert moved[0] == (b":status", b"302") and (b"location", b"https://h.test/a?b") in moved


@pytest.mark.parametrize(
    ("sent", "ids", "expected"),
    [
        ([], True, b"f" * 16 + b"%016x" % 0x100),  # none sent: the next one made
        ([(b"x-request-id", b"trace.7")], True, b"trace.7"),  # a valid one is kept
        ([(b"x-request-id", b"a b"), (b"x-request-id", b"ok")], True, b"ok"),  # the first valid one
        ([(b"x-request-id", b"\x7f")], True, b"f" * 16 + b"%016x" % 0x100),  # an invalid one is replaced
        ([(b"x-request-id", b"trace.7")], False, b"trace.7"),
        ([], False, b""),  # none made: no header
    ],
)
def test_the_request_id_is_the_clients_valid_one_or_the_next_made(
    sent: list[tuple[bytes, bytes]], ids: bool, expected: bytes
) -> None:
    request = request_head(
        [*base(), *sent], ended=True, forwarded=b"", default_port=b"443", max_request_line=99,
        max_header_bytes=999, request_ids=RequestIds(b"f" * 16) if ids else None,
    )  # fmt: skip
    assert request_id_in(request.head) == expected
    lines = [line for line in request.head.split(b"\r\n") if line.lower().startswith(b"x-request-id")]
    assert lines == ([b"X-Request-Id: " + expected] if expected else [])
    identified = b"X-Request-Id: " + expected + b"\r\n" if expected else b""
    assert request.head.endswith(b"X-Forwarded-Port: 443\r\n" + identified + b"\r\n")
