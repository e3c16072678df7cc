"""POST actions on the API (drain): only from this host, never from a browser, never by GET."""

from __future__ import annotations

from typing import Any

import pytest

from passerelle.api.server import Answer, ApiProtocol, Request


class Transport:
    def __init__(self, peer: tuple[str, int], local: tuple[str, int]) -> None:
        self.extra = {"peername": peer, "sockname": local}
        self.written = b""

    def get_extra_info(self, name: str) -> Any:
        return self.extra.get(name)

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        pass


async def ask(peer: str, method: str, local: str, headers: str = "") -> tuple[bytes, list[str]]:
    calls: list[str] = []

    def act(_: Request) -> Answer:
        calls.append("drain")
        return Answer(202, b"draining\n")

    protocol = ApiProtocol(
        {"/api/drain": lambda _: Answer(200, b"status\n")}, loopback_only=False, actions={"/api/drain": act}
    )
    transport = Transport((peer, 40000), (local, 9000))
    protocol.connection_made(transport)  # type: ignore[arg-type]
    request = f"{method} /api/drain HTTP/1.1\r\nHost: x\r\n{headers}Content-Length: 0\r\n\r\n"
    protocol.data_received(request.encode())
    protocol.connection_lost(None)
    return transport.written.split(b"\r\n", 1)[0], calls


ACT = "X-Passerelle-Action: 1\r\n"
CASES = [
    ("127.0.0.1", "POST", "127.0.0.1", ACT, b"202 Accepted", True),
    ("::1", "POST", "::1", ACT, b"202 Accepted", True),
    ("::ffff:127.0.0.1", "POST", "::", ACT, b"202 Accepted", True),
    ("10.1.2.4", "POST", "10.1.2.4", ACT, b"202 Accepted", True),  # this host, to its own address
    ("10.1.2.3", "POST", "10.1.2.4", ACT, b"403 Forbidden", False),
    ("2001:db8::1", "POST", "::", ACT, b"403 Forbidden", False),
    (
        "127.0.0.1",
        "POST",
        "127.0.0.1",
        "Origin: http://evil.example\r\n" + ACT,
        b"403 Forbidden",
        False,
    ),  # a page
    ("127.0.0.1", "POST", "127.0.0.1", "", b"403 Forbidden", False),  # no action header (a plain form)
    ("127.0.0.1", "POST", "127.0.0.1", "X-Passerelle-Action: yes\r\n", b"403 Forbidden", False),
    ("127.0.0.1", "GET", "127.0.0.1", "", b"200 OK", False),
    ("127.0.0.1", "PUT", "127.0.0.1", "", b"405 Method Not Allowed", False),
]


@pytest.mark.parametrize("peer, method, local, headers, status, acted", CASES)
async def test_actions(peer: str, method: str, local: str, headers: str, status: bytes, acted: bool) -> None:
    line, calls = await ask(peer, method, local, headers)
    assert line == b"HTTP/1.1 " + status and bool(calls) is acted
