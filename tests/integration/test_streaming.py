"""1 GiB through the proxy in each direction, with the proxy's peak RSS under 100 MB."""

from __future__ import annotations

import hashlib
import json
import socket
from collections.abc import Callable

from tests.integration.harness import Backends, Router, endpoint_slice, ingress, rule, service

GIB = 1 << 30
RSS_LIMIT_KIB = 100 * 1024


def test_one_gib_upload_and_download_in_bounded_memory(
    backends: Backends, make_router: Callable[..., Router]
) -> None:
    port = backends.whoami("bulk")
    router = make_router(
        [
            service("bulk"),
            endpoint_slice("bulk", [port]),
            ingress("bulk", [rule(None, ("/", "Prefix", "bulk"))]),
        ],
        config={"workers": 2},
    )
    block = bytes(range(256)) * 4096  # 1 MiB, not all one byte
    digest = hashlib.sha256()
    for _ in range(GIB // len(block)):
        digest.update(block)

    with socket.create_connection(("127.0.0.1", router.port), timeout=60) as s:
        s.sendall(b"PUT /upload HTTP/1.1\r\nHost: bulk\r\nContent-Length: %d\r\n\r\n" % GIB)
        for _ in range(GIB // len(block)):
            s.sendall(block)
        stream = s.makefile("rb")
        assert stream.readline() == b"HTTP/1.1 200 OK\r\n"
        length = 0
        while (line := stream.readline()) != b"\r\n":
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        answer = json.loads(stream.read(length))
        assert answer["body_length"] == GIB
        assert answer["body_sha256"] == digest.hexdigest()

        s.sendall(b"GET /download?size=%d&length=1 HTTP/1.1\r\nHost: bulk\r\n\r\n" % GIB)
        assert stream.readline() == b"HTTP/1.1 200 OK\r\n"
        while stream.readline() != b"\r\n":
            pass
        received = 0
        while received < GIB:
            chunk = stream.read1(1 << 20)
            assert chunk, f"connection closed after {received} bytes"
            received += len(chunk)
        assert received == GIB
        stream.close()

    peaks = router.rss_peak_kib()
    assert len(peaks) == 3  # the control plane and two workers: one of them carried the gigabytes
    assert max(peaks.values()) < RSS_LIMIT_KIB, f"peak RSS by pid (KiB): {peaks}"
