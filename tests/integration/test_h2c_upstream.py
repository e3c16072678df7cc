"""h2c upstreams with a scripted HTTP/2 server (the h2 library, server side) on loopback.

What a gRPC server does not show on demand: resets, GOAWAY before and after a stream, a stream
refused, a silent server, a backend that is not HTTP/2 at all, trailers to an HTTP/1.1 client that
did not ask for them, pooling, and a reload while a stream is in flight. Requests come over plain
HTTP/1.1 (raw sockets, to see every byte) and over HTTP/2 (httpx).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import h2.config
import h2.connection
import h2.events
import pytest
from h2.errors import ErrorCodes
from hyperframe.frame import GoAwayFrame

from passerelle.kube.gateway import CONTROLLER_NAME
from tests.integration.harness import (
    Backends,
    Router,
    dechunk,
    endpoint_slice,
    free_port,
    ingress,
    raw,
    rule,
    service,
    wait_for,
)

GATEWAY = "gateway.networking.k8s.io/v1"


@dataclass
class Script:
    """What the scripted servers saw, and the switches a test flips."""

    connections: list[int] = field(default_factory=list)  # server port of each connection made
    lost: list[int] = field(default_factory=list)  # ... of each connection closed
    requests: list[dict[str, Any]] = field(default_factory=list)
    once: set[str] = field(default_factory=set)  # paths already refused / sent away once
    held: list[Callable[[], None]] = field(default_factory=list)  # answers of /held, to let go
    errors: list[str] = field(default_factory=list)  # HTTP/2 errors the servers saw: none, ever


class Scripted(asyncio.Protocol):
    """An h2c server. Paths: /echo (request as JSON, trailers x-t and grpc-status), /reset,
    /refuse-once, /goaway-once (GOAWAY naming an earlier stream), /drop-once (the connection
    closed, no GOAWAY), /goaway-graceful (GOAWAY naming
    this stream, then the answer), /goaway-error, /slow (never answers), /held (answers when
    the test lets it)."""

    def __init__(self, script: Script, port: int) -> None:
        self.script = script
        self.port = port
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding=None)
        )
        self.heads: dict[int, dict[bytes, bytes]] = {}
        self.bodies: dict[int, bytearray] = {}
        self.reset: set[int] = set()  # streams this server reset
        self.out: dict[int, bytes] = {}  # response bodies waiting for window
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.script.connections.append(self.port)
        self.conn.initiate_connection()
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.script.lost.append(self.port)

    def flush(self) -> None:
        assert self.transport is not None
        data = self.conn.data_to_send()
        if data and not self.transport.is_closing():
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError as e:  # passerelle broke HTTP/2 (its HPACK state, ...)
            self.script.errors.append(f"{self.port}: {e!r}")
            return
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                head = dict(event.headers or [])  # type: ignore[arg-type]
                self.heads[event.stream_id] = head
                self.bodies[event.stream_id] = bytearray()
                self.started(event.stream_id, head[b":path"].decode())
            elif isinstance(event, h2.events.DataReceived):
                self.bodies[event.stream_id] += event.data or b""
                self.conn.acknowledge_received_data(event.flow_controlled_length or 0, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                self.ended(event.stream_id)
            elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
                self.pump()
        self.flush()

    def goaway(self, last: int, code: ErrorCodes = ErrorCodes.NO_ERROR) -> None:
        assert self.transport is not None
        frame = GoAwayFrame(0)
        frame.last_stream_id = last
        frame.error_code = code
        self.transport.write(frame.serialize())  # raw: the library would stop sending after it

    def started(self, sid: int, target: str) -> None:
        assert self.transport is not None
        path = target.partition("?")[0]
        if path == "/reset":
            self.reset.add(sid)
            self.conn.reset_stream(sid, ErrorCodes.INTERNAL_ERROR)
        elif path in ("/refuse-once", "/goaway-once", "/drop-once") and target not in self.script.once:
            self.script.once.add(target)
            if path == "/refuse-once":
                self.reset.add(sid)
                self.conn.reset_stream(sid, ErrorCodes.REFUSED_STREAM)
            elif path == "/drop-once":
                self.reset.add(sid)
                self.transport.close()  # no GOAWAY: as a server closing an idle connection would
            else:
                self.flush()
                self.goaway(sid - 2)  # this stream was not processed: it may go again
                self.transport.close()
        elif path == "/goaway-error":
            self.flush()
            self.goaway(sid, ErrorCodes.PROTOCOL_ERROR)
            self.transport.close()
        elif path == "/goaway-graceful":
            self.flush()
            self.goaway(sid)

    def ended(self, sid: int) -> None:
        head = self.heads[sid]
        path = head[b":path"].decode()
        self.script.requests.append(
            {
                "port": self.port,
                "path": path,
                "headers": {k.decode(): v.decode() for k, v in head.items()},
                "body": bytes(self.bodies[sid]).decode("latin-1"),
            }
        )
        if (
            sid in self.reset
            or path in ("/slow", "/goaway-error")
            or self.conn.state_machine.state.name == "CLOSED"
        ):
            return
        if path == "/held":
            loop = asyncio.get_running_loop()
            self.script.held.append(lambda: loop.call_soon_threadsafe(self.answer, sid))
            return
        self.answer(sid)
        if path == "/goaway-graceful":
            assert self.transport is not None
            self.transport.close()

    def answer(self, sid: int) -> None:
        head = self.heads[sid]
        body = json.dumps(
            {
                "port": self.port,
                "headers": {k.decode(): v.decode() for k, v in head.items()},
                "body": bytes(self.bodies[sid]).decode("latin-1"),
            }
        ).encode()
        self.conn.send_headers(sid, [(b":status", b"200"), (b"content-type", b"application/json")])
        self.out[sid] = body
        self.pump()

    def pump(self) -> None:
        """Send what the windows allow; the trailers end each body once it is all out."""
        for sid, body in list(self.out.items()):
            while body:
                size = min(
                    self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size, len(body)
                )
                if size <= 0:
                    break
                self.conn.send_data(sid, body[:size])
                body = body[size:]
            self.out[sid] = body
            if not body:
                del self.out[sid]
                self.conn.send_headers(sid, [(b"x-t", b"1"), (b"grpc-status", b"0")], end_stream=True)
        self.flush()


class Http11Trailers(asyncio.Protocol):
    """An HTTP/1.1 server answering every request with a chunked body and trailers."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if b"\r\n\r\n" in data:
            te = b"\r\nTE: trailers\r\n" in data
            self.transport.write(  # type: ignore[attr-defined]
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-sum\r\n\r\n"
                b"2\r\nok\r\n0\r\nX-Sum: 42\r\nX-Te: %s\r\nCache-Control: no-store\r\n\r\n"
                % (b"yes" if te else b"no")
            )


