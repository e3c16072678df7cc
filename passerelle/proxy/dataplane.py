"""Listening entry points, the live route tables, and the upstream pools they share.

`apply()` is the reload: it builds routes for the new configuration (reusing the pools of servers
that stay, opening none yet: connections are made on first use), compiles every entry point's
table beside the live one, rebinds `EntryPoint.table` in one assignment each, and only then closes
the idle connections of servers that left. Exchanges in flight keep the `Route` they matched.
A route whose router starts with a redirect answers the redirect itself (`Route.redirect`); an
entry point with `http.redirections.entryPoint` redirects every request (`RedirectAll`).
TLS entry points listen with a tls/contexts.py Dispatcher; a version whose TLS state changed has
its SNI table built first (before anything is swapped) and rebound with the route tables.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Iterable, Iterator, Mapping
from functools import partial
from typing import Any, Protocol

from passerelle.http.headers import RequestIds
from passerelle.http.redirect import Redirect
from passerelle.middlewares.headers import HeaderEdits, Headers
from passerelle.middlewares.ip_allow_list import IpAllowList
from passerelle.middlewares.pass_tls_client_cert import PassTLSClientCert
from passerelle.middlewares.redirect_regex import RedirectRegex
from passerelle.middlewares.redirect_scheme import RedirectScheme
from passerelle.middlewares.request_redirect import RequestRedirect
from passerelle.middlewares.strip_prefix import StripPrefix
from passerelle.middlewares.url_rewrite import UrlRewrite
from passerelle.model import DynamicConfig, Middleware, Router, Service, TlsConfig
from passerelle.model.delta import Delta
from passerelle.observability.recorder import Recorder
from passerelle.proxy import acme
from passerelle.proxy.balancer import RoundRobin, Weighted
from passerelle.proxy.connection import ClientConnection
from passerelle.proxy.deadlines import Deadlines
from passerelle.proxy.dispatch import TlsPeer
from passerelle.proxy.h2 import H2Connection
from passerelle.proxy.h2c import H2cPool
from passerelle.proxy.held import Held, PoolKey, pool_keys
from passerelle.proxy.options import EntryPointOptions, ForwardingOptions
from passerelle.proxy.upstream import Pool
from passerelle.routing.conditional import ConditionalTable
from passerelle.routing.table import RouteTable, Table, compile_steps
from passerelle.tls import contexts as tls_contexts
from passerelle.tls.clientcert import ClientCertSpec
from passerelle.tls.contexts import TlsStatic
from passerelle.tls.dispatcher import Dispatcher, SniState

log = logging.getLogger("passerelle.proxy")

_STEP = 250  # routers or services per slice of a reload (well under a millisecond of work each)


class Upstream:
    """A service as the data plane holds it: its pools, balanced, and why it has none if so.

    Routes point at their service's Upstream, so a change of endpoints replaces the pools here, in
    place, without recompiling any route table.
    """

    __slots__ = ("service", "pools", "unavailable", "status")

    def __init__(self, service: str, status: int = 503) -> None:
        self.service = service
        self.pools: RoundRobin[Pool] = RoundRobin(())
        self.unavailable = ""
        self.status = status  # without servers: 503, or 500 for an invalid Gateway API backendRef

    def set(self, pools: list[Pool], unavailable: str) -> None:
        self.pools = RoundRobin(pools)  # one rebinding: an exchange sees the old or the new set
        self.unavailable = unavailable or f"service {self.service} has no servers"


class Route:
    """What a table lookup returns: the router's name, its service's Upstream, and its redirect.

    `redirect` is set when the router's middlewares hold a redirectScheme or requestRedirect: the
    request is answered with it and never reaches the service (a redirect ends the chain).
    Gateway API routers (only ever in a ConditionalTable, so dispatch looks at these two only
    there): `split` picks among the routes of a weighted service's parts, and `edits` rewrite the
    upstream request head (headers, urlRewrite), in the chain's order. `response`: edits of the
    response's header fields (headers middleware); a route with them never takes the short way
    (`Exchange.plain`), which passes the upstream's head on as it is.
    """

    __slots__ = (
        "name",
        "upstream",
        "redirect",
        "client_cert",
        "labels",
        "split",
        "edits",
        "response",
        "allow",
        "regex_redirect",
    )

    def __init__(
        self,
        name: str,
        upstream: Upstream,
        redirect: Redirect | RequestRedirect | None = None,
        client_cert: ClientCertSpec | None = None,
        source: str = "",
    ) -> None:
        self.name = name
        self.upstream = upstream
        self.redirect = redirect
        self.split: Weighted[Route] | None = None
        self.edits: tuple[HeaderEdits | UrlRewrite | StripPrefix, ...] = ()
        self.response: tuple[HeaderEdits, ...] | None = None  # response header edits (not on the short way)
        self.client_cert = client_cert  # passTLSClientCert: headers about the client's certificate
        self.allow: IpAllowList | None = None  # ipAllowList: checked before anything else (dispatch.py)
        self.regex_redirect: RedirectRegex | None = None  # redirectRegex: checked next (dispatch.py)
        # router, service, and the namespace and name of the Ingress it came from ("Ingress ns/name"):
        # the metrics' and the access log's labels, made once per version, not per request
        kind, _, where = source.partition(" ")
        namespace, _, ingress = where.partition("/") if kind == "Ingress" else ("", "", "")
        self.labels = (name, upstream.service, namespace, ingress)


class Middlewares(Protocol):
    """Where route_of finds a router's middlewares and services by name (a DynamicConfig, or the Dataplane)."""

    def middleware(self, name: str) -> Middleware: ...

    def service(self, name: str) -> Service: ...


