"""HTTP/2 over TLS (ALPN h2) on a real router: curl --http2, httpx with http2=True, and a raw h2
client for what the others hide (stream resets, windows, GOAWAY, many streams on one connection).

Every stream goes to HTTP/1.1 backends; the assertions mirror the HTTP/1.1 ones in test_proxy.py
and test_tls.py where they exist.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h2.connection
import h2.events
import httpx
import pytest
import trustme
from h2.config import H2Configuration
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from hyperframe.frame import DataFrame, Frame, GoAwayFrame, HeadersFrame

from tests.integration.harness import (
    Backends,
    Router,
    echo,
    endpoint_slice,
    free_port,
    ingress,
    rule,
    service,
    wait_for,
)

CA = trustme.CA(organization_name="passerelle h2 test CA")
CERT = CA.issue_cert("h2.test", "*.h2.test")
MIB = 1 << 20


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


# -- a backend that shows what happened to its connections -------------------------------------
@dataclass
class Tap:
    """Connections a Tapped backend saw: bytes received, and whether they were closed."""

    received: list[int] = field(default_factory=list)
    lost: list[bool] = field(default_factory=list)
    transports: list[asyncio.Transport] = field(default_factory=list)  # closed at the end


class Tapped(asyncio.Protocol):
    """`/endless`: a chunked body that never ends; `/stall`: stop reading after the head, never answer;
    anything else: read and never answer."""

    def __init__(self, tap: Tap) -> None:
        self.tap = tap
        self.index = len(tap.received)
        tap.received.append(0)
        tap.lost.append(False)
        self.head = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.tap.transports.append(self.transport)  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.tap.received[self.index] += len(data)
        if b"\r\n\r\n" in self.head:
            return
        self.head += data
        if b"\r\n\r\n" not in self.head:
            return
        if self.head.startswith(b"GET /endless"):
            self.transport.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            self._more()
        elif self.head.startswith(b"POST /stall"):
            self.transport.pause_reading()

    def _more(self) -> None:
        assert self.transport is not None
        if self.transport.is_closing():
            return
        if self.transport.get_write_buffer_size() < MIB:
            self.transport.write(b"4000\r\n" + b"e" * 0x4000 + b"\r\n")
        asyncio.get_running_loop().call_later(0.001, self._more)

    def connection_lost(self, exc: Exception | None) -> None:
        self.tap.lost[self.index] = True


# -- the router ------------------------------------------------------------------------------------
@dataclass
class Site:
    router: Router
    port: int  # the TLS entry point
    h1_port: int  # a TLS entry point whose option offers only http/1.1
    tap: Tap
    workdir: Path


def scripted(reply: bytes) -> Callable[[], Coroutine[Any, Any, asyncio.AbstractServer]]:
    """A backend that answers every request head with `reply`, then closes."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(reply)
        await writer.drain()
        writer.close()

    async def start() -> asyncio.AbstractServer:
        return await asyncio.start_server(handle, "127.0.0.1", 0)

    return start


