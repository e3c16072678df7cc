"""gRPC end to end: a real grpcio server behind passerelle in h2c, a real grpcio client over TLS.

The Service carries Traefik's `service.serversscheme: h2c`; the client speaks HTTP/2 over TLS
(ALPN h2) to passerelle, which opens cleartext HTTP/2 to the server (grpcio's insecure port).
Unary and server-streaming calls, an error status (grpc-status and grpc-message travel as
trailers), messages larger than every flow-control window both ways, and metadata. The same
server is then reached from HTTP/1.1: a gRPC POST with `TE: trailers` gets its grpc-status as
chunked trailers, one without gets the body and no trailers.
"""

from __future__ import annotations

import base64
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
import trustme

from tests.integration.harness import Router, dechunk, endpoint_slice, free_port, ingress, rule, service

CA = trustme.CA(organization_name="passerelle grpc test CA")
CERT = CA.issue_cert("grpc.test")
BIG = 300 * 1024  # over the 64 KiB initial windows, the 1 MiB ones are crossed by the stream test


def tls_secret(name: str) -> dict[str, Any]:
    crt = b"".join(p.bytes() for p in CERT.cert_chain_pems)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "type": "kubernetes.io/tls",
        "data": {
            "tls.crt": base64.b64encode(crt).decode(),
            "tls.key": base64.b64encode(CERT.private_key_pem.bytes()).decode(),
        },
    }


# -- the gRPC service: generic handlers on raw bytes, no .proto needed ---------------------------
class Calls:
    """What the server saw: the metadata of the last call, and how many calls there were."""

    def __init__(self) -> None:
        self.metadata: dict[str, str] = {}
        self.count = 0
        self.lock = threading.Lock()
        self.cancelled = threading.Event()

    def seen(self, context: grpc.ServicerContext) -> None:
        with self.lock:
            self.count += 1
            self.metadata = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}