def route_of(
    router: Router, config: Middlewares, upstreams: dict[str, Upstream], redirects: dict[str, Redirect]
) -> Route:
    """The route of a router; `redirects` shares one compiled Redirect per middleware."""
    redirect, client_cert, edits, response = _chain(router.middlewares, config, redirects)
    route = Route(router.name, upstreams[router.service], redirect, client_cert, router.source)
    route.edits = edits
    route.response = response or None
    specs = [config.middleware(n).spec for n in router.middlewares]
    route.allow = next((s for s in specs if isinstance(s, IpAllowList)), None)
    route.regex_redirect = next((s for s in specs if isinstance(s, RedirectRegex)), None)
    weighted = config.service(router.service).weighted
    if weighted:
        parts = []
        for w in weighted:  # a part's own middlewares (filters on a backendRef) come after the router's
            part_redirect, part_cert, part_edits, part_response = _chain(w.middlewares, config, redirects)
            part = Route(
                router.name, upstreams[w.service], part_redirect, part_cert or client_cert, router.source
            )
            part.edits = part_edits
            part.response = (*part_response, *response) or None  # the backend's filters act first
            parts.append((part, w.weight))
        route.split = Weighted(parts)
    return route


def _chain(
    names: tuple[str, ...], config: Middlewares, redirects: dict[str, Redirect]
) -> tuple[
    Redirect | RequestRedirect | None,
    ClientCertSpec | None,
    tuple[HeaderEdits | UrlRewrite | StripPrefix, ...],
    tuple[HeaderEdits, ...],
]:
    """(redirect, client certificate headers, request head edits, response edits) of a chain."""
    redirect: Redirect | RequestRedirect | None = None
    client_cert = None
    edits: list[HeaderEdits | UrlRewrite | StripPrefix] = []
    response: list[HeaderEdits] = []
    for name in names:
        spec = config.middleware(name).spec
        if isinstance(spec, PassTLSClientCert):
            client_cert = spec.spec
        elif isinstance(spec, RedirectScheme):
            redirect = redirects.get(name)
            if redirect is None:
                redirect = redirects[name] = Redirect(
                    scheme=spec.scheme, port=spec.port, permanent=spec.permanent, host=spec.host
                )
            break  # the redirect answers: nothing after it in the chain runs
        elif isinstance(spec, RequestRedirect):
            redirect = spec
            break
        elif isinstance(spec, Headers):
            if spec.request:
                edits.append(spec.request)
            if spec.response:
                response.append(spec.response)
        elif isinstance(spec, (UrlRewrite, StripPrefix)):
            edits.append(spec)
    return redirect, client_cert, tuple(edits), tuple(response)


