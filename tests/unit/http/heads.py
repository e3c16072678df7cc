"""Hypothesis strategies for HTTP/1.1 heads near the edge of what the short way takes (http.fasthead):
mostly plain ones, half of them then edited with bytes and line ends that llhttp refuses or reads
otherwise (bare CR or LF, obs-fold, NUL, a second Host, framing headers, a pipelined request,
a cut-off head). Shared by the differential tests against llhttp and the short-way tests."""

from __future__ import annotations

from hypothesis import strategies as st

_METHODS = [b"GET"] * 4 + [b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"TRACE", b"CONNECT",
            b"get", b"PROPFIND", b"G"]  # fmt: skip
_PLAIN_NAMES = [b"Accept", b"User-Agent", b"X-Custom", b"Cookie", b"Expect", b"X!#$%&'*+-.^_`|~", b"host2"]
_SPECIAL_NAMES = [
    b"Host", b"host", b"Content-Length", b"content-LENGTH", b"Transfer-Encoding", b"Connection", b"connection",
    b"Keep-Alive", b"TE", b"Upgrade", b"X-Forwarded-For", b"x_forwarded_for", b"X-Real-Ip", b"X-Request-Id",
    b"Proxy-Connection", b"Trailer", b"Ssl-Client-Cert",
]  # fmt: skip
_VALUES = st.one_of(
    st.sampled_from([b"", b"a.example", b" a.example \t", b"0", b"13", b" 5 ", b"1,2", b"close", b"keep-alive",
                     b"Keep-Alive", b"chunked", b"trailers", b"x-custom", b"*/*", b"\x80\xff"]),
    st.lists(st.sampled_from(list(b"aZ09 \t/,;=\"\x80\xff:")), max_size=8).map(bytes),
)  # fmt: skip
# What a mutation puts somewhere in a head: bytes and line ends llhttp refuses or reads otherwise.
_NASTY = st.sampled_from([b"\x00", b"\r", b"\n", b"\x7f", b"\x01", b" ", b"\t", b":", b"\r\n", b"\r\n ",
                          b"\r\n\r\n", b"\xe9", b"\x0b", b",", b"\r\nHost: b\r\n", b"\r\nContent-Length: 1\r\n",
                          b"\r\nTransfer-Encoding: chunked\r\n", b"\r\nConnection: close\r\n"])  # fmt: skip


@st.composite
def _fields(draw: st.DrawFn) -> list[bytes]:
    """Header lines, mostly plain ones a browser or nginx sends, some the proxy must act on."""
    lines = []
    for _ in range(draw(st.integers(0, 5))):
        name = draw(
            st.sampled_from(_SPECIAL_NAMES) if draw(st.integers(0, 4)) == 0 else st.sampled_from(_PLAIN_NAMES)
        )
        lines.append(name + draw(st.sampled_from([b":", b": ", b":\t"])) + draw(_VALUES) + b"\r\n")
    return lines


@st.composite
def mutated(draw: st.DrawFn, head: bytes) -> bytes:
    """`head`, as it is half of the time, else with up to three nasty edits: a byte or line end
    inserted or replaced anywhere, bytes cut off the end, or more appended (a pipelined request)."""
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 1, 2, 3]))):
        at = draw(st.integers(0, len(head)))
        edit = draw(st.integers(0, 3))
        if edit == 0:
            head = head[:at] + draw(_NASTY) + head[at:]
        elif edit == 1:
            head = head[:at] + draw(_NASTY) + head[at + 1 :]
        elif edit == 2:
            head = head[:at]
        else:
            head += draw(st.sampled_from([b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b"x", b"\r\n", b"\n"]))
    return head


@st.composite
def request_heads(draw: st.DrawFn) -> bytes:
    method = draw(st.sampled_from(_METHODS))
    target = draw(
        st.one_of(
            st.sampled_from([b"/", b"/x?y=1#z", b"/a/b", b"*", b"http://a/", b"/%zz", b"a.example:443"]),
            st.lists(st.integers(0x21, 0x7E), max_size=6).map(lambda b: b"/" + bytes(b)),
        )
    )
    version = draw(st.sampled_from([b"HTTP/1.1"] * 6 + [b"HTTP/1.0", b"http/1.1", b"HTTP/1.10", b"HTTP/2"]))
    host = draw(
        st.sampled_from([b"Host: a.example", b"host:a.example:8080 ", b"HOST: [::1]", b"Host:", b"Host: a b"])
    )
    head = method + b" " + target + b" " + version + b"\r\n" + host + b"\r\n" + b"".join(draw(_fields()))
    return draw(mutated(head + b"\r\n"))


@st.composite
def response_heads(draw: st.DrawFn) -> bytes:
    status = draw(st.sampled_from([b"200 OK"] * 4 + [b"404 Not Found", b"200 Fine", b"204 No Content",
                                   b"100 Continue", b"500 Internal Server Error", b"418 I'm a Teapot"]))  # fmt: skip
    version = draw(st.sampled_from([b"HTTP/1.1"] * 6 + [b"HTTP/1.0", b"http/1.1"]))
    lines = draw(_fields())
    body = draw(st.sampled_from([b"", b"hello", b"hello, world"]))
    if draw(st.integers(0, 5)):
        length = draw(
            st.sampled_from([b"%d" % len(body)] * 4 + [b"05", b" 5 ", b"5\t", b"+5", b"5,5", b"", b"99"])
        )
        lines.insert(draw(st.integers(0, len(lines))), b"Content-Length:" + length + b"\r\n")
    if draw(st.booleans()):
        value = draw(
            st.sampled_from([b" keep-alive", b"close", b" CLOSE ", b" Keep-Alive", b" close, x", b" x"])
        )
        lines.insert(draw(st.integers(0, len(lines))), b"Connection:" + value + b"\r\n")
    head = version + b" " + status + b"\r\n" + b"".join(lines) + b"\r\n"
    return draw(mutated(head + body))
