"""POST actions on the API (drain): only from loopback peers, and never by GET."""

from __future__ import annotations

from typing import Any

import pytest

from passerelle.api.server import Answer, ApiProtocol


class Transport:
    def __init__(self, peer: tuple[str, int], local: tuple[str, int]) -> None:
        self.peer = peer
        self.local = local
        self.written = b""

    def get_extra_info(self, name: str) -> Any:
        return {"peername": self.peer, "sockname": self.local}.get(name)

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        pass


def ask(peer: str, method: str, local: str = "127.0.0.1") -> tuple[bytes, list[str]]:
    calls: list[str] = []

    def act() -> Answer:
        calls.append("drain")
        return Answer(202, b"draining\n")

    protocol = ApiProtocol({"/api/drain": lambda: Answer(200, b"status\n")}, {"/api/drain": act})
    transport = Transport((peer, 40000), (local, 9000))
    protocol.connection_made(transport)  # type: ignore[arg-type]
    protocol.data_received(f"{method} /api/drain HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode())
    return transport.written.split(b"\r\n", 1)[0], calls


@pytest.mark.parametrize(
    "peer, method, status, acted, local",
    [
        ("127.0.0.1", "POST", b"HTTP/1.1 202 Accepted", True, "127.0.0.1"),
        ("::1", "POST", b"HTTP/1.1 202 Accepted", True, "::1"),
        ("::ffff:127.0.0.1", "POST", b"HTTP/1.1 202 Accepted", True, "::"),
        ("10.1.2.3", "POST", b"HTTP/1.1 403 Forbidden", False, "10.1.2.4"),
        ("10.1.2.4", "POST", b"HTTP/1.1 202 Accepted", True, "10.1.2.4"),  # from this host, to its address,
        ("2001:db8::1", "POST", b"HTTP/1.1 403 Forbidden", False, "::"),
        ("127.0.0.1", "GET", b"HTTP/1.1 200 OK", False, "127.0.0.1"),
    ],
)
def test_actions(peer: str, method: str, status: bytes, acted: bool, local: str) -> None:
    line, calls = ask(peer, method, local)
    assert line == status and bool(calls) is acted