def _gateway_in(delta: Delta, entrypoints: Iterable[EntryPoint]) -> bool:
    """Whether a change set touches Gateway API routing, which RouteTable.patched cannot do (listener
    isolation, conditions, weighted splits): the translation sends such versions whole."""
    return (
        any(isinstance(_table_of(entry), ConditionalTable) for entry in entrypoints)
        or any(r.listener is not None or r.conditions is not None for r in delta.routers)
        or any(s.weighted for s in delta.services)
    )


def _table_of(entry: EntryPoint) -> Table[Route]:
    table = entry.table
    return table.table if isinstance(table, RedirectAll) else table


def _let_go(garbage: list[list[Any] | dict[Any, Any]]) -> Iterator[None]:
    """Empty what the last version left, a slice at a time.

    Whole, the old route tables, upstreams and config of 10,000 Ingresses are some 100,000 objects,
    and freeing them in one go stalls the worker for milliseconds: the p99 of every request caught
    behind it. Each container here is referenced by nothing else, so emptying it frees its items.
    """
    for items in garbage:
        while items:
            for _ in range(_STEP * 4):
                if not items:
                    break
                if isinstance(items, dict):
                    items.popitem()
                else:
                    items.pop()
            yield


# RFC 8555 §8.3: HTTP-01 challenges are fetched over plain HTTP on port 80, and must not be
# redirected away. Traefik's ACME router sits above the entry point redirect for this path.
ACME_CHALLENGE_PREFIX = b"/.well-known/acme-challenge/"


class RedirectAll:
    """An entry point's `http.redirections.entryPoint`: every request gets the redirect.

    Traefik builds this as a catch-all router above every Ingress router (priority MaxInt-1,
    `pkg/provider/traefik/internal.go`). ACME HTTP-01 challenge paths are the exception: they are
    looked up in the entry point's table, where the ACME responder's route will be, and get the
    redirect when no route matches (Traefik's catch-all router still matches them then).
    """

    __slots__ = ("route", "table")
    plain = True  # dispatch calls match()

    def __init__(self, route: Route, table: Table[Route]) -> None:
        self.route = route
        self.table = table

    def match(self, host: bytes, target: bytes) -> Route | None:
        if target.startswith(ACME_CHALLENGE_PREFIX):
            return self.table.match(host, target) or self.route  # no responder there: redirect
        return self.route


def redirect_all_route(options: EntryPointOptions) -> Route | None:
    """The route of an entry point's `http.redirections.entryPoint`, None without one."""
    if not options.redirect_scheme:
        return None
    redirect = Redirect(
        scheme=options.redirect_scheme, port=options.redirect_port, permanent=options.redirect_permanent
    )
    return Route(f"{options.name}-redirect@internal", Upstream("redirect"), redirect)


class EntryPoint:
    __slots__ = (
        "options", "loop", "table", "redirect_all", "scheme", "default_port", "connections", "deadlines", "servers",
        "tls", "observer", "challenges", "request_ids",
    )  # fmt: skip

    def __init__(
        self,
        options: EntryPointOptions,
        loop: asyncio.AbstractEventLoop,
        deadlines: Deadlines,
        tls: Dispatcher | None = None,
        observer: Recorder | None = None,
    ) -> None:
        self.options = options
        self.loop = loop
        self.observer = observer  # metrics and the access log; None: both off
        self.redirect_all = redirect_all_route(options)
        self.table: RouteTable[Route] | ConditionalTable[Route] | RedirectAll
        self.set_table(RouteTable())
        self.tls = tls  # None: plain HTTP
        self.scheme = b"https" if tls is not None else b"http"
        self.default_port = b"443" if tls is not None else b"80"
        self.connections: set[ClientConnection | H2Connection] = set()
        self.deadlines = deadlines
        self.servers: list[asyncio.Server] = []
        # ACME HTTP-01: request-target -> answer, while tokens are pending here (proxy/acme.py)
        self.challenges: dict[bytes, bytes] | None = None
        # X-Request-Id for requests that bring none: a random prefix per entry point and worker
        self.request_ids = RequestIds(os.urandom(8).hex().encode()) if options.request_ids else None

    def set_table(self, table: Table[Route]) -> None:
        self.table = table if self.redirect_all is None else RedirectAll(self.redirect_all, table)

    def connection_opened(self, conn: ClientConnection | H2Connection) -> None:
        self.connections.add(conn)
        self.deadlines.add(conn)

    def serve_h2(self, transport: asyncio.BaseTransport, forwarded: bytes, peer: TlsPeer) -> None:
        """A TLS connection negotiated `h2` (ALPN): an H2Connection becomes its protocol."""
        conn = H2Connection(self, forwarded, peer)
        transport.set_protocol(conn)
        conn.connection_made(transport)

    def connection_closed(self, conn: ClientConnection | H2Connection) -> None:
        self.connections.discard(conn)
        self.deadlines.discard(conn)