def scripted_server(backends: Backends, script: Script) -> int:
    port = free_port()

    async def start() -> asyncio.AbstractServer:
        loop = asyncio.get_running_loop()
        return await loop.create_server(lambda: Scripted(script, port), "127.0.0.1", port)

    backends.serve(start)
    return port


def http11_trailers(backends: Backends) -> int:
    port = free_port()

    async def start() -> asyncio.AbstractServer:
        return await asyncio.get_running_loop().create_server(Http11Trailers, "127.0.0.1", port)

    backends.serve(start)
    return port


def h2c_service(name: str) -> dict[str, Any]:
    svc = service(name)
    svc["metadata"]["annotations"] = {"traefik.ingress.kubernetes.io/service.serversscheme": "h2c"}
    return svc


@dataclass
class Site:
    router: Router
    script: Script
    a: int  # scripted server ports
    b: int
    objects: list[dict[str, Any]]


@pytest.fixture(scope="module")
def site(backends: Backends, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    script = Script()
    a, b = scripted_server(backends, script), scripted_server(backends, script)
    plain = backends.whoami("not-h2")
    objects = [
        h2c_service("h2c-app"),
        endpoint_slice("h2c-app", [a]),
        h2c_service("h2c-plain"),
        endpoint_slice("h2c-plain", [plain]),  # an HTTP/1.1 server
        h2c_service("h2c-dead"),
        endpoint_slice("h2c-dead", [free_port()]),  # nothing listens
        service("h1-trailers"),
        endpoint_slice("h1-trailers", [http11_trailers(backends)]),
        ingress(
            "h2c",
            [
                rule("h2c.test", ("/", "Prefix", "h2c-app")),
                rule("plain.test", ("/", "Prefix", "h2c-plain")),
                rule("dead.test", ("/", "Prefix", "h2c-dead")),
                rule("h1.test", ("/", "Prefix", "h1-trailers")),
                rule(None, ("/", "Prefix", "h2c-app")),  # requests without a Host come here
            ],
        ),
    ]
    router = Router(tmp_path_factory.mktemp("h2c"), config={"workers": 1})  # one worker: one set of pools
    router.write("objects.yaml", objects)
    router.start()
    yield Site(router, script, a, b, objects)
    for release in script.held:
        release()
    assert router.stop() == 0, router.log()
    assert "Traceback" not in router.log(), router.log()
    assert script.errors == []


def get(site: Site, path: str, host: str = "h2c.test", extra: bytes = b"") -> tuple[bytes, bytes]:
    close = b"" if b"Connection:" in extra else b"Connection: close\r\n"
    request = b"GET %s HTTP/1.1\r\nHost: %s\r\n%s%s\r\n" % (path.encode(), host.encode(), close, extra)
    head, _, body = raw(site.router.port, request, timeout=10).partition(b"\r\n\r\n")
    return head, body


def post(site: Site, path: str, body: bytes, host: str = "h2c.test") -> tuple[bytes, bytes]:
    request = b"POST %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s" % (
        path.encode(),
        host.encode(),
        len(body),
        body,
    )
    head, _, out = raw(site.router.port, request, timeout=10).partition(b"\r\n\r\n")
    return head, out


# -- translation of the request, and trailers --------------------------------------------------
def test_the_request_reaches_the_server_as_http2_fields(site: Site) -> None:
    head, body = get(
        site,
        "/echo?q=1",
        extra=b"X-Forwarded-For: 6.6.6.6\r\nKeep-Alive: timeout=5\r\nProxy-Authorization: x\r\n"
        b"Connection: close, TE, X-Secret\r\nX-Secret: no\r\nTE: trailers, deflate\r\nX-Kept: yes\r\n",
    )
    assert head.startswith(b"HTTP/1.1 200 "), head
    data, _ = dechunk(body)
    seen = json.loads(data)["headers"]
    assert seen[":method"] == "GET" and seen[":path"] == "/echo?q=1" and seen[":scheme"] == "http"
    assert seen[":authority"] == "h2c.test"
    assert seen["te"] == "trailers"  # gRPC servers need it; the rest of TE goes
    assert seen["x-kept"] == "yes" and seen["x-forwarded-for"] == "127.0.0.1"
    for gone in ("host", "keep-alive", "proxy-authorization", "connection", "x-secret", "transfer-encoding"):
        assert gone not in seen, gone


def test_http11_trailers_only_when_the_client_said_te_trailers(site: Site) -> None:
    head, body = get(site, "/echo", extra=b"TE: trailers\r\n")
    data, trailers = dechunk(body)
    assert json.loads(data)["headers"][":path"] == "/echo"
    assert trailers == b"x-t: 1\r\ngrpc-status: 0\r\n\r\n"
    head, body = get(site, "/echo")  # no TE: the trailers are dropped, the body is whole
    assert b"transfer-encoding: chunked" in head.lower()
    data, trailers = dechunk(body)
    assert json.loads(data)["headers"][":path"] == "/echo"
    assert trailers == b"\r\n"


def test_http11_upstream_trailers_reach_a_client_that_sent_te_trailers(site: Site) -> None:
    """RFC 9110 §10.1.4: passerelle sends `TE: trailers` on, so it must not drop the trailers."""
    head, body = get(site, "/", host="h1.test", extra=b"TE: trailers\r\n")
    data, trailers = dechunk(body)
    assert data == b"ok"
    assert trailers == b"x-sum: 42\r\nx-te: yes\r\n\r\n"  # Cache-Control is not a trailer
    head, body = get(site, "/", host="h1.test")  # a client that did not ask: none
    assert dechunk(body) == (b"ok", b"\r\n")


def test_request_bodies_chunked_and_with_length(site: Site) -> None:
    chunked = raw(
        site.router.port,
        b"POST /echo HTTP/1.1\r\nHost: h2c.test\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n",
        timeout=10,
    )
    data, _ = dechunk(chunked.partition(b"\r\n\r\n")[2])
    seen = json.loads(data)
    assert seen["body"] == "hello, world"
    assert "transfer-encoding" not in seen["headers"] and "content-length" not in seen["headers"]
    sized = raw(
        site.router.port,
        b"PUT /echo HTTP/1.1\r\nHost: h2c.test\r\nConnection: close\r\nContent-Length: 300000\r\n\r\n"
        + b"x" * 300000,
        timeout=10,
    )
    seen = json.loads(dechunk(sized.partition(b"\r\n\r\n")[2])[0])
    assert seen["body"] == "x" * 300000 and seen["headers"]["content-length"] == "300000"


# -- pooling --------------------------------------------------------------------------------------
def test_one_connection_carries_many_requests(site: Site) -> None:
    before = site.script.connections.count(site.a)
    for _ in range(5):
        head, _ = get(site, "/echo")
        assert head.startswith(b"HTTP/1.1 200 ")
    assert site.script.connections.count(site.a) - before <= 1  # 0: one was open already


# -- errors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "host", "status", "says"),
    [
        ("/reset", "h2c.test", 502, b"reset the stream (INTERNAL_ERROR)"),
        ("/goaway-error", "h2c.test", 502, b"ended the connection"),
        ("/", "plain.test", 502, b"does not speak HTTP/2 (h2c)"),
        ("/", "dead.test", 502, b"could not connect to upstream"),
    ],
)
def test_failures_map_to_502(site: Site, path: str, host: str, status: int, says: bytes) -> None:
    head, body = get(site, path, host)
    assert head.startswith(b"HTTP/1.1 %d " % status), head + body
    assert says in body, body


