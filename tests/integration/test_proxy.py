"""The data plane over real sockets: headers, bodies, keep-alive, pipelining, failures."""

from __future__ import annotations

import hashlib
import json
import socket
from collections.abc import Callable

import httpx
import pytest

from tests.integration.harness import (
    Backends,
    Router,
    echo,
    endpoint_slice,
    free_port,
    ingress,
    raw,
    rule,
    service,
)


class Conn:
    """A client connection that reads responses one at a time from a buffered stream."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.stream = self.sock.makefile("rb")

    def __enter__(self) -> Conn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stream.close()
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def head(self) -> tuple[bytes, dict[str, str]]:
        status = self.stream.readline().rstrip(b"\r\n")
        assert status, "connection closed before a response"
        headers = {}
        while (line := self.stream.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.lower()] = value.strip()
        return status, headers

    def response(self, *, body: bool = True) -> tuple[bytes, dict[str, str], bytes]:
        status, headers = self.head()
        data = self.stream.read(int(headers.get("content-length", "0"))) if body else b""
        return status, headers, data

    def closed_by_peer(self) -> bool:
        return self.stream.read(1) == b""


@pytest.fixture
def demo(backends: Backends, make_router: Callable[..., Router]) -> Router:
    """whoami.test -> pods a and b; /b on any host -> pod c."""
    a, b, c = backends.whoami("whoami-a"), backends.whoami("whoami-b"), backends.whoami("other-c")
    return make_router(
        [
            service("whoami"),
            endpoint_slice("whoami", [a, b]),
            service("other"),
            endpoint_slice("other", [c]),
            ingress(
                "demo",
                [rule("whoami.test", ("/", "Prefix", "whoami")), rule(None, ("/b", "Prefix", "other"))],
            ),
        ]
    )


def test_routes_by_host_case_insensitively_and_ignores_the_port(demo: Router) -> None:
    answer = echo(httpx.get(f"{demo.base}/x", headers={"Host": "WhoAmI.Test:8080"}))
    assert answer["pod"].startswith("whoami-")
    assert answer["host"] == "WhoAmI.Test:8080"  # the Host header is passed through untouched
    assert echo(httpx.get(f"{demo.base}/b/1", headers={"Host": "elsewhere"}))["pod"] == "other-c"
    response = httpx.get(f"{demo.base}/c", headers={"Host": "elsewhere"})
    assert response.status_code == 404
    assert response.text == "404 page not found\n"


def test_round_robin_across_endpoints(demo: Router) -> None:
    with httpx.Client(base_url=demo.base, headers={"Host": "whoami.test"}) as client:
        pods = [echo(client.get("/"))["pod"] for _ in range(6)]
    assert pods.count("whoami-a") == 3 and pods.count("whoami-b") == 3


def test_forwarded_headers_are_replaced_and_hop_by_hop_headers_dropped(demo: Router) -> None:
    request = (
        b"GET /h HTTP/1.1\r\nHost: whoami.test:81\r\n"
        b"X-Forwarded-For: 6.6.6.6\r\nX-Real-Ip: 6.6.6.6\r\nX-Forwarded-Proto: https\r\n"
        b"X-Forwarded-Host: evil\r\nX-Forwarded-Port: 1\r\n"
        b"Connection: close, X-Secret\r\nX-Secret: drop me\r\nKeep-Alive: timeout=5\r\n"
        b"Proxy-Authorization: Basic Zm9vOmJhcg==\r\nTE: trailers\r\nX-Kept: yes\r\n\r\n"
    )
    response = raw(demo.port, request)
    headers = json.loads(response.partition(b"\r\n\r\n")[2])["headers"]
    assert headers["X-Forwarded-For"] == ["127.0.0.1"]
    assert headers["X-Real-Ip"] == ["127.0.0.1"]
    assert headers["X-Forwarded-Proto"] == ["http"]
    assert headers["X-Forwarded-Host"] == ["whoami.test:81"]
    assert headers["X-Forwarded-Port"] == ["81"]
    assert headers["X-Kept"] == ["yes"]
    assert headers["TE"] == ["trailers"]  # forwarded, as Go's ReverseProxy (Traefik's) does: gRPC needs it
    for gone in ("X-Secret", "Keep-Alive", "Proxy-Authorization", "Connection"):
        assert gone not in headers, gone
    assert b"Connection: close" in response.partition(b"\r\n\r\n")[0]


def test_chunked_request_and_response_bodies_stream_through(demo: Router) -> None:
    parts = [b"a" * 1000, b"b" * 70000, b"c" * 3]
    with httpx.Client(base_url=demo.base, headers={"Host": "whoami.test"}) as client:
        answer = echo(client.post("/up", content=iter(parts)))
        assert answer["body_length"] == 71003
        assert answer["body_sha256"] == hashlib.sha256(b"".join(parts)).hexdigest()
        assert answer["headers"]["Transfer-Encoding"] == ["chunked"]
        down = client.get("/down?size=300000")
        assert down.headers["transfer-encoding"] == "chunked"
        assert len(down.content) == 300000
        fixed = client.get("/down?size=100000&length=1")
        assert fixed.headers["content-length"] == "100000" and len(fixed.content) == 100000


def test_keep_alive_on_both_sides(demo: Router) -> None:
    with Conn(demo.port) as c:
        remotes = set()
        for _ in range(3):
            c.send(b"GET /nowhere HTTP/1.1\r\nHost: elsewhere\r\n\r\n")
            assert c.response()[0] == b"HTTP/1.1 404 Not Found"
            c.send(b"GET /b/k HTTP/1.1\r\nHost: elsewhere\r\n\r\n")
            status, _, body = c.response()
            assert status == b"HTTP/1.1 200 OK"
            remotes.add(json.loads(body)["remote"])
    assert len(remotes) == 1, "the upstream connection should be pooled and reused"


def test_pipelined_requests_are_answered_in_order(demo: Router) -> None:
    with Conn(demo.port) as c:
        c.send(
            b"GET /b/first HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /b/third HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
        )
        first, second, third = c.response(), c.response(), c.response()
    assert json.loads(first[2])["path"] == "/b/first"
    assert second[0] == b"HTTP/1.1 404 Not Found"
    assert json.loads(third[2])["path"] == "/b/third"
    assert json.loads(third[2])["body_length"] == 5


def test_head_204_and_304_carry_no_body_and_keep_the_connection(demo: Router) -> None:
    with Conn(demo.port) as c:
        c.send(b"HEAD /b/x HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, _ = c.response(body=False)
        assert status == b"HTTP/1.1 200 OK" and int(headers["content-length"]) > 0
        for code in (204, 304):
            c.send(b"GET /b/x?status=%d HTTP/1.1\r\nHost: x\r\n\r\n" % code)
            status, headers, _ = c.response(body=False)
            assert status.startswith(b"HTTP/1.1 %d" % code)
            assert "transfer-encoding" not in headers and "content-length" not in headers
        # any stray body byte from the responses above would corrupt this next exchange
        c.send(b"GET /b/after HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, body = c.response()
        assert status == b"HTTP/1.1 200 OK" and json.loads(body)["path"] == "/b/after"


def test_expect_100_continue(demo: Router) -> None:
    with Conn(demo.port) as c:
        c.send(b"PUT /b/c HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        assert c.head()[0] == b"HTTP/1.1 100 Continue"
        c.send(b"body")
        status, _, body = c.response()
        assert status == b"HTTP/1.1 200 OK" and json.loads(body)["body_length"] == 4


def test_http10_client_gets_a_close_delimited_body(demo: Router) -> None:
    response = raw(demo.port, b"GET /b/x?size=5000 HTTP/1.0\r\nHost: x\r\n\r\n")
    head, _, body = response.partition(b"\r\n\r\n")
    assert b"chunked" not in head.lower()
    assert len(body) == 5000


def test_failures_502_503_504_and_retry(backends: Backends, make_router: Callable[..., Router]) -> None:
    alive = backends.whoami("alive")
    dead = free_port()  # nothing listens there
    slow = backends.whoami("slow")
    router = make_router(
        [
            service("dead"),
            endpoint_slice("dead", [dead]),
            service("half"),
            endpoint_slice("half", [dead, alive]),
            service("empty"),
            service("slow"),
            endpoint_slice("slow", [slow]),
            ingress(
                "failures",
                [
                    rule("dead.test", ("/", "Prefix", "dead")),
                    rule("half.test", ("/", "Prefix", "half")),
                    rule("empty.test", ("/", "Prefix", "empty")),
                    rule("missing.test", ("/", "Prefix", "missing")),
                    rule("slow.test", ("/", "Prefix", "slow")),
                ],
            ),
        ],
        config={"serversTransport": {"forwardingTimeouts": {"responseHeaderTimeout": "500ms"}}},
    )
    with httpx.Client(base_url=router.base, timeout=10) as client:
        response = client.get("/", headers={"Host": "dead.test"})
        assert response.status_code == 502
        assert "could not connect to upstream" in response.text
        assert all(client.get("/", headers={"Host": "half.test"}).status_code == 200 for _ in range(10))
        response = client.get("/", headers={"Host": "empty.test"})
        assert response.status_code == 503 and "no ready endpoints" in response.text
        response = client.get("/", headers={"Host": "missing.test"})
        assert response.status_code == 503 and "not found" in response.text
        response = client.get("/?delay=3", headers={"Host": "slow.test"})
        assert response.status_code == 504 and "did not answer within 0.5s" in response.text
        assert echo(client.get("/", headers={"Host": "slow.test"}))["pod"] == "slow"
    problems = {p["message"] for p in router.problems()}
    assert any("no ready endpoints" in m for m in problems)
    assert any("Service default/missing not found" in m for m in problems)


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"b" * 33000 + b"\r\n\r\n", 431),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\n"
            + b"".join(b"X-%d: %s\r\n" % (i, b"v" * 100) for i in range(400))
            + b"\r\n",
            431,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
        (b"GET / HTTP/1.1\r\n\r\n", 400),
        (b"NOT HTTP AT ALL\r\n\r\n", 400),
        (b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 405),
        (b"GET /b/x HTTP/1.1\r\nHost: x\r\nHost: whoami.test\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: nowhere\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", 404),
    ],
    ids=[
        "uri-too-long",
        "header-too-large",
        "too-many-headers",
        "cl-and-te",
        "bad-cl",
        "two-cl",
        "no-host",
        "garbage",
        "connect",
        "two-hosts",
        "failed-upgrade",
    ],
)
def test_malformed_requests_get_a_4xx_and_a_clean_close(
    demo: Router, request_bytes: bytes, status: int
) -> None:
    response = raw(demo.port, request_bytes)
    assert response.startswith(b"HTTP/1.1 %d " % status), response[:200]
    assert b"Connection: close" in response
    # and the router is still fine
    assert httpx.get(f"{demo.base}/b/ok", headers={"Host": "x"}).status_code == 200


def test_slow_headers_and_idle_connections_are_cut(
    backends: Backends, make_router: Callable[..., Router]
) -> None:
    port = backends.whoami("t")
    router = make_router(
        [service("t"), endpoint_slice("t", [port]), ingress("t", [rule(None, ("/", "Prefix", "t"))])],
        config={
            "entryPoints": {
                "web": {
                    "transport": {"respondingTimeouts": {"headerTimeout": "500ms", "idleTimeout": "700ms"}}
                }
            }
        },
    )
    with Conn(router.port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n")  # and never the end of the head
        assert c.response()[0] == b"HTTP/1.1 408 Request Timeout"
        assert c.closed_by_peer()
    with Conn(router.port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.response()[0] == b"HTTP/1.1 200 OK"
        assert c.closed_by_peer()  # after the idle timeout, well within the socket's 5 s timeout


def test_connection_cannot_strip_the_framing_headers(demo: Router) -> None:
    """Naming Content-Length in Connection must not turn the body into a smuggled second request."""
    smuggled = b"GET /b/admin HTTP/1.1\r\nHost: x\r\n\r\n"
    request = (
        b"POST /b/form HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: Content-Length, Host\r\n\r\n%s"
        % (len(smuggled), smuggled)
    )
    with Conn(demo.port) as c:
        c.send(request)
        status, _, body = c.response()
        answer = json.loads(body)
        assert status == b"HTTP/1.1 200 OK"
        assert answer["path"] == "/b/form" and answer["body_length"] == len(smuggled)
        assert answer["headers"]["Content-Length"] == [str(len(smuggled))] and answer["headers"]["Host"] == [
            "x"
        ]
        c.send(b"GET /b/next HTTP/1.1\r\nHost: x\r\n\r\n")  # the upstream connection is still in step
        assert json.loads(c.response()[2])["path"] == "/b/next"


def test_thousands_of_pipelined_local_answers(demo: Router) -> None:
    count = 3000
    with Conn(demo.port, timeout=20) as c:
        c.send(
            b"GET /b/first HTTP/1.1\r\nHost: x\r\n\r\n" + b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n" * count
        )
        assert c.response()[0] == b"HTTP/1.1 200 OK"
        for _ in range(count):
            assert c.response()[0] == b"HTTP/1.1 404 Not Found"


def test_a_streamed_chunked_upload_gets_its_last_chunk(demo: Router) -> None:
    """The response may start before the request ends: the terminating chunk must still go upstream."""
    with Conn(demo.port) as c:
        c.send(b"POST /b/stream HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        c.send(b"0\r\n\r\n")
        status, _, body = c.response()
        assert status == b"HTTP/1.1 200 OK" and json.loads(body)["body_length"] == 5