class Dataplane:
    def __init__(
        self,
        entrypoints: list[EntryPointOptions],
        forwarding: ForwardingOptions,
        loop: asyncio.AbstractEventLoop,
        tls: TlsStatic | None = None,
        observers: Mapping[str, Recorder] | None = None,
    ) -> None:
        self._loop = loop
        self._forwarding = forwarding
        self.deadlines = Deadlines(loop)
        self._tls = tls
        self._tls_entries = [ep.tls_options or "default" for ep in entrypoints if ep.tls]
        self.sni: SniState | None = None
        if self._tls_entries:
            if tls is None:
                raise ValueError("TLS entry points need the static TLS settings")
            self.sni = SniState(tls_contexts.compile_table(tls, DynamicConfig().tls, self._tls_entries))
        self.entrypoints = {
            ep.name: EntryPoint(
                ep,
                loop,
                self.deadlines,
                Dispatcher(tls, self.sni, ep.tls_options) if ep.tls and tls and self.sni else None,
                (observers or {}).get(ep.name),
            )
            for ep in entrypoints
        }
        self._pools: dict[PoolKey, Pool] = {}
        self._upstreams: dict[str, Upstream] = {}
        self._config: DynamicConfig | None = None  # the last whole version (None after a Delta)
        self._held = Held()

    async def start(self, sockets: dict[str, list[socket.socket]]) -> None:
        """Serve each entry point on its listening sockets (see listeners.bind)."""
        for name, entry in self.entrypoints.items():
            for sock in sockets[name]:
                if entry.tls is not None:
                    server = await self._loop.create_server(
                        partial(ClientConnection, entry),
                        sock=sock,
                        ssl=entry.tls.context,
                        ssl_handshake_timeout=entry.options.header_timeout,
                    )
                else:
                    server = await self._loop.create_server(partial(ClientConnection, entry), sock=sock)
                entry.servers.append(server)
        self.deadlines.start()

    @property
    def holds(self) -> bool:
        """Whether a version was applied (a Delta needs one to apply to)."""
        return self._held.applied

    @property
    def tls_config(self) -> TlsConfig:
        """The TLS state of the live version (a version that leaves it out keeps it)."""
        return self._held.tls

    def middleware(self, name: str) -> Middleware:
        return self._held.middlewares[name]

    def service(self, name: str) -> Service:
        return self._held.services[name]

    def open_connections(self) -> dict[str, dict[str, int]]:
        """Client connections open now, by entry point and protocol (a metrics gauge)."""
        out = {}
        for name, entry in self.entrypoints.items():
            h2 = sum(1 for c in entry.connections if isinstance(c, H2Connection))
            out[name] = {"http/1.1": len(entry.connections) - h2, "h2": h2}
        return out

    def set_challenges(self, message: dict[str, Any]) -> None:
        """The pending ACME challenges, whole (a `challenges` message; proxy/acme.py)."""
        answers = acme.http_answers(message.get("http", {})) or None
        wanted = set(message.get("entrypoints", ()))
        for name, entry in self.entrypoints.items():
            if entry.tls is None:
                entry.challenges = answers if name in wanted else None
        if self.sni is not None:
            contexts = acme.alpn_contexts(message.get("tlsAlpn", ()))
            if contexts:
                for entry in self.entrypoints.values():
                    if entry.tls is not None:
                        entry.tls.watch_acme_alpn(seam=bool(message.get("alpnSeam", True)))
            self.sni.challenges = contexts

    def apply(self, config: DynamicConfig) -> None:
        for _ in self.apply_steps(config):
            pass

    def apply_steps(self, config: DynamicConfig) -> Iterator[None]:
        """Make `config` live, yielding between slices of work so a worker can serve meanwhile.

        Same routers and middlewares as now: only the services that
        changed get new pools, in place. Otherwise the tables are compiled beside the live ones and
        swapped at the end; until then requests use the old tables, whole.
        """
        previous = self._config
        routers_changed = previous is None or (previous.routers, previous.middlewares) != (
            config.routers,
            config.middlewares,
        )
        sni = None
        if (
            self.sni is not None
            and self._tls is not None
            and (not self._held.applied or self._held.tls != config.tls)
        ):
            sni = yield from tls_contexts.compile_steps(
                self._tls, config.tls, self._tls_entries, self.sni.table
            )
        pools: dict[PoolKey, Pool] = {}
        garbage: list[list[Any] | dict[Any, Any]] = []  # what the old version leaves, let go in slices
        if previous is not None and not routers_changed:
            for i, service in enumerate(config.services):
                upstream = self._upstreams.get(service.name)
                if upstream is None:  # a service no router refers to: nothing routes to it
                    upstream = self._upstreams[service.name] = Upstream(service.name, service.status)
                    upstream.set(self._pools_for(service, pools), service.unavailable)
                elif previous.service(service.name) == service:
                    pools.update(((p.scheme, p.server), p) for p in upstream.pools.items)
                else:
                    upstream.set(self._pools_for(service, pools), service.unavailable)
                if i % _STEP == _STEP - 1:
                    yield
        else:
            upstreams: dict[str, Upstream] = {}
            for i, service in enumerate(config.services):
                upstream = upstreams[service.name] = Upstream(service.name, service.status)
                upstream.set(self._pools_for(service, pools), service.unavailable)
                if i % _STEP == _STEP - 1:
                    yield
            redirects: dict[str, Redirect] = {}
            tables = yield from compile_steps(
                config,
                self.entrypoints,
                lambda router: route_of(router, config, upstreams, redirects),
                step=_STEP,
            )
            old_tables = {id(t): t for t in (_table_of(e) for e in self.entrypoints.values())}
            for name, entry in self.entrypoints.items():
                entry.set_table(tables[name])
            garbage.append(self._upstreams)
            garbage.extend(t.hosts for t in old_tables.values())
            garbage.extend(t.wildcards for t in old_tables.values())
            self._upstreams = upstreams
        if sni is not None and self.sni is not None:
            self.sni.swap(sni)  # new handshakes only: established connections keep their context
        leaving = [pool for key, pool in self._pools.items() if key not in pools]
        self._pools = pools
        self._config = config
        if previous is not None:  # the old routers may be the new ones: shared when left out
            garbage += (list(previous.routers), list(previous.services))
        del previous
        garbage.append(self._held.routers)
        self._held = Held.of(config)
        for i, pool in enumerate(leaving):  # after the swap: nothing routes to them any more
            pool.close()
            if i % _STEP == _STEP - 1:
                yield
        yield from _let_go(garbage)

    def patch_steps(self, delta: Delta, tls: TlsConfig | None = None) -> Iterator[None]:
        """Make the live version plus `delta` live (and `tls`, unless None: unchanged).

        The services named get new pools in place; the routes of the hosts `delta.hosts` names are
        rebuilt, and every table is replaced by a copy holding them (RouteTable.patched), all
        between two requests. Raises ValueError, with nothing changed, for a Delta that does not
        fit the live version; only compiling TLS (SNI) state yields.
        """
        held = self._held
        held.check(delta)
        if _gateway_in(delta, self.entrypoints.values()):
            raise ValueError("a change set does not patch Gateway API routes: the whole version is needed")
        sni = None
        if tls is not None and self.sni is not None and self._tls is not None and tls != held.tls:
            sni = yield from tls_contexts.compile_steps(self._tls, tls, self._tls_entries, self.sni.table)
        leaving: list[Pool] = []
        for service in delta.services:  # first: the routes built below point at their Upstreams
            upstream = self._upstreams.get(service.name)
            if upstream is None:
                upstream = self._upstreams[service.name] = Upstream(service.name, service.status)
            before = held.services.get(service.name)
            upstream.set(self._take(service), service.unavailable)  # taken before released: kept
            if before is not None:
                leaving += self._release(before)
            held.services[service.name] = service
        held.update_routers(delta)
        redirects: dict[str, Redirect] = {}
        routers = held.routers
        routes = {
            name: route_of(routers[name], self, self._upstreams, redirects)
            for names in delta.hosts.values()
            for name in names
        }
        current = {name: _table_of(entry) for name, entry in self.entrypoints.items()}
        everywhere = all(not routers[name].entrypoints for name in routes)
        tables: dict[str, RouteTable[Route]] = {}
        shared: RouteTable[Route] | None = None
        for ep, table in current.items() if delta.hosts else ():
            assert isinstance(table, RouteTable)  # _gateway_in: never a ConditionalTable here
            if everywhere and len({id(t) for t in current.values()}) == 1:
                shared = shared or table.patched(
                    {h: [(routers[n], routes[n]) for n in names] for h, names in delta.hosts.items()}
                )
                tables[ep] = shared
            else:
                tables[ep] = table.patched(
                    {
                        h: [(routers[n], routes[n]) for n in names if _on(routers[n], ep)]
                        for h, names in delta.hosts.items()
                    }
                )
        for name, entry in self.entrypoints.items():
            if delta.hosts:  # else only services changed, in place: the tables stay
                entry.set_table(tables[name])
        for name in delta.removed_services:  # nothing routes to them any more
            leaving += self._release(held.services.pop(name))
            del self._upstreams[name]
        if sni is not None and self.sni is not None:
            self.sni.swap(sni)
        if tls is not None:
            held.tls = tls
        self._config = None  # the whole version is now only in `held`
        for i, pool in enumerate(leaving):
            pool.close()
            if i % _STEP == _STEP - 1:
                yield

    def _take(self, service: Service) -> list[Pool]:
        """A service's pools, counted as used by it: the live ones where they exist."""
        users = self._held.pool_users
        for key in pool_keys(service):
            users[key] = users.get(key, 0) + 1
        return self._pools_for(service, self._pools)

    def _release(self, service: Service) -> list[Pool]:
        """Count a service's pools as no longer used by it; the ones nothing uses now."""
        users = self._held.pool_users
        out = []
        for key in pool_keys(service):
            users[key] -= 1
            if not users[key]:
                del users[key]
                out.append(self._pools.pop(key))
        return out

    def _pools_for(self, service: Service, pools: dict[PoolKey, Pool]) -> list[Pool]:
        """The pools of a service's servers: the live ones where they exist, new ones otherwise.

        A pool is per (scheme, server): one server can be h2c for one Service and HTTP/1.1 for
        another (Traefik 1.7's `protocol` is an Ingress annotation).
        """
        members = []
        kind = H2cPool if service.scheme == "h2c" else Pool
        for server in service.servers:
            key = (kind.scheme, server)
            pool = pools.get(key) or self._pools.get(key)
            if pool is None or pool.closed:
                pool = kind(server, self._loop, self._forwarding, self.deadlines)
            pools[key] = pool
            members.append(pool)
        return members

    async def stop(self, grace: float) -> None:
        """Stop accepting, let in-flight exchanges finish for up to `grace` seconds, then close all."""
        for entry in self.entrypoints.values():
            for server in entry.servers:
                server.close()
        for entry in self.entrypoints.values():
            for conn in list(entry.connections):
                if isinstance(conn, H2Connection):
                    conn.drain()  # GOAWAY: its streams finish, the client opens no more
        deadline = self._loop.time() + grace
        while self._loop.time() < deadline and any(
            (c.busy if isinstance(c, H2Connection) else c._active is not None)
            for e in self.entrypoints.values()
            for c in e.connections
        ):
            await asyncio.sleep(0.05)
        for entry in self.entrypoints.values():
            for conn in list(entry.connections):
                conn.transport.close()
        for pool in self._pools.values():
            pool.close()
        self.deadlines.stop()


def _on(router: Router, entrypoint: str) -> bool:
    return not router.entrypoints or entrypoint in router.entrypoints