def test_a_refused_stream_and_an_unprocessed_one_are_sent_again(site: Site) -> None:
    get(site, "/echo")  # the pooled connection has carried a response: /drop-once is a stale one
    for path in ("/refuse-once", "/goaway-once", "/drop-once"):
        head, body = get(site, path)
        assert head.startswith(b"HTTP/1.1 200 "), (path, head, body)
        assert [r["path"] for r in site.script.requests].count(path) == 2


@pytest.mark.parametrize("path", ["/refuse-once?post", "/goaway-once?post"])
def test_a_post_the_server_did_not_process_is_sent_again_with_its_body(site: Site, path: str) -> None:
    """RFC 9113 §8.7: REFUSED_STREAM, or a stream after a GOAWAY's last, is safe to retry (gRPC)."""
    get(site, "/echo")
    head, body = post(site, path, b"grpc-ish body")
    assert head.startswith(b"HTTP/1.1 200 "), head + body
    assert json.loads(dechunk(body)[0])["body"] == "grpc-ish body"
    assert path in site.script.once  # the first stream was sent away; the answer is the second's


def test_a_post_is_not_sent_again_after_the_connection_drops(site: Site) -> None:
    """The server may have processed it: as Go's transport, passerelle does not repeat it."""
    get(site, "/echo")  # a pooled connection that has carried a response
    head, body = post(site, "/drop-once?post", b"pay once")
    assert head.startswith(b"HTTP/1.1 502 "), head + body
    assert "/drop-once?post" in site.script.once  # it reached the server; a second try would be a 200


