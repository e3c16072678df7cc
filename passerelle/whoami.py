"""`passerelle whoami`: a small echo backend for demos and tests, in the spirit of traefik/whoami.

It answers every request with JSON describing what it received (method, path, host, headers, the
body's length and SHA-256, its own pod and namespace names), the shape the Ingress conformance echo
servers use; `X-Echo-Set-Header: Name:value,...` adds those response headers. Query parameters shape the answer: `size=N` streams N bytes instead (chunked unless
`length=1`), `status=N` sets the status, `delay=S` waits S seconds before answering.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from email.utils import formatdate
from urllib.parse import parse_qs, urlsplit

from httptools import HttpParserError, HttpRequestParser

_CHUNK = b"x" * 65536


class WhoamiProtocol(asyncio.Protocol):
    def __init__(self, pod: str, namespace: str) -> None:
        self.pod = pod
        self.namespace = namespace
        self.parser = HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._url = b""
        self._headers: list[tuple[str, str]] = []
        self._length = 0
        self._digest = hashlib.sha256()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except HttpParserError:
            assert self.transport is not None
            self.transport.write(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            self.transport.close()

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._length = 0
        self._digest = hashlib.sha256()

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        expects = any(k.lower() == "expect" and v.lower() == "100-continue" for k, v in self._headers)
        if expects and self.transport is not None:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # as Go's server does

    def on_body(self, body: bytes) -> None:
        self._length += len(body)
        self._digest.update(body)

    def on_message_complete(self) -> None:
        self.transport.pause_reading()  # type: ignore[union-attr]  # one request at a time, in order
        task = asyncio.get_running_loop().create_task(self._answer())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self) -> None:
        transport = self.transport
        assert transport is not None
        target = self._url.decode("latin-1")
        split = urlsplit(target)
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        keep_alive = self.parser.should_keep_alive()
        method = self.parser.get_method().decode()
        if "delay" in query:
            await asyncio.sleep(float(query["delay"]))
        status = int(query.get("status", 200))
        extra = b"Date: %s\r\nServer: passerelle-whoami\r\n" % formatdate(usegmt=True).encode()
        # X-Echo-Set-Header: `Name:value,Name2:value2` are answered as headers (the upstream echo's)
        for asked in (v for k, v in self._headers if k.lower() == "x-echo-set-header"):
            for pair in asked.split(","):
                name, colon, value = pair.partition(":")
                if colon and name.strip():
                    extra += b"%s: %s\r\n" % (name.strip().encode("latin-1"), value.strip().encode("latin-1"))
        if not keep_alive:
            extra += b"Connection: close\r\n"
        if "size" in query:
            size = int(query["size"])
            if query.get("length") == "1":
                transport.write(b"HTTP/1.1 %d OK\r\nContent-Length: %d\r\n%s\r\n" % (status, size, extra))
                await _stream(transport, size, chunked=False)
            else:
                transport.write(b"HTTP/1.1 %d OK\r\nTransfer-Encoding: chunked\r\n%s\r\n" % (status, extra))
                await _stream(transport, size, chunked=True)
                transport.write(b"0\r\n\r\n")
        else:
            headers: dict[str, list[str]] = {}
            for name, value in self._headers:
                headers.setdefault(name, []).append(value)
            host = next((v for k, v in self._headers if k.lower() == "host"), "")
            body = json.dumps(
                {
                    "pod": self.pod,
                    "namespace": self.namespace,
                    "method": method,
                    "path": split.path,
                    "query": split.query,
                    "host": host,
                    "proto": f"HTTP/{self.parser.get_http_version()}",
                    "headers": headers,
                    "body_length": self._length,
                    "body_sha256": self._digest.hexdigest(),
                    "remote": "{}:{}".format(*transport.get_extra_info("peername")[:2]),
                }
            ).encode()
            if status in (204, 304):
                transport.write(b"HTTP/1.1 %d No Content\r\n%s\r\n" % (status, extra))
            else:
                transport.write(
                    b"HTTP/1.1 %d OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s"
                    % (status, len(body), extra, b"" if method == "HEAD" else body)
                )
        if keep_alive:
            transport.resume_reading()
        else:
            transport.close()


async def _stream(transport: asyncio.Transport, size: int, *, chunked: bool) -> None:
    sent = 0
    while sent < size and not transport.is_closing():
        piece = _CHUNK[: min(len(_CHUNK), size - sent)]
        transport.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
        sent += len(piece)
        while transport.get_write_buffer_size() > 1 << 20 and not transport.is_closing():
            await asyncio.sleep(0.001)  # crude back-pressure: a test backend, not the data plane


async def serve_whoami(host: str, port: int, *, pod: str, namespace: str = "default") -> asyncio.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: WhoamiProtocol(pod, namespace), host or None, port, reuse_address=True
    )
