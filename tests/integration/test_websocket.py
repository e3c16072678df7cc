"""Upgrade requests become byte tunnels; they survive configuration reloads."""

from __future__ import annotations

import socket
from collections.abc import Callable

import websockets.asyncio.server
from websockets.sync.client import connect

from tests.integration.harness import Backends, Router, endpoint_slice, ingress, rule, service


async def _echo(ws: websockets.asyncio.server.ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


async def _serve() -> websockets.asyncio.server.Server:
    return await websockets.asyncio.server.serve(_echo, "127.0.0.1", 0)


def test_websocket_echo_survives_reloads(backends: Backends, make_router: Callable[..., Router]) -> None:
    port = backends.serve(_serve)
    objects = [
        service("ws"),
        endpoint_slice("ws", [port]),
        ingress("ws", [rule("ws.test", ("/", "Prefix", "ws"))]),
    ]
    router = make_router(objects)
    with (
        socket.create_connection(("127.0.0.1", router.port)) as sock,
        connect("ws://ws.test/chat", sock=sock) as ws,  # one Host header, ws.test, on our socket
    ):
        ws.send("hello")
        assert ws.recv(timeout=5) == "hello"
        big = bytes(range(256)) * 2000
        ws.send(big)
        assert ws.recv(timeout=5) == big
        for n in range(3):
            version = router.version()
            router.write(
                "extra.yaml", [ingress(f"other{n}", [rule(f"other{n}.test", ("/", "Prefix", "ws"))])]
            )
            router.wait_version(version)
            ws.send(f"after reload {n}")
            assert ws.recv(timeout=5) == f"after reload {n}"