# -- requests without a Host: the smuggling the review found ---------------------------------------
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: h2c.test\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n"


@pytest.mark.parametrize(
    "request_",
    [
        b"POST /echo HTTP/1.0\r\nContent-Length: %d\r\n\r\n%s" % (len(SMUGGLED), SMUGGLED),
        b"POST /echo HTTP/1.1\r\nHost: \r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"%x\r\n%s\r\n0\r\n\r\n" % (len(SMUGGLED), SMUGGLED),
    ],
    ids=["http10-no-host", "empty-host-chunked"],
)
def test_a_request_without_host_goes_with_the_servers_authority_and_its_body_stays_a_body(
    site: Site, request_: bytes
) -> None:
    head, _, body = raw(site.router.port, request_, timeout=10).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1."), head
    assert b" 200 " in head.split(b"\r\n")[0], head + body
    seen = [r for r in site.script.requests if r["body"] == SMUGGLED.decode()]
    assert seen and seen[-1]["path"] == "/echo"
    assert seen[-1]["headers"][":authority"] == f"127.0.0.1:{site.a}"  # as Go: the server's host:port
    assert "/smuggled" not in [r["path"] for r in site.script.requests]
    head, _ = get(site, "/echo")  # the shared connection's HPACK state is still right
    assert head.startswith(b"HTTP/1.1 200 "), head
    assert site.script.errors == []


