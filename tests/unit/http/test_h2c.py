"""http/h2c.py: upstream heads as HTTP/2 fields, passerelle's chunked framing taken off, trailers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from passerelle.http.h2c import (
    BadField,
    ChunkReader,
    last_chunk,
    status_and_fields,
    trailer_fields,
    upstream_request,
)

FORWARDED = b"X-Forwarded-For: 192.0.2.7\r\nX-Real-Ip: 192.0.2.7\r\nX-Forwarded-Proto: https\r\n"

# (head as connection.py / h2fields.py write it, expected fields, Content-Length, chunked, upgrade)
CASES = [
    (
        b"GET /p?q=1 HTTP/1.1\r\nHost: h.test\r\nAccept: */*\r\n" + FORWARDED + b"\r\n",
        [
            (b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"h.test"), (b":path", b"/p?q=1"),
            (b"accept", b"*/*"), (b"x-forwarded-for", b"192.0.2.7"), (b"x-real-ip", b"192.0.2.7"),
            (b"x-forwarded-proto", b"https"),
        ],
        0, False, False,
    ),
    (  # gRPC over HTTP/1.1: TE stays; a Content-Length body
        b"POST /svc/M HTTP/1.1\r\nHost: g.test:8443\r\nContent-Type: application/grpc\r\nTE: trailers\r\n"
        b"Content-Length: 18\r\n\r\n",
        [
            (b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"g.test:8443"), (b":path", b"/svc/M"),
            (b"content-type", b"application/grpc"), (b"te", b"trailers"), (b"content-length", b"18"),
        ],
        18, False, False,
    ),
    (  # a body of unknown length: the framing line goes, the body is un-chunked
        b"PUT /u HTTP/1.1\r\nHost: h\r\nX-Empty: \r\nTransfer-Encoding: chunked\r\n\r\n",
        [(b":method", b"PUT"), (b":scheme", b"http"), (b":authority", b"h"), (b":path", b"/u"), (b"x-empty", b"")],
        0, True, False,
    ),
    (  # a tunnel asked for: refused by the caller
        b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"h"), (b":path", b"/ws")],
        0, False, True,
    ),
    (  # absolute-form from a client that took us for a forward proxy; HTTP/1.0 without Host:
        # the server's own name, so that h2 never refuses the block half-encoded
        b"GET http://h.test/a/b?c HTTP/1.1\r\n\r\n",
        [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"10.0.0.5:50051"), (b":path", b"/a/b?c")],
        0, False, False,
    ),
    (  # absolute-form without a path: the query stays
        b"GET http://h.test?x=1 HTTP/1.1\r\nHost: \r\n\r\n",
        [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"10.0.0.5:50051"), (b":path", b"/?x=1")],
        0, False, False,
    ),
    (
        b"GET http://h.test HTTP/1.1\r\nHost: h.test\r\n\r\n",
        [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"h.test"), (b":path", b"/")],
        0, False, False,
    ),
    (
        b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
        [(b":method", b"OPTIONS"), (b":scheme", b"http"), (b":authority", b"h"), (b":path", b"*")],
        0, False, False,
    ),
]  # fmt: skip


@pytest.mark.parametrize(("head", "fields", "length", "chunked", "upgrade"), CASES)
def test_upstream_request(
    head: bytes, fields: list[tuple[bytes, bytes]], length: int, chunked: bool, upgrade: bool
) -> None:
    request = upstream_request(head, b"10.0.0.5:50051")
    assert request.fields == fields
    assert (request.length, request.chunked, request.upgrade) == (length, chunked, upgrade)


@pytest.mark.parametrize(
    "head",
    [
        b"GET / HTTP/1.1\r\nHost: h\r\nX-A\x01: v\r\n\r\n",  # not a token
        b"GET / HTTP/1.1\r\nHost: h\r\n: v\r\n\r\n",  # empty name
        b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x00b\r\n\r\n",  # NUL
        b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\rb\r\n\r\n",  # a bare CR
        b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\nb\r\n\r\n",  # a bare LF
        b"GET / HTTP/1.1\r\nHost: h\r\nX-\xc3\xa9: v\r\n\r\n",  # not ASCII
        b"5\r\nhello\r\n",  # a body, not a head
    ],
)
def test_fields_http2_cannot_carry_are_refused_before_the_h2_library_sees_them(head: bytes) -> None:
    with pytest.raises(BadField):
        upstream_request(head, b"s:1")


def frame(pieces: list[bytes]) -> bytes:
    """Chunked framing as proxy/connection.py writes it."""
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces if p) + b"0\r\n\r\n"


@given(
    st.lists(st.binary(min_size=0, max_size=300), max_size=8),
    st.lists(st.integers(min_value=1, max_value=40), max_size=30),
)
def test_chunk_reader_gives_the_body_back_however_the_framing_is_split(
    pieces: list[bytes], cuts: list[int]
) -> None:
    data = frame(pieces)
    reader = ChunkReader()
    out = b""
    at = 0
    for cut in [*cuts, len(data)]:
        out += b"".join(reader.feed(data[at : at + cut]))
        at += cut
        if at >= len(data):
            break
    assert out == b"".join(pieces)
    assert reader.done


def test_chunk_reader_is_done_at_the_last_chunk() -> None:
    reader = ChunkReader()
    assert reader.feed(b"3\r\nabc\r\n") == [b"abc"] and not reader.done
    assert reader.feed(b"0\r\n\r\n") == [] and reader.done


def test_status_and_fields_take_the_status_and_leave_the_pseudo_headers() -> None:
    assert status_and_fields([(b":status", b"200"), (b"content-type", b"application/grpc")]) == (
        200,
        [(b"content-type", b"application/grpc")],
    )


def test_trailers_keep_what_may_be_a_trailer() -> None:
    trailers = [
        (b"grpc-status", b"0"), (b"Grpc-Message", b"ok"), (b"content-length", b"5"), (b"connection", b"close"),
        (b"x-t", b"1"), (b"transfer-encoding", b"chunked"), (b"host", b"h"), (b"Cache-Control", b"no-store"),
        (b"www-authenticate", b"Basic"), (b"location", b"/x"), (b"content-range", b"bytes 0-1/2"),
        (b"set-cookie", b"a=b"), (b"authorization", b"x"), (b":status", b"200"),
    ]  # fmt: skip
    kept = trailer_fields(trailers)
    assert kept == [(b"grpc-status", b"0"), (b"grpc-message", b"ok"), (b"x-t", b"1")]
    assert last_chunk(kept) == b"0\r\ngrpc-status: 0\r\ngrpc-message: ok\r\nx-t: 1\r\n\r\n"
    assert last_chunk([]) == b"0\r\n\r\n"
