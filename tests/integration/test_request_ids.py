"""X-Request-Id on a real router: made when the client sends none, the client's kept when valid,
sent upstream once and logged as RequestID; off with `requestId.generate: false`."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.integration.harness import Backends, Router, echo, endpoint_slice, ingress, rule, service, wait_for

HEX32 = re.compile(r"^[0-9a-f]{32}$")


def objects(backend: int) -> list[dict[str, Any]]:
    return [
        service("app"),
        endpoint_slice("app", [backend]),
        ingress("app", [rule("app.test", ("/", "Prefix", "app"))]),
    ]


def short_way(port: int, request: bytes) -> bytes:
    """One keep-alive request alone in one read (http/fasthead.py), its whole response read."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
        while len(body) < length:
            body += sock.recv(65536)
        return body


def ids_seen(router: Router, headers: dict[str, str] | None = None) -> list[str]:
    answer = httpx.get(router.base, headers={"Host": "app.test", **(headers or {})})
    seen = echo(answer)["headers"]
    return [v for name, values in seen.items() if name.lower() == "x-request-id" for v in values]


def test_ids_are_made_kept_or_replaced_and_logged(
    backends: Backends, make_router: Callable[..., Router], tmp_path: Path
) -> None:
    access = tmp_path / "access.log"
    router = make_router(objects(backends.whoami("pod")), config={"accessLog": {"filePath": str(access)}})
    [first], [second] = ids_seen(router), ids_seen(router)
    assert HEX32.match(first) and HEX32.match(second) and first != second
    assert ids_seen(router, {"X-Request-Id": "trace-4bf92f3577b34da6"}) == ["trace-4bf92f3577b34da6"]
    for bad in ("x" * 201, "a b", 'forged", "DownstreamStatus": 200'):
        [made] = ids_seen(router, {"X-Request-Id": bad})
        assert HEX32.match(made), bad  # replaced, not passed on
    # httpx sends `Connection: keep-alive`, which takes the full parser's way; this takes the short one
    answer = short_way(router.port, b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
    assert re.search(rb'"X-Request-Id": \["[0-9a-f]{32}"\]', answer), answer
    wait_for(lambda: access.exists() and len(access.read_text().splitlines()) == 7, "7 access log lines")
    logged = [json.loads(line)["RequestID"] for line in access.read_text().splitlines()]
    assert {first, second, "trace-4bf92f3577b34da6"} <= set(logged)  # workers' lines interleave
    assert len(set(logged)) == 7


def test_with_generation_off_only_a_clients_valid_id_goes_upstream(
    backends: Backends, make_router: Callable[..., Router]
) -> None:
    router = make_router(objects(backends.whoami("pod")), config={"requestId": {"generate": False}})
    assert ids_seen(router) == []
    assert ids_seen(router, {"X-Request-Id": "abc"}) == ["abc"]
    assert ids_seen(router, {"X-Request-Id": "a b"}) == []