def test_after_a_graceful_goaway_the_stream_completes(site: Site) -> None:
    head, body = get(site, "/goaway-graceful", extra=b"TE: trailers\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), head + body
    data, trailers = dechunk(body)
    assert json.loads(data)["headers"][":path"] == "/goaway-graceful"
    assert b"grpc-status: 0" in trailers
    head, _ = get(site, "/echo")  # and the next request gets a new connection
    assert head.startswith(b"HTTP/1.1 200 ")


def test_no_answer_in_time_is_504(backends: Backends, make_router: Callable[..., Router]) -> None:
    script = Script()
    port = scripted_server(backends, script)
    config = {"workers": 1, "serversTransport": {"forwardingTimeouts": {"responseHeaderTimeout": "1s"}}}
    router = make_router(
        [
            h2c_service("slow"),
            endpoint_slice("slow", [port]),
            ingress("slow", [rule(None, ("/", "Prefix", "slow"))]),
        ],
        config=config,
    )
    answer = raw(router.port, b"GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout=10)
    assert answer.startswith(b"HTTP/1.1 504 "), answer
    assert b"did not answer within 1s" in answer
    head, _, _ = raw(
        router.port, b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout=10
    ).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")  # the connection is still good: only the stream went
    assert script.connections == [port]


def test_an_httproute_speaks_h2c_by_app_protocol_and_edits_the_response(
    backends: Backends, make_router: Callable[..., Router]
) -> None:
    """GEP-1911: a Service port with appProtocol kubernetes.io/h2c is spoken to in HTTP/2, and the
    route's ResponseHeaderModifier applies to what it answers as to an HTTP/1.1 backend's answer."""
    script = Script()
    port = scripted_server(backends, script)
    svc = service("rpc")
    svc["spec"]["ports"][0]["appProtocol"] = "kubernetes.io/h2c"
    edits = {
        "set": [{"name": "Content-Type", "value": "text/x-edited"}],
        "add": [{"name": "X-Via", "value": "gw"}],
    }
    router = make_router(
        [
            {"apiVersion": GATEWAY, "kind": "GatewayClass", "metadata": {"name": "pass"},
             "spec": {"controllerName": CONTROLLER_NAME}},
            {"apiVersion": GATEWAY, "kind": "Gateway", "metadata": {"name": "gw", "namespace": "default"},
             "spec": {"gatewayClassName": "pass", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}},
            {"apiVersion": GATEWAY, "kind": "HTTPRoute", "metadata": {"name": "r", "namespace": "default"},
             "spec": {"parentRefs": [{"name": "gw"}], "hostnames": ["rpc.test"], "rules": [
                 {"filters": [{"type": "ResponseHeaderModifier", "responseHeaderModifier": edits}],
                  "backendRefs": [{"name": "rpc", "port": 80}]}]}},
            svc,
            endpoint_slice("rpc", [port]),
        ],
        config={"workers": 1, "gateway": {"listeners": [{"port": 80, "entryPoint": "web"}]}},
    )  # fmt: skip
    answer = raw(
        router.port, b"GET /echo HTTP/1.1\r\nHost: rpc.test\r\nConnection: close\r\n\r\n", timeout=10
    )
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), answer
    fields = [line.lower() for line in head.split(b"\r\n")[1:]]
    assert b"content-type: text/x-edited" in fields and b"content-type: application/json" not in fields
    assert b"x-via: gw" in fields
    seen = json.loads(dechunk(body)[0])["headers"]
    assert seen[":method"] == "GET" and seen[":authority"] == "rpc.test"  # it came as HTTP/2
    assert script.connections == [port]


# -- reloads: make before break -------------------------------------------------------------------
def test_a_reload_keeps_the_stream_in_flight_and_moves_new_ones(site: Site) -> None:
    results: list[bytes] = []
    thread = threading.Thread(target=lambda: results.append(b"|".join(get(site, "/held"))))
    held_before = len(site.script.held)
    thread.start()
    wait_for(lambda: len(site.script.held) > held_before, "the held request reached the server")
    version = site.router.version()
    moved = [
        o
        for o in site.objects
        if o["kind"] != "List"
        or o["items"][0]["metadata"]["labels"]["kubernetes.io/service-name"] != "h2c-app"
    ]
    site.router.write("objects.yaml", [*moved, endpoint_slice("h2c-app", [site.b], suffix="b")])
    site.router.wait_version(version)
    head, body = get(site, "/echo")
    assert json.loads(dechunk(body)[0])["port"] == site.b  # new requests: the new server
    site.script.held[-1]()
    thread.join(timeout=10)
    assert results and results[0].startswith(b"HTTP/1.1 200 "), results
    wait_for(lambda: site.a in site.script.lost, "the old server's connection closed once idle")
