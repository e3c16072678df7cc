"""Listening entry points, the live route tables, and the upstream pools they share.

`apply()` is the reload: it builds routes for the new configuration (reusing the pools of servers
that stay, opening none yet: connections are made on first use), compiles every entry point's
table beside the live one, rebinds `EntryPoint.table` in one assignment each, and only then closes
the idle connections of servers that left. Exchanges in flight keep the `Route` they matched.
"""

from __future__ import annotations

import asyncio
import logging
import socket

from passerelle.model import DynamicConfig, Router, Server
from passerelle.proxy.balancer import RoundRobin
from passerelle.proxy.connection import ClientConnection
from passerelle.proxy.deadlines import Deadlines
from passerelle.proxy.options import EntryPointOptions, ForwardingOptions
from passerelle.proxy.upstream import Pool
from passerelle.routing.table import RouteTable, compile_tables

log = logging.getLogger("passerelle.proxy")


class Route:
    """What a table lookup returns: the router's name and its service's balanced pools."""

    __slots__ = ("name", "service", "pools", "unavailable")

    def __init__(self, name: str, service: str, pools: RoundRobin[Pool], unavailable: str) -> None:
        self.name = name
        self.service = service
        self.pools = pools
        self.unavailable = unavailable or f"service {service} has no servers"


class EntryPoint:
    __slots__ = ("options", "loop", "table", "scheme", "default_port", "connections", "deadlines", "servers")

    def __init__(
        self, options: EntryPointOptions, loop: asyncio.AbstractEventLoop, deadlines: Deadlines
    ) -> None:
        self.options = options
        self.loop = loop
        self.table: RouteTable[Route] = RouteTable()
        self.scheme = b"http"
        self.default_port = b"80"
        self.connections: set[ClientConnection] = set()
        self.deadlines = deadlines
        self.servers: list[asyncio.Server] = []

    def connection_opened(self, conn: ClientConnection) -> None:
        self.connections.add(conn)
        self.deadlines.add(conn)

    def connection_closed(self, conn: ClientConnection) -> None:
        self.connections.discard(conn)
        self.deadlines.discard(conn)


class Dataplane:
    def __init__(
        self,
        entrypoints: list[EntryPointOptions],
        forwarding: ForwardingOptions,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._loop = loop
        self._forwarding = forwarding
        self.deadlines = Deadlines(loop)
        self.entrypoints = {ep.name: EntryPoint(ep, loop, self.deadlines) for ep in entrypoints}
        self._pools: dict[Server, Pool] = {}
        self.version = 0

    async def start(self, sockets: dict[str, list[socket.socket]]) -> None:
        """Serve each entry point on its listening sockets (see listeners.bind)."""
        for name, entry in self.entrypoints.items():
            for sock in sockets[name]:
                server = await self._loop.create_server(
                    lambda entry=entry: ClientConnection(entry), sock=sock
                )  # type: ignore[misc]
                entry.servers.append(server)
        self.deadlines.start()

    def apply(self, config: DynamicConfig) -> None:
        pools: dict[Server, Pool] = {}
        balancers: dict[str, RoundRobin[Pool]] = {}

        def route_for(router: Router) -> Route:
            service = config.service(router.service)
            balancer = balancers.get(service.name)
            if balancer is None:
                members = []
                for server in service.servers:
                    pool = pools.get(server) or self._pools.get(server)
                    if pool is None or pool.closed:
                        pool = Pool(server, self._loop, self._forwarding, self.deadlines)
                    pools[server] = pool
                    members.append(pool)
                balancer = balancers[service.name] = RoundRobin(members)
            return Route(router.name, service.name, balancer, service.unavailable)

        tables = compile_tables(config, self.entrypoints, route_for)
        for name, entry in self.entrypoints.items():
            entry.table = tables[name]
        for server, pool in self._pools.items():
            if server not in pools:
                pool.close()
        self._pools = pools
        self.version += 1

    async def stop(self, grace: float) -> None:
        """Stop accepting, let in-flight exchanges finish for up to `grace` seconds, then close all."""
        for entry in self.entrypoints.values():
            for server in entry.servers:
                server.close()
        deadline = self._loop.time() + grace
        while self._loop.time() < deadline and any(
            c._active is not None for e in self.entrypoints.values() for c in e.connections
        ):
            await asyncio.sleep(0.05)
        for entry in self.entrypoints.values():
            for conn in list(entry.connections):
                conn.transport.close()
        for pool in self._pools.values():
            pool.close()
        self.deadlines.stop()
