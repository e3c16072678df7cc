"""Upstreams that misbehave, or are merely old: each gets the answer a client can rely on."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable

import httpx
import pytest

from tests.integration.harness import Backends, Router, endpoint_slice, ingress, rule, service


def scripted(reply: bytes, *, close: bool = True) -> Callable[[], object]:
    """A backend that reads one request head, writes `reply` verbatim, and (by default) closes."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(reply)
        await writer.drain()
        if close:
            writer.close()

    async def start() -> asyncio.AbstractServer:
        return await asyncio.start_server(handle, "127.0.0.1", 0)

    return start


CASES = {
    "http10-close-delimited": (
        b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nold school body",
        200,
        b"old school body",
    ),
    "malformed": (b"HTTP/1.1 2OO OK\r\n\r\n", 502, b"invalid response from upstream"),
    "closed-before-answering": (b"", 502, b"closed the connection before answering"),
}


@pytest.mark.parametrize("case", CASES)
def test_upstream_answers(case: str, backends: Backends, make_router: Callable[..., Router]) -> None:
    reply, status, body = CASES[case]
    port = backends.serve(scripted(reply))  # type: ignore[arg-type]
    router = make_router(
        [service("s"), endpoint_slice("s", [port]), ingress("s", [rule(None, ("/", "Prefix", "s"))])]
    )
    response = httpx.get(f"{router.base}/", headers={"Host": "x"})
    assert response.status_code == status
    assert body in response.content


def test_a_truncated_body_is_not_passed_off_as_complete(
    backends: Backends, make_router: Callable[..., Router]
) -> None:
    port = backends.serve(scripted(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b"))  # type: ignore[arg-type]
    router = make_router(
        [service("s"), endpoint_slice("s", [port]), ingress("s", [rule(None, ("/", "Prefix", "s"))])]
    )
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(f"{router.base}/", headers={"Host": "x"})


def test_sigterm_lets_in_flight_requests_finish(
    backends: Backends, make_router: Callable[..., Router]
) -> None:
    port = backends.whoami("slow")
    router = make_router(
        [service("s"), endpoint_slice("s", [port]), ingress("s", [rule(None, ("/", "Prefix", "s"))])]
    )
    result: dict[str, int] = {}

    def slow_request() -> None:
        result["status"] = httpx.get(f"{router.base}/?delay=1", headers={"Host": "x"}, timeout=10).status_code

    thread = threading.Thread(target=slow_request)
    thread.start()
    threading.Event().wait(0.3)
    assert thread.is_alive(), "the request must still be in flight (its backend waits 1 s) when SIGTERM comes"
    assert router.process is not None
    router.process.send_signal(signal.SIGTERM)
    thread.join(timeout=10)
    assert result.get("status") == 200
    assert router.process.wait(timeout=10) == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{router.base}/", headers={"Host": "x"}, timeout=2)


def test_a_pooled_connection_closed_by_the_upstream_is_retried_once(
    backends: Backends, make_router: Callable[..., Router]
) -> None:
    """The upstream answers one request per connection and silently closes on the next one."""
    connections = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\nconn%d"
            % (len(str(len(connections))) + 4, len(connections))
        )
        await writer.drain()
        await reader.readuntil(b"\r\n\r\n")  # the proxy reuses the connection...
        writer.close()  # ...and we close it without answering, like a keep-alive timeout race

    async def start() -> asyncio.AbstractServer:
        return await asyncio.start_server(handle, "127.0.0.1", 0)

    port = backends.serve(start)
    router = make_router(
        [service("s"), endpoint_slice("s", [port]), ingress("s", [rule(None, ("/", "Prefix", "s"))])]
    )
    with httpx.Client(base_url=router.base, headers={"Host": "x"}) as client:
        assert client.get("/").text == "conn1"
        assert client.get("/").text == "conn2"  # the stale connection was retried on a new one
        assert client.get("/").text == "conn3"


def test_trailers_never_reach_another_response(
    backends: Backends, make_router: Callable[..., Router]
) -> None:
    """A chunked response with a trailer, then a plain one on the same pooled upstream connection."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n0\r\nX-Secret: alice\r\n\r\n"
        )
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond")
        await writer.drain()
        writer.close()

    async def start() -> asyncio.AbstractServer:
        return await asyncio.start_server(handle, "127.0.0.1", 0)

    port = backends.serve(start)
    router = make_router(
        [service("s"), endpoint_slice("s", [port]), ingress("s", [rule(None, ("/", "Prefix", "s"))])],
        config={"workers": 1},
    )
    with httpx.Client(base_url=router.base, headers={"Host": "x"}) as client:
        assert client.get("/").text == "first"
        second = client.get("/")
    assert second.text == "second"
    assert "x-secret" not in second.headers


def test_a_chunked_response_cut_short_is_not_passed_off_as_complete(
    backends: Backends, make_router: Callable[..., Router]
) -> None:
    port = backends.serve(scripted(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"))  # type: ignore[arg-type]
    router = make_router(
        [service("s"), endpoint_slice("s", [port]), ingress("s", [rule(None, ("/", "Prefix", "s"))])]
    )
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(f"{router.base}/", headers={"Host": "x"})
