"""Compiled route tables: the per-request lookup.

Everything here works on bytes straight from the parser, so a request is routed without decoding.
A table is built beside the live one and swapped whole; it is never mutated after `compile_tables`
(`patched` makes a new table that shares the routes of the hosts it leaves alone).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Mapping
from typing import TYPE_CHECKING, Generic, TypeAlias, TypeVar

from mypy_extensions import i64

from passerelle.model import DynamicConfig, PathType, Router

if TYPE_CHECKING:
    from passerelle.routing.conditional import ConditionalTable

T = TypeVar("T")


class HostRoutes(Generic[T]):
    """The routes of one host (or of no host): Exact paths, then Prefix paths longest first."""

    __slots__ = ("exact", "prefix")

    def __init__(self) -> None:
        self.exact: dict[bytes, T] = {}
        self.prefix: dict[bytes, T] = {}  # keys without trailing slash; b"" is the prefix "/"

    def match(self, path: bytes) -> T | None:
        found = self.exact.get(path)
        if found is not None:
            return found
        prefix = self.prefix
        if prefix:
            # Walk the ancestors at '/' boundaries: element-wise prefix matching, longest first;
            # "/a/b" tries "/a/b", "/a", then b"" (the prefix "/").
            candidate = path
            while True:
                found = prefix.get(candidate)
                if found is not None or not candidate:
                    return found
                candidate = _parent(candidate)
        return None


# Two byte loops, compiled: a method call (partition, rpartition) costs ~500 instructions, more
# than the loop over a path of a few dozen bytes.
def _path(target: bytes) -> bytes:
    """An origin-form target without its query: target.partition(b"?")[0]."""
    i: i64 = 0
    while i < len(target):
        if target[i] == 63:  # "?"
            return target[:i]
        i += 1
    return target


def _parent(path: bytes) -> bytes:
    """`path` up to its last "/" (b"" for none): path.rpartition(b"/")[0]."""
    i: i64 = len(path) - 1
    while i > 0 and path[i] != 47:  # "/"
        i -= 1
    return path[:i] if i > 0 else b""


class RouteTable(Generic[T]):
    """Exact host, then wildcard host, then host-less routes, then the default backend."""

    __slots__ = ("hosts", "wildcards", "any_host", "default")
    plain = True  # match() needs only Host and target (conditional.ConditionalTable: False)

    def __init__(self) -> None:
        self.hosts: dict[bytes, HostRoutes[T]] = {}
        self.wildcards: dict[bytes, HostRoutes[T]] = {}  # key: the suffix after "*."
        self.any_host: HostRoutes[T] | None = None
        self.default: T | None = None

    def match(self, host: bytes, target: bytes) -> T | None:
        """`host` is the raw Host header value, `target` the raw request-target."""
        path = _path(target) if target[:1] == b"/" else _absolute_form_path(target)
        routes = self.hosts.get(host)  # the Host header is usually a key as it is: lower case, no port
        if routes is None:
            if host[:1] == b"[":
                host = host[: host.find(b"]") + 1].lower()
            else:
                host = host.partition(b":")[0].lower()
            routes = self.hosts.get(host)
        if routes is not None:
            found = routes.match(path)
            if found is not None:
                return found
        if self.wildcards:
            dot = host.find(b".")
            if dot > 0:
                routes = self.wildcards.get(host[dot + 1 :])
                if routes is not None:
                    found = routes.match(path)
                    if found is not None:
                        return found
        if self.any_host is not None:
            found = self.any_host.match(path)
            if found is not None:
                return found
        return self.default

    def add(self, router: Router, target: T) -> None:
        if router.host is None and router.path is None:
            if self.default is None:
                self.default = target
            return
        routes = self._routes_for(router.host)
        if router.path is None:
            routes.prefix.setdefault(b"", target)
        elif router.path.type is PathType.EXACT:
            routes.exact.setdefault(router.path.value.encode(), target)
        else:
            routes.prefix.setdefault(router.path.value.rstrip("/").encode(), target)

    def patched(self, hosts: Mapping[str | None, Iterable[tuple[Router, T]]]) -> RouteTable[T]:
        """A copy whose routes for each host of `hosts` are exactly the ones given, in that order
        (None: the host-less routes and the default). The other hosts' routes are shared."""
        table: RouteTable[T] = RouteTable()
        table.hosts, table.wildcards = dict(self.hosts), dict(self.wildcards)
        table.any_host, table.default = self.any_host, self.default
        for host, routes in hosts.items():
            if host is None:
                table.any_host = table.default = None
            elif host.startswith("*."):
                table.wildcards.pop(host[2:].lower().encode(), None)
            else:
                table.hosts.pop(host.lower().encode(), None)
            for router, target in routes:
                table.add(router, target)
        return table

    def _routes_for(self, host: str | None) -> HostRoutes[T]:
        if host is None:
            if self.any_host is None:
                self.any_host = HostRoutes()
            return self.any_host
        if host.startswith("*."):
            return self.wildcards.setdefault(host[2:].lower().encode(), HostRoutes())
        return self.hosts.setdefault(host.lower().encode(), HostRoutes())


def _absolute_form_path(target: bytes) -> bytes:
    # RFC 9112 §3.2.2: absolute-form ("http://host/path?q"), sent by proxies' clients.
    _, sep, rest = target.partition(b"://")
    if not sep:
        return target.partition(b"?")[0]
    slash = rest.find(b"/")
    return b"/" if slash < 0 else rest[slash:].partition(b"?")[0]


Table: TypeAlias = "RouteTable[T] | ConditionalTable[T]"


def compile_tables(
    config: DynamicConfig, entrypoints: Iterable[str], target: Callable[[Router], T]
) -> dict[str, Table[T]]:
    """One table per entry point; routers with no entry points are on all of them.

    The first router to claim a (host, path, type) keeps it, so translation order decides conflicts.
    `target` builds what a match returns (the data plane's route object), once per router.
    """
    steps = compile_steps(config, entrypoints, target)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]


def compile_steps(
    config: DynamicConfig, entrypoints: Iterable[str], target: Callable[[Router], T], *, step: int = 1000
) -> Generator[None, None, dict[str, Table[T]]]:
    """compile_tables() in slices: yields after every `step` routers, returns the tables.

    A worker runs it between requests, so a configuration of 20,000 routers never holds the event
    loop for more than one slice. An entry point with a Gateway API router (or any router with
    request conditions) gets a conditional.ConditionalTable; the others keep RouteTable.
    """
    from passerelle.routing.conditional import ConditionalTable, conditional_entrypoints

    names = list(entrypoints)
    conditional = conditional_entrypoints(config.routers, names)
    everywhere = not conditional and all(not r.entrypoints for r in config.routers)
    tables: dict[str, Table[T]] = {}
    if everywhere:  # the usual case for Ingress routes: one table serves every entry point
        shared: RouteTable[T] = RouteTable()
        tables = dict.fromkeys(names, shared)
    else:
        tables = {name: ConditionalTable() if name in conditional else RouteTable() for name in names}
    for i, router in enumerate(config.routers):
        route = target(router)
        if everywhere:
            shared.add(router, route)
        else:
            for name in names:
                if not router.entrypoints or name in router.entrypoints:
                    tables[name].add(router, route)
        if i % step == step - 1:
            yield
    return tables
