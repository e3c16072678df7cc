"""The short way (http.fasthead) against the full parser: the same input, the same meaning out.

A request or response that arrives in one read may take the short way; the same bytes split into
two reads, the first ending inside the head, always go through the full parser. Whatever the
bytes, both must send the same request upstream (or answer the client the same way) and the same
response to the client, and leave the connections in the same state.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.http.heads import mutated
from tests.unit.proxy.memory import connected, parse_request, parse_response

_HOSTS = ("a.example", "b.example")

_header_names = st.sampled_from(
    [
        "Accept", "User-Agent", "Cookie", "X-Forwarded-Prefix", "X-Forwarded-For", "X-Real-Ip",
        "X-Forwarded-Proto", "Connection", "Keep-Alive", "TE", "Proxy-Authorization", "Trailer",
        "Content-Length", "Expect", "Host", "X-Custom", "connection", "CONTENT-length", "X_Forwarded-For",
        "Ssl-Client-Verify", "X-Request-Id",
    ]
)  # fmt: skip
_values = st.sampled_from(["", "0", "1", "a", " spaced  ", "close", "keep-alive", "x-custom", "b.example"])
_hosts = st.sampled_from(["a.example", "A.Example", "b.example:8080", "c.example", "a.example ", "[::1]:80"])
_targets = st.sampled_from(["/", "/x", "/x/y?q=1&r=/s", "/%2F?", "/a#frag", "http://a.example/p"])


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    method = draw(st.sampled_from(["GET", "HEAD", "DELETE", "OPTIONS", "POST", "PROPFIND", "CONNECT"]))
    target = draw(_targets) if method != "CONNECT" else "a.example:443"
    version = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.1", "HTTP/1.0"]))
    headers = draw(st.lists(st.tuples(_header_names, _values), max_size=4))
    host = draw(st.one_of(st.none(), _hosts))
    if host is not None:
        headers.insert(draw(st.integers(0, len(headers))), ("Host", host))
    lines = [f"{method} {target} {version}"] + [
        f"{name}:{' ' if value else ''}{value}" for name, value in headers
    ]
    return draw(mutated(("\r\n".join(lines) + "\r\n\r\n").encode()))


def exchange_request(data: bytes, split: int | None) -> tuple[object, bytes, bool]:
    with connected(_HOSTS) as pair:
        for read in [data] if split is None else [data[:split], data[split:]]:
            if pair.client_side.closed:
                break  # a closed transport delivers nothing more
            pair.client.data_received(read)
        sent = bytes(pair.upstream_side.data)
        upstream = parse_request(sent) if sent else None
        return upstream, bytes(pair.client_side.data), pair.client_side.closed


@settings(max_examples=400, deadline=None)
@given(requests(), st.integers(1, 10))
def test_a_request_means_the_same_whichever_way_it_went(data: bytes, cut: int) -> None:
    split = max(1, min(cut, len(data) - 5))  # inside the head: the first read cannot take the short way
    assert exchange_request(data, None) == exchange_request(data, split)


def test_the_short_way_is_taken_for_a_plain_request() -> None:
    """Guards the property test above against comparing the full parser with itself."""
    data = b"GET /x HTTP/1.1\r\nHost: a.example\r\nAccept: */*\r\n\r\n"
    with connected(_HOSTS) as pair:
        pair.client.data_received(data)
        assert pair.client._url == b""  # the full parser saw nothing: on_url never ran
        assert bytes(pair.upstream_side.data).startswith(data[:-2])  # forwarded as it came


_response_headers = st.sampled_from(
    [
        ("Server", "nginx"), ("Content-Type", "text/plain"), ("Connection", "keep-alive"),
        ("Connection", "close"), ("connection", "x-secret"), ("X-Secret", "1"), ("Keep-Alive", "timeout=5"),
        ("Set-Cookie", "a=b; Path=/"), ("Trailer", "X"), ("Date", "Tue, 01 Dec 2026 09:00:00 GMT"),
    ]
)  # fmt: skip


@st.composite
def responses(draw: st.DrawFn) -> bytes:
    status = draw(st.sampled_from([(200, "OK"), (201, "Created"), (204, "No Content"), (304, "Not Modified"),
                                   (404, "Not Found"), (500, "Internal Server Error"), (200, "Fine")]))  # fmt: skip
    body = draw(st.binary(max_size=40)) if status[0] not in (204, 304) else b""
    headers = [f"{n}: {v}" for n, v in draw(st.lists(_response_headers, max_size=4))]
    framing = draw(st.sampled_from(["length", "length", "chunked", "none", "twice"]))
    if framing in ("length", "twice"):
        headers.insert(draw(st.integers(0, len(headers))), f"Content-Length: {len(body)}")
    if framing == "twice":
        headers.append(f"Content-Length: {len(body)}")
    if framing == "chunked":
        headers.append("Transfer-Encoding: chunked")
        body = (b"%x\r\n%s\r\n" % (len(body), body) if body else b"") + b"0\r\n\r\n"
    interim = b"HTTP/1.1 100 Continue\r\n\r\n" if draw(st.booleans()) else b""
    head = "\r\n".join([f"HTTP/1.1 {status[0]} {status[1]}", *headers]) + "\r\n\r\n"
    return interim + draw(mutated(head.encode() + body))


def exchange_response(method: bytes, data: bytes, split: int | None) -> tuple[object, ...]:
    with connected(_HOSTS) as pair:
        pair.client.data_received(method + b" / HTTP/1.1\r\nHost: a.example\r\n\r\n")
        reads = [data] if split is None else [data[:split], data[split:]]
        for read in reads:
            pair.upstream.data_received(read)
            if pair.upstream.transport.is_closing():
                break
        pair.upstream.connection_lost(None)  # a close-delimited body ends here; a finished one is unaffected
        sent = bytes(pair.client_side.data)
        # a response that went wrong mid-way may be cut short, or not even a head: compared as bytes
        response = parse_response(sent, head=method == b"HEAD", whole=False) if b"\r\n\r\n" in sent else sent
        return response, pair.client_side.closed, pair.upstream_side.closed


@settings(max_examples=400, deadline=None)
@given(st.sampled_from([b"GET", b"HEAD"]), responses(), st.integers(1, 20))
def test_a_response_means_the_same_whichever_way_it_went(method: bytes, data: bytes, cut: int) -> None:
    assert exchange_response(method, data, None) == exchange_response(method, data, cut)


def test_a_plain_response_is_passed_on_without_the_parser() -> None:
    data = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nhi"
    with connected(_HOSTS) as pair:
        pair.client.data_received(b"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n")
        pair.upstream.data_received(data)
        assert pair.upstream.parser.get_status_code() == 0  # the full parser saw nothing
        assert bytes(pair.client_side.data) == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
        assert pair.pool_idle == [pair.upstream]  # back in the pool for the next request


def test_a_body_over_several_reads_is_counted_and_the_connection_reused() -> None:
    with connected(_HOSTS) as pair:
        pair.client.data_received(b"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n")
        pair.upstream.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123")
        assert pair.pool_idle == []
        pair.upstream.data_received(b"456")
        pair.upstream.data_received(b"789")
        assert bytes(pair.client_side.data).endswith(b"\r\n\r\n0123456789")
        assert pair.pool_idle == [pair.upstream] and not pair.upstream_side.closed
        pair.client.data_received(b"GET /next HTTP/1.1\r\nHost: a.example\r\n\r\n")
        assert bytes(pair.upstream_side.data).count(b"GET ") == 2  # the same connection, reused


def test_bytes_beyond_content_length_are_dropped_and_the_connection_closed() -> None:
    with connected(_HOSTS) as pair:
        pair.client.data_received(b"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n")
        pair.upstream.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n01")
        pair.upstream.data_received(b"23HTTP/1.1 200 OK\r\n")  # a second response nobody asked for
        assert bytes(pair.client_side.data).endswith(b"\r\n\r\n0123")
        assert pair.upstream_side.closed and pair.pool_idle == []
        assert not pair.client_side.closed  # the client's exchange was complete and correct


def test_two_requests_in_one_read_never_pass_as_one() -> None:
    """The second has no Host and nothing the header search would catch: only the full parser,
    message by message, sees that it is a second request (and refuses it)."""
    data = b"GET /a HTTP/1.1\r\nHost: a.example\r\n\r\nGET /b HTTP/1.1\r\nAccept: */*\r\n\r\n"
    with connected(_HOSTS) as pair:
        pair.client.data_received(data)
        sent = bytes(pair.upstream_side.data)
        assert sent.count(b" HTTP/1.1\r\n") == 1 and sent.startswith(b"GET /a ")


def test_two_responses_in_one_read_pass_on_only_the_first() -> None:
    with connected(_HOSTS) as pair:
        pair.client.data_received(b"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n")
        one = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
        pair.upstream.data_received(one + b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nspoof")
        assert bytes(pair.client_side.data) == one
        assert pair.upstream_side.closed  # out of sync: not reused
        assert pair.upstream.pool.acquire() is None


# The full parser's side of the same rule: a read holding more than the response is never parsed
# on as the next exchange's answer (found by review: the connection went back to the pool while
# llhttp went on through the extra bytes, leaving it mid-head or in error for the next request).
_CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"


def test_a_partial_head_after_a_response_closes_the_connection() -> None:
    with connected(_HOSTS) as pair:
        pair.client.data_received(b"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n")
        pair.upstream.data_received(_CHUNKED + b"HTTP/1.1 200 OK\r\nSet-Cookie: sid=evil\r\nX-Pad: ")
        assert b"hi" in bytes(pair.client_side.data) and b"evil" not in bytes(pair.client_side.data)
        assert pair.upstream_side.closed and pair.upstream.pool.acquire() is None


def test_a_body_longer_than_its_content_length_closes_the_connection() -> None:
    with connected(_HOSTS) as pair:
        pair.client.data_received(b"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n")
        pair.upstream.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Long: y\r\n\r\nhelloxx")
        answer = bytes(pair.client_side.data)
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b"\r\n\r\nhello")
        assert pair.upstream_side.closed and pair.upstream.pool.acquire() is None
        assert not pair.client_side.closed  # the client's exchange was complete and correct


def test_a_pipelined_request_never_gets_the_extra_bytes_as_its_answer() -> None:
    with connected(_HOSTS) as pair:
        pair.client.data_received(
            b"GET /a HTTP/1.1\r\nHost: a.example\r\n\r\nGET /b HTTP/1.1\r\nHost: a.example\r\n\r\n"
        )
        pair.upstream.data_received(_CHUNKED + b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nspoof")
        assert b"spoof" not in bytes(pair.client_side.data)
        assert pair.upstream_side.closed