@pytest.fixture(scope="module")
def site(backends: Backends, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """h2.test -> two whoami pods; tap.h2.test -> a Tapped backend; redirect.h2.test -> a redirect;
    cut.h2.test -> a response cut short; eof.h2.test -> a close-delimited one; dead.h2.test -> no one."""
    tap = Tap()

    async def start_tap() -> asyncio.AbstractServer:
        loop = asyncio.get_running_loop()
        return await loop.create_server(lambda: Tapped(tap), "127.0.0.1", 0)

    a, b = backends.whoami("h2-a"), backends.whoami("h2-b")
    tapped = backends.serve(start_tap)
    cut = backends.serve(scripted(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789"))
    eof = backends.serve(scripted(b"HTTP/1.1 200 OK\r\n\r\n" + b"z" * 30000))
    redirect = ingress(
        "redirect", [rule("redirect.h2.test", ("/", "Prefix", "h2-app"))], tls=[{"secretName": "h2"}]
    )
    redirect["metadata"]["annotations"] = {
        "traefik.ingress.kubernetes.io/router.middlewares": "default-elsewhere@kubernetescrd"
    }
    objects = [
        service("h2-app"),
        endpoint_slice("h2-app", [a, b]),
        service("h2-tap"),
        endpoint_slice("h2-tap", [tapped]),
        service("h2-cut"),
        endpoint_slice("h2-cut", [cut]),
        service("h2-eof"),
        endpoint_slice("h2-eof", [eof]),
        service("h2-dead"),
        endpoint_slice("h2-dead", [free_port()]),  # nothing listens there
        tls_secret("h2"),
        {
            "apiVersion": "traefik.io/v1alpha1",
            "kind": "Middleware",
            "metadata": {"name": "elsewhere", "namespace": "default"},
            "spec": {"redirectScheme": {"scheme": "http", "port": "8080"}},
        },
        ingress(
            "h2",
            [
                rule("h2.test", ("/", "Prefix", "h2-app")),
                rule("tap.h2.test", ("/", "Prefix", "h2-tap")),
                rule("cut.h2.test", ("/", "Prefix", "h2-cut")),
                rule("eof.h2.test", ("/", "Prefix", "h2-eof")),
                rule("dead.h2.test", ("/", "Prefix", "h2-dead")),
            ],
            tls=[{"secretName": "h2"}],
        ),
        redirect,
    ]
    workdir = tmp_path_factory.mktemp("h2")
    port, h1_port = free_port(), free_port()
    config = {
        "entryPoints": {
            "websecure": {"address": f"127.0.0.1:{port}", "tls": {}},
            "h1only": {"address": f"127.0.0.1:{h1_port}", "tls": {"options": "h1"}},
        },
        "tls": {"options": {"h1": {"alpnProtocols": ["http/1.1"]}}},
    }
    router = Router(workdir, config=config)
    router.write("objects.yaml", objects)
    router.start()
    yield Site(router, port, h1_port, tap, workdir)
    assert router.stop() == 0, router.log()
    assert "Traceback" not in router.log() and "Fatal error" not in router.log(), router.log()

    async def close_tapped() -> None:
        for transport in tap.transports:
            transport.close()

    backends.call(close_tapped())


def client_context(alpn: list[str]) -> ssl.SSLContext:
    context = ssl.create_default_context()
    CA.configure_trust(context)
    context.set_alpn_protocols(alpn)
    return context


def resolve(site: Site, host: str = "h2.test") -> list[str]:
    return ["--resolve", f"{host}:{site.port}:127.0.0.1"]


# -- a raw HTTP/2 client -------------------------------------------------------------------------
@dataclass
class Answer:
    status: int = 0
    headers: dict[bytes, bytes] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)
    ended: bool = False
    reset: int | None = None

    def json(self) -> Any:
        return json.loads(self.body)


class H2Client:
    """h2 over a blocking TLS socket; `answers` collects each stream's response as it comes."""

    def __init__(self, port: int, *, window: int | None = None, read_body: bool = True) -> None:
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock = client_context(["h2", "http/1.1"]).wrap_socket(raw, server_hostname="h2.test")
        assert self.sock.selected_alpn_protocol() == "h2"
        self.conn = h2.connection.H2Connection(H2Configuration(client_side=True, header_encoding=None))
        self.conn.initiate_connection()
        if window is not None:
            self.conn.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: window})
        self.read_body = read_body  # acknowledge DATA as it arrives (else the window closes)
        self.answers: dict[int, Answer] = {}
        self.goaway: h2.events.ConnectionTerminated | None = None
        self.flush()

    def close(self) -> None:
        self.sock.close()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(
        self,
        method: str,
        path: str,
        *,
        host: str = "h2.test",
        headers: list[tuple[str, str]] | None = None,
        body: bytes | None = None,
        end: bool = True,
    ) -> int:
        stream_id = self.conn.get_next_available_stream_id()
        fields = [(":method", method), (":path", path), (":scheme", "https"), (":authority", host)]
        fields += headers or []
        encoded = [(n.encode(), v.encode()) for n, v in fields]
        self.conn.send_headers(stream_id, encoded, end_stream=end and body is None)
        self.answers[stream_id] = Answer()
        if body is not None:
            self.send_body(stream_id, body, end=end)
        self.flush()
        return stream_id

    def send_body(self, stream_id: int, body: bytes, *, end: bool) -> int:
        """Send what the windows allow of `body`; returns how much went."""
        sent = 0
        while sent < len(body):
            window = min(self.conn.local_flow_control_window(stream_id), self.conn.max_outbound_frame_size)
            if window <= 0:
                break
            self.conn.send_data(stream_id, body[sent : sent + window])
            sent += window
        if end and sent >= len(body):
            self.conn.end_stream(stream_id)
        self.flush()
        return min(sent, len(body))

    def read(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the connection")
        for event in self.conn.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived):
                answer = self.answers[event.stream_id]
                headers = dict(event.headers or [])  # type: ignore[arg-type]
                answer.status = int(headers.pop(b":status"))
                answer.headers = headers  # type: ignore[assignment]
            elif isinstance(event, h2.events.DataReceived):
                self.answers[event.stream_id].body += event.data or b""
                if self.read_body:
                    self.conn.acknowledge_received_data(event.flow_controlled_length or 0, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                self.answers[event.stream_id].ended = True
            elif isinstance(event, h2.events.StreamReset):
                self.answers[event.stream_id].reset = event.error_code
            elif isinstance(event, h2.events.ConnectionTerminated):
                self.goaway = event
        self.flush()

    def until(self, check: Callable[[], bool]) -> None:
        while not check():
            self.read()

    def answer(self, stream_id: int) -> Answer:
        answer = self.answers[stream_id]
        self.until(lambda: answer.ended or answer.reset is not None)
        return answer


# -- ALPN and the HTTP/1.1 clients of the same entry point ----------------------------------------
def test_alpn_offers_h2_first_and_http11_clients_are_still_served(site: Site) -> None:
    for offered, chosen in (
        (["h2", "http/1.1"], "h2"),
        (["http/1.1", "h2"], "h2"),
        (["http/1.1"], "http/1.1"),
    ):
        with socket.create_connection(("127.0.0.1", site.port), timeout=5) as raw:
            with client_context(offered).wrap_socket(raw, server_hostname="h2.test") as conn:
                assert conn.selected_alpn_protocol() == chosen
                if chosen == "http/1.1":
                    conn.sendall(b"GET /one HTTP/1.1\r\nHost: h2.test\r\nConnection: close\r\n\r\n")
                    data = b""
                    while chunk := conn.recv(65536):
                        data += chunk
                    head, _, body = data.partition(b"\r\n\r\n")
                    assert head.startswith(b"HTTP/1.1 200 OK")
                    assert json.loads(body)["headers"]["X-Forwarded-Proto"] == ["https"]
    with httpx.Client(verify=client_context(["http/1.1"]), http2=False) as client:
        response = client.get(
            f"https://127.0.0.1:{site.port}/",
            headers={"Host": "h2.test"},
            extensions={"sni_hostname": "h2.test"},
        )
        assert response.http_version == "HTTP/1.1"


def test_an_option_without_h2_keeps_its_hosts_on_http11(site: Site) -> None:
    with socket.create_connection(("127.0.0.1", site.h1_port), timeout=5) as raw:
        with client_context(["h2", "http/1.1"]).wrap_socket(raw, server_hostname="h2.test") as conn:
            assert conn.selected_alpn_protocol() == "http/1.1"


# -- httpx -----------------------------------------------------------------------------------------
def h2_client(site: Site) -> httpx.Client:
    transport = httpx.HTTPTransport(http2=True, verify=client_context(["h2", "http/1.1"]))
    return httpx.Client(
        transport=transport,
        base_url=f"https://127.0.0.1:{site.port}",
        headers={"Host": "h2.test"},
        timeout=10,
        event_hooks={"request": [_sni]},
    )


def _sni(request: httpx.Request) -> None:
    request.extensions["sni_hostname"] = "h2.test"  # the URL says 127.0.0.1, the certificate h2.test


@pytest.fixture
def h2x(site: Site) -> Iterator[httpx.Client]:
    with h2_client(site) as client:
        yield client


def test_httpx_get_carries_the_forwarded_headers_and_drops_hop_by_hop(h2x: httpx.Client) -> None:
    response = h2x.get(
        "/x?q=1",
        headers={
            "X-Forwarded-For": "6.6.6.6",
            "X-Real-Ip": "6.6.6.6",
            "X-Forwarded-Proto": "http",
            "X-Forwarded-Host": "evil",
            "X-Forwarded-Port": "1",
            "TE": "trailers",
            "Proxy-Authorization": "Basic Zm9vOmJhcg==",
            "X-Kept": "yes",
        },
    )
    assert response.http_version == "HTTP/2"
    assert response.status_code == 200
    answer = echo(response)
    assert answer["pod"].startswith("h2-")
    assert answer["method"] == "GET" and answer["path"] == "/x" and answer["query"] == "q=1"
    assert answer["proto"] == "HTTP/1.1"  # to the backend, every stream is an HTTP/1.1 exchange
    headers = answer["headers"]
    assert headers["Host"] == ["h2.test"]  # from :authority
    assert headers["X-Forwarded-For"] == ["127.0.0.1"]
    assert headers["X-Real-Ip"] == ["127.0.0.1"]
    assert headers["X-Forwarded-Proto"] == ["https"]
    assert headers["X-Forwarded-Host"] == ["h2.test"]
    assert headers["X-Forwarded-Port"] == ["443"]
    assert headers["x-kept"] == ["yes"]
    assert headers["TE"] == ["trailers"]  # forwarded, as Go's ReverseProxy (Traefik's) does: gRPC needs it
    for gone in ("te", "proxy-authorization", "Connection", "Transfer-Encoding", "Content-Length"):
        assert gone not in headers, gone
    assert not any(name.startswith(":") for name in headers)
    # response headers reach the client, lower-cased, hop-by-hop ones dropped
    assert response.headers["server"] == "passerelle-whoami"
    assert response.headers["content-type"] == "application/json"


def test_httpx_post_with_a_length_and_streamed_without_one(h2x: httpx.Client) -> None:
    body = bytes(range(256)) * 100
    answer = echo(h2x.post("/up", content=body))
    assert answer["method"] == "POST"
    assert answer["body_length"] == len(body)
    assert answer["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert answer["headers"]["content-length"] == [str(len(body))]
    parts = [b"a" * 1000, b"b" * 70000, b"c" * 3]
    streamed = echo(h2x.post("/up", content=iter(parts)))
    assert streamed["body_length"] == 71003
    assert streamed["body_sha256"] == hashlib.sha256(b"".join(parts)).hexdigest()
    assert streamed["headers"]["Transfer-Encoding"] == ["chunked"]  # no content-length: chunked upstream
    empty = echo(h2x.post("/empty"))
    assert empty["body_length"] == 0 and empty["headers"]["content-length"] == ["0"]


def test_httpx_one_mib_each_way(h2x: httpx.Client) -> None:
    block = bytes(range(256)) * 4096  # 1 MiB, not all one byte
    up = echo(h2x.put("/upload", content=block))
    assert up["body_length"] == MIB and up["body_sha256"] == hashlib.sha256(block).hexdigest()
    chunked = h2x.get(f"/download?size={MIB}")
    assert chunked.status_code == 200 and len(chunked.content) == MIB
    assert "transfer-encoding" not in chunked.headers
    fixed = h2x.get(f"/download?size={MIB}&length=1")
    assert fixed.headers["content-length"] == str(MIB) and fixed.content == b"x" * MIB


def test_httpx_many_concurrent_streams_on_one_connection(site: Site) -> None:
    async def run() -> list[httpx.Response]:
        transport = httpx.AsyncHTTPTransport(
            http2=True, verify=client_context(["h2"]), limits=httpx.Limits(max_connections=1)
        )
        async with httpx.AsyncClient(
            transport=transport, base_url=f"https://127.0.0.1:{site.port}", timeout=20
        ) as client:
            requests = [
                client.get(
                    f"/n/{i}?delay=0.2" if i % 10 == 0 else f"/n/{i}",
                    headers={"Host": "h2.test"},
                    extensions={"sni_hostname": "h2.test"},
                )
                for i in range(120)
            ]
            return list(await asyncio.gather(*requests))

    responses = asyncio.run(run())
    assert [r.status_code for r in responses] == [200] * 120
    assert [echo(r)["path"] for r in responses] == [f"/n/{i}" for i in range(120)]
    assert {echo(r)["pod"] for r in responses} == {"h2-a", "h2-b"}


def test_httpx_404_redirect_and_head(h2x: httpx.Client) -> None:
    missing = h2x.get("/", headers={"Host": "nowhere.test"})
    assert missing.status_code == 404 and missing.text == "404 page not found\n"
    assert missing.http_version == "HTTP/2"
    moved = h2x.get("/shop/cart?id=1", headers={"Host": "redirect.h2.test"})
    assert moved.status_code == 302
    assert moved.headers["location"] == "http://redirect.h2.test:8080/shop/cart?id=1"
    posted = h2x.post("/form", headers={"Host": "redirect.h2.test"}, content=b"x" * 100_000)
    assert posted.status_code == 307  # answered without reading the body; the connection goes on
    head = h2x.head("/h")
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) > 0
    for code in (204, 304):
        empty = h2x.get(f"/h?status={code}")
        assert empty.status_code == code and empty.content == b""
    assert echo(h2x.get("/after"))["path"] == "/after"  # nothing stray on the connection


# -- curl --------------------------------------------------------------------------------------------
def curl(site: Site, *args: str, host: str = "h2.test") -> subprocess.CompletedProcess[bytes]:
    ca = site.workdir / "ca.pem"
    if not ca.exists():
        CA.cert_pem.write_to_path(str(ca))
    return subprocess.run(
        ["curl", "--http2", "-sS", "--cacert", str(ca), *resolve(site, host), *args],
        capture_output=True,
        timeout=30,
        check=True,
    )


def test_curl_supports_http2() -> None:
    features = subprocess.run(["curl", "-V"], capture_output=True, check=True, text=True).stdout
    assert "HTTP2" in features, "this curl cannot speak HTTP/2 (install Debian's curl)"


def test_curl_get_post_head_404_and_a_mib_each_way(site: Site, tmp_path: Path) -> None:
    url = f"https://h2.test:{site.port}"
    got = curl(site, "-w", "\n%{http_version} %{http_code}", f"{url}/c")
    body, _, tail = got.stdout.rpartition(b"\n")
    assert tail == b"2 200"
    assert json.loads(body)["headers"]["X-Forwarded-Proto"] == ["https"]
    block = bytes(range(256)) * 4096
    upload = tmp_path / "up.bin"
    upload.write_bytes(block)
    posted = json.loads(curl(site, "--data-binary", f"@{upload}", f"{url}/post").stdout)
    assert posted["method"] == "POST" and posted["body_length"] == MIB
    assert posted["body_sha256"] == hashlib.sha256(block).hexdigest()
    download = tmp_path / "down.bin"
    curl(site, "-o", str(download), f"{url}/d?size={MIB}")
    assert download.read_bytes() == b"x" * MIB
    head = curl(site, "-I", f"{url}/head").stdout
    assert head.startswith(b"HTTP/2 200") and b"content-length:" in head
    missing = curl(
        site, "-w", "%{http_code}", f"https://nowhere.h2.test:{site.port}/", host="nowhere.h2.test"
    )
    assert missing.stdout == b"404 page not found\n404"


# -- the raw client: resets, windows, GOAWAY -------------------------------------------------------
def test_a_reset_mid_download_closes_that_upstream_connection_only(site: Site) -> None:
    client = H2Client(site.port)
    try:
        endless = client.request("GET", "/endless", host="tap.h2.test")
        client.until(lambda: len(client.answers[endless].body) > 200_000)
        assert client.answers[endless].status == 200
        index = len(site.tap.received) - 1
        assert not site.tap.lost[index]
        client.conn.reset_stream(endless, ErrorCodes.CANCEL)
        client.flush()
        wait_for(lambda: site.tap.lost[index], "the upstream connection of the reset stream closed")
        after = client.answer(client.request("GET", "/after"))  # the connection goes on
        assert after.status == 200 and after.json()["path"] == "/after"
    finally:
        client.close()


def test_a_reset_mid_upload_closes_that_upstream_connection(site: Site) -> None:
    client = H2Client(site.port)
    try:
        before = len(site.tap.received)
        upload = client.request("POST", "/sink", host="tap.h2.test", body=b"u" * 50_000, end=False)
        wait_for(lambda: len(site.tap.received) > before and site.tap.received[before] > 50_000, "body sent")
        client.conn.reset_stream(upload, ErrorCodes.CANCEL)
        client.flush()
        wait_for(lambda: site.tap.lost[before], "the upstream connection of the reset upload closed")
        assert client.answer(client.request("GET", "/ok")).status == 200
    finally:
        client.close()


def test_a_small_client_window_is_honoured_on_a_mib_download(site: Site) -> None:
    # The client's h2 state machine raises FlowControlError if the server sends past its window.
    client = H2Client(site.port, window=16384)
    try:
        streams = [client.request("GET", f"/w?size={MIB}") for _ in range(3)]
        for stream_id in streams:
            answer = client.answer(stream_id)
            assert answer.status == 200 and answer.body == b"x" * MIB
    finally:
        client.close()


def test_an_unread_download_stops_at_the_window_and_resumes(site: Site) -> None:
    client = H2Client(site.port, window=65535, read_body=False)
    try:
        stream_id = client.request("GET", f"/w?size={4 * MIB}")
        answer = client.answers[stream_id]
        client.until(lambda: len(answer.body) >= 65535)
        client.sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            client.read()  # the window is spent: nothing more comes
        assert len(answer.body) == 65535
        client.sock.settimeout(10)
        client.read_body = True
        client.conn.acknowledge_received_data(len(answer.body), stream_id)
        client.flush()
        assert len(client.answer(stream_id).body) == 4 * MIB
    finally:
        client.close()


def test_an_upload_to_a_backend_that_stops_reading_is_held_by_the_window(site: Site) -> None:
    client = H2Client(site.port)
    try:
        stream_id = client.request("POST", "/stall", host="tap.h2.test", end=False)
        body = b"s" * (64 * MIB)
        sent = 0
        client.sock.settimeout(0.5)
        stalled = 0
        while sent < len(body) and stalled < 4:
            went = client.send_body(stream_id, body[sent : sent + MIB], end=False)
            sent += went
            if went == 0:
                stalled += 1
                try:
                    client.read()  # WINDOW_UPDATEs, if the proxy still takes bytes
                except TimeoutError:
                    pass
        # The proxy holds at most its window beyond the sockets' buffers: far less than 64 MiB.
        assert stalled == 4 and sent < 24 * MIB, sent
    finally:
        client.close()


def test_expect_100_continue_and_interim_responses(site: Site) -> None:
    client = H2Client(site.port)
    try:
        stream_id = client.request(
            "PUT", "/c", headers=[("content-length", "4"), ("expect", "100-continue")], end=False
        )
        interim: list[h2.events.InformationalResponseReceived] = []
        while not interim:
            data = client.sock.recv(65536)
            assert data
            for event in client.conn.receive_data(data):
                if isinstance(event, h2.events.InformationalResponseReceived):
                    interim.append(event)
            client.flush()
        assert dict(interim[0].headers or [])[b":status"] == b"100"  # type: ignore[index]
        client.send_body(stream_id, b"body", end=True)
        answer = client.answer(stream_id)
        assert answer.status == 200 and answer.json()["body_length"] == 4
    finally:
        client.close()


def test_limits_and_cut_responses(site: Site) -> None:
    client = H2Client(site.port)
    try:
        assert client.answer(client.request("GET", "/" + "a" * 9000)).status == 414
        big = client.answer(client.request("GET", "/", headers=[("x-big", "b" * 40000)]))
        assert big.status == 431
        # A body shorter than its Content-Length: the client sees a reset, not a complete response.
        cut = client.answer(client.request("GET", "/", host="cut.h2.test"))
        assert cut.status == 200 and cut.reset == ErrorCodes.INTERNAL_ERROR and not cut.ended
        assert bytes(cut.body) == b"0123456789"
        # A close-delimited body (no length, no chunks) ends when the upstream closes.
        eof = client.answer(client.request("GET", "/", host="eof.h2.test"))
        assert eof.ended and eof.reset is None and bytes(eof.body) == b"z" * 30000
        dead = client.answer(client.request("POST", "/", host="dead.h2.test", body=b"lost"))
        assert dead.status == 502 and b"could not connect to upstream" in dead.body
        assert client.answer(client.request("GET", "/still")).status == 200  # the connection goes on
    finally:
        client.close()


def test_an_idle_connection_gets_goaway_after_idle_timeout(
    backends: Backends, make_router: Callable[..., Router]
) -> None:
    port = backends.whoami("h2-idle")
    tls_port = free_port()
    entry = {
        "address": f"127.0.0.1:{tls_port}",
        "tls": {},
        "transport": {"respondingTimeouts": {"idleTimeout": "1s"}},
    }
    make_router(
        [
            service("idle"),
            endpoint_slice("idle", [port]),
            tls_secret("idle"),
            ingress("idle", [rule("h2.test", ("/", "Prefix", "idle"))], tls=[{"secretName": "idle"}]),
        ],
        config={"entryPoints": {"websecure": entry}},
    )
    client = H2Client(tls_port)
    try:
        assert client.answer(client.request("GET", "/")).status == 200
        began = time.monotonic()
        client.until(lambda: client.goaway is not None)
        assert client.goaway is not None and client.goaway.error_code == ErrorCodes.NO_ERROR
        assert 0.5 < time.monotonic() - began < 5
        assert client.sock.recv(1) == b""  # then closed
    finally:
        client.close()


def test_cookie_crumbs_are_joined_for_the_http11_upstream(site: Site) -> None:
    client = H2Client(site.port)
    try:
        cookies = [("cookie", "a=1"), ("cookie", "b=2"), ("x-two", "1"), ("x-two", "2")]
        answer = client.answer(client.request("GET", "/c", headers=cookies))
        headers = answer.json()["headers"]
        assert headers["cookie"] == ["a=1; b=2"]  # RFC 9113 §8.2.3: one field for HTTP/1.1
        assert headers["x-two"] == ["1", "2"]
    finally:
        client.close()


def test_more_streams_than_a_client_would_open_at_once_in_one_connection(site: Site) -> None:
    client = H2Client(site.port)
    try:
        ids = [client.request("GET", f"/s/{i}") for i in range(100)]
        for i, stream_id in enumerate(ids):
            answer = client.answer(stream_id)
            assert answer.status == 200 and answer.json()["path"] == f"/s/{i}"
    finally:
        client.close()


def test_sigterm_sends_goaway_and_lets_the_streams_in_flight_finish(
    backends: Backends, make_router: Callable[..., Router]
) -> None:
    arrived = threading.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        arrived.set()
        await asyncio.sleep(0.5)  # SIGTERM comes meanwhile
        body = b'{"path": "/slow"}'
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()

    async def start() -> asyncio.AbstractServer:
        return await asyncio.start_server(handle, "127.0.0.1", 0)

    port = backends.serve(start)
    tls_port = free_port()
    router = make_router(
        [
            service("drain"),
            endpoint_slice("drain", [port]),
            tls_secret("drain"),
            ingress("drain", [rule("h2.test", ("/", "Prefix", "drain"))], tls=[{"secretName": "drain"}]),
        ],
        config={"entryPoints": {"websecure": {"address": f"127.0.0.1:{tls_port}", "tls": {}}}},
    )
    client = H2Client(tls_port)
    try:
        slow = client.request("GET", "/slow")
        assert arrived.wait(5), "the request did not reach the backend"
        assert router.process is not None
        router.process.send_signal(signal.SIGTERM)
        # h2's client state machine accepts nothing after a GOAWAY (it closes), so from here on the
        # frames are read by hand: a GOAWAY, then the slow stream's response, then the close.
        data = b""
        while chunk := client.sock.recv(65536):
            data += chunk
        frames = []
        while data:
            frame, length = Frame.parse_frame_header(memoryview(data[:9]))
            frame.parse_body(memoryview(data[9 : 9 + length]))
            frames.append(frame)
            data = data[9 + length :]
        goaway = next(i for i, f in enumerate(frames) if isinstance(f, GoAwayFrame))
        assert frames[goaway].last_stream_id == slow and frames[goaway].error_code == ErrorCodes.NO_ERROR
        after = frames[goaway + 1 :]
        headers = next(f for f in after if isinstance(f, HeadersFrame) and f.stream_id == slow)
        assert dict(client.conn.decoder.decode(headers.data, raw=True))[b":status"] == b"200"
        body = b"".join(f.data for f in after if isinstance(f, DataFrame) and f.stream_id == slow)
        assert json.loads(body)["path"] == "/slow"
        assert any("END_STREAM" in f.flags for f in after if isinstance(f, DataFrame))
    finally:
        client.close()
    assert router.process.wait(timeout=10) == 0