def grpc_server(calls: Calls) -> tuple[grpc.Server, int]:
    def unary(request: bytes, context: grpc.ServicerContext) -> bytes:
        calls.seen(context)
        context.set_trailing_metadata((("x-trailer", "kept"),))
        return b"echo:" + request

    def count(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        calls.seen(context)
        n, size = struct.unpack("!II", request)
        for i in range(n):
            yield struct.pack("!I", i) + b"s" * size

    def fail(request: bytes, context: grpc.ServicerContext) -> bytes:
        calls.seen(context)
        context.abort(grpc.StatusCode.NOT_FOUND, "no such thing: " + request.decode())

    def big(request: bytes, context: grpc.ServicerContext) -> bytes:
        calls.seen(context)
        return request[::-1] + request  # twice the size, reversed first: every byte matters

    def endless(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        calls.seen(context)
        context.add_callback(calls.cancelled.set)  # runs when the RPC ends: here, cancelled
        while context.is_active():
            yield b"e" * 1024
            time.sleep(0.001)

    def upload(requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        calls.seen(context)
        total = sum(len(r) for r in requests)
        return struct.pack("!Q", total)

    handler = grpc.method_handlers_generic_handler(
        "test.Echo",
        {
            "Unary": grpc.unary_unary_rpc_method_handler(unary),
            "Count": grpc.unary_stream_rpc_method_handler(count),
            "Fail": grpc.unary_unary_rpc_method_handler(fail),
            "Big": grpc.unary_unary_rpc_method_handler(big),
            "Upload": grpc.stream_unary_rpc_method_handler(upload),
            "Endless": grpc.unary_stream_rpc_method_handler(endless),
        },
    )
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8),
        options=[("grpc.max_receive_message_length", 16 << 20), ("grpc.max_send_message_length", 16 << 20)],
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


@dataclass
class Site:
    router: Router
    port: int  # TLS entry point
    web: int  # plain HTTP/1.1 entry point
    calls: Calls


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    calls = Calls()
    server, grpc_port = grpc_server(calls)
    h2c = service("grpc-app")
    h2c["metadata"]["annotations"] = {"traefik.ingress.kubernetes.io/service.serversscheme": "h2c"}
    route = ingress("grpc", [rule("grpc.test", ("/", "Prefix", "grpc-app"))], tls=[{"secretName": "grpc"}])
    route["metadata"]["annotations"] = {"traefik.ingress.kubernetes.io/router.entrypoints": "web,websecure"}
    objects = [h2c, endpoint_slice("grpc-app", [grpc_port]), tls_secret("grpc"), route]
    workdir = tmp_path_factory.mktemp("grpc")
    port = free_port()
    config = {"entryPoints": {"websecure": {"address": f"127.0.0.1:{port}", "tls": {}}}}
    router = Router(workdir, config=config)
    router.write("objects.yaml", objects)
    router.start()
    yield Site(router, port, router.port, calls)
    server.stop(grace=None)
    assert router.stop() == 0, router.log()
    assert "Traceback" not in router.log(), router.log()


@pytest.fixture
def channel(site: Site) -> Iterator[grpc.Channel]:
    credentials = grpc.ssl_channel_credentials(root_certificates=CA.cert_pem.bytes())
    options = [
        ("grpc.ssl_target_name_override", "grpc.test"),
        ("grpc.default_authority", "grpc.test"),
        ("grpc.max_receive_message_length", 16 << 20),
    ]
    with grpc.secure_channel(f"127.0.0.1:{site.port}", credentials, options=options) as ch:
        yield ch


def test_unary_call_with_metadata_and_trailing_metadata(site: Site, channel: grpc.Channel) -> None:
    unary = channel.unary_unary("/test.Echo/Unary")
    reply, call = unary.with_call(b"hello", metadata=(("x-asked", "yes"),), timeout=10)
    assert reply == b"echo:hello"
    assert call.code() == grpc.StatusCode.OK
    assert ("x-trailer", "kept") in call.trailing_metadata()  # a trailer, through passerelle
    seen = site.calls.metadata
    assert seen["x-asked"] == "yes"
    assert seen["x-forwarded-proto"] == "https" and seen["x-forwarded-host"] == "grpc.test"
    assert seen["x-forwarded-for"] == "127.0.0.1"


def test_server_streaming_crosses_the_windows(channel: grpc.Channel) -> None:
    count = channel.unary_stream("/test.Echo/Count")
    messages = list(count(struct.pack("!II", 40, 64 * 1024), timeout=20))  # 2.5 MiB in all
    assert [struct.unpack("!I", m[:4])[0] for m in messages] == list(range(40))
    assert all(len(m) == 4 + 64 * 1024 for m in messages)


def test_an_error_status_reaches_the_client_as_code_and_message(channel: grpc.Channel) -> None:
    fail = channel.unary_unary("/test.Echo/Fail")
    with pytest.raises(grpc.RpcError) as raised:
        fail(b"widget", timeout=10)
    error: Any = raised.value
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == "no such thing: widget"


def test_large_messages_both_ways(channel: grpc.Channel) -> None:
    big = channel.unary_unary("/test.Echo/Big")
    payload = bytes(range(256)) * (BIG // 256)
    reply = big(payload, timeout=20)
    assert reply == payload[::-1] + payload


def test_client_streaming_upload(channel: grpc.Channel) -> None:
    upload = channel.stream_unary("/test.Echo/Upload")
    chunks = [bytes([i]) * (128 * 1024) for i in range(24)]  # 3 MiB: the request side's windows
    reply = upload(iter(chunks), timeout=30)
    assert struct.unpack("!Q", reply)[0] == 24 * 128 * 1024


def test_many_concurrent_calls(site: Site, channel: grpc.Channel) -> None:
    unary = channel.unary_unary("/test.Echo/Unary")
    with futures.ThreadPoolExecutor(max_workers=16) as pool:
        replies = list(pool.map(lambda i: unary(b"%d" % i, timeout=10), range(64)))
    assert replies == [b"echo:%d" % i for i in range(64)]


def test_an_unknown_method_is_unimplemented(channel: grpc.Channel) -> None:
    # grpcio answers "trailers-only" (one HEADERS frame with END_STREAM): passed on as such
    with pytest.raises(grpc.RpcError) as raised:
        channel.unary_unary("/test.Echo/Nope")(b"", timeout=10)
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED  # type: ignore[attr-defined]


def test_a_cancelled_call_cancels_the_upstream_stream(site: Site, channel: grpc.Channel) -> None:
    site.calls.cancelled.clear()
    call = channel.unary_stream("/test.Echo/Endless")(b"", timeout=30)
    assert len(next(call)) == 1024
    call.cancel()  # RST_STREAM(CANCEL) to passerelle, which resets its upstream stream
    assert site.calls.cancelled.wait(10)


def test_a_backend_that_is_down_is_unavailable(site: Site, channel: grpc.Channel) -> None:
    # passerelle's 502 over HTTP/2: gRPC clients map HTTP 502 to UNAVAILABLE (a retryable code)
    dead = service("grpc-dead")
    dead["metadata"]["annotations"] = {"traefik.ingress.kubernetes.io/service.serversscheme": "h2c"}
    route = ingress(
        "grpc-dead", [rule("dead.grpc.test", ("/", "Prefix", "grpc-dead"))], tls=[{"secretName": "grpc"}]
    )
    version = site.router.version()
    site.router.write("dead.yaml", [dead, endpoint_slice("grpc-dead", [free_port()]), route])
    site.router.wait_version(version)
    credentials = grpc.ssl_channel_credentials(root_certificates=CA.cert_pem.bytes())
    options = [("grpc.ssl_target_name_override", "grpc.test"), ("grpc.default_authority", "dead.grpc.test")]
    with grpc.secure_channel(f"127.0.0.1:{site.port}", credentials, options=options) as ch:
        with pytest.raises(grpc.RpcError) as raised:
            ch.unary_unary("/test.Echo/Unary")(b"x", timeout=10)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    assert "502" in raised.value.details()  # type: ignore[attr-defined]


# -- HTTP/1.1 clients --------------------------------------------------------------------------
def grpc_frame(message: bytes) -> bytes:
    return b"\x00" + struct.pack("!I", len(message)) + message


def http11(port: int, request: bytes, *, tls: bool = False) -> bytes:
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock: socket.socket = raw
    if tls:
        context = ssl.create_default_context()
        CA.configure_trust(context)
        context.set_alpn_protocols(["http/1.1"])
        sock = context.wrap_socket(raw, server_hostname="grpc.test")
    with sock:
        sock.sendall(request)  # with Connection: close: the answer ends with the connection
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
        return out


def grpc_post(*, te: bool) -> bytes:
    message = grpc_frame(b"over http/1.1")
    return (
        b"POST /test.Echo/Unary HTTP/1.1\r\nHost: grpc.test\r\nContent-Type: application/grpc\r\n"
        + (b"TE: trailers\r\nConnection: TE, close\r\n" if te else b"Connection: close\r\n")
        + b"Content-Length: %d\r\n\r\n" % len(message)
        + message
    )


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_http11_client_gets_trailers_when_it_asked_for_them(site: Site, tls: bool) -> None:
    answer = http11(site.port if tls else site.web, grpc_post(te=True), tls=tls)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), answer
    assert b"\r\nTransfer-Encoding: chunked" in head and b"content-type: application/grpc" in head.lower()
    data, trailers = dechunk(body)
    assert data == grpc_frame(b"echo:over http/1.1")
    assert b"grpc-status: 0\r\n" in trailers and b"x-trailer: kept\r\n" in trailers
    assert trailers.endswith(b"\r\n\r\n")


def test_a_grpc_server_refuses_a_request_without_te_trailers(site: Site) -> None:
    # gRPC over HTTP/2 requires `te: trailers` (PROTOCOL-HTTP2.md); grpcio resets the stream
    # without it, and passerelle answers 502 naming the reset. (Trailers dropped for a client
    # that did not ask for them: test_h2c_upstream.py, with a server that answers anyway.)
    answer = http11(site.web, grpc_post(te=False))
    assert answer.startswith(b"HTTP/1.1 502 "), answer
    assert b"reset the stream (INTERNAL_ERROR)" in answer
