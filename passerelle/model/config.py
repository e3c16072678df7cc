"""One version of routing state: routers, services, servers, and TLS state (`tls.py`).

Routers match on structure (host, path kind and value), not on a rule language: the route table
compiles them into hash lookups. `rule()` renders the Traefik-style rule for people to read.
Gateway API routers add request conditions (`RequestMatch`: method, headers, query) and the
listener they hang under (`Router.listener`); a Service may be a weighted split of other Services.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import chain
from operator import attrgetter

from passerelle.middlewares.base import MiddlewareSpec
from passerelle.model.tls import TlsConfig

_NAME = attrgetter("name")
_SERVICE = attrgetter("service")
_WEIGHTED = attrgetter("weighted")
_MIDDLEWARES = attrgetter("middlewares")


class PathType(StrEnum):
    EXACT = "Exact"
    PREFIX = "Prefix"  # element-wise, as the Ingress spec defines it


@dataclass(frozen=True, slots=True, kw_only=True)
class PathMatch:
    type: PathType
    value: str

    def __post_init__(self) -> None:
        if not self.value.startswith("/"):
            raise ValueError(f"path {self.value!r} must start with '/'")


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestMatch:
    """What a request must also carry to match, besides host and path (Gateway API HTTPRouteMatch).

    method: the method, upper case (None: any). headers: (name, value) pairs, names lower case,
    values compared exactly. query: (name, value) pairs, both compared exactly (the Gateway API
    makes query parameter names case-sensitive). All of them must hold.
    """

    method: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    query: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if any(name != name.lower() for name, _ in self.headers):
            raise ValueError("header names of a RequestMatch must be lower case")

    def rank(self) -> tuple[bool, int, int]:
        """Gateway API precedence after the path: a method, then more headers, then more query params."""
        return (self.method is not None, len(self.headers), len(self.query))


@dataclass(frozen=True, slots=True, kw_only=True)
class Router:
    """Sends requests for `host` (None: any host) and `path` to `service`.

    `path` None makes the router a default backend: it catches what no other router matches.
    `entrypoints` empty means every entry point (Traefik's default for Ingress routes).
    `middlewares` names entries of `DynamicConfig.middlewares`, applied in order before `service`.
    `conditions`: what else the request must carry (Gateway API matches); None: nothing.
    `listener`: for a Gateway API router, the hostname of the listener it is attached to ("" for a
    listener without one); None for Ingress routers. A Gateway router's `*.` host matches one or
    more labels, and a request whose Host matches a listener hostname is only matched against the
    routers of that listener and of more specific hosts (listener isolation; routing/conditional.py).
    """

    name: str
    service: str
    host: str | None = None
    path: PathMatch | None = None
    entrypoints: tuple[str, ...] = ()
    middlewares: tuple[str, ...] = ()
    source: str = ""  # "Ingress ns/name", "HTTPRoute ns/name rule 0": where the router came from
    conditions: RequestMatch | None = None
    listener: str | None = None

    def rule(self) -> str:
        parts = []
        if self.host is not None:
            parts.append(f"Host(`{self.host}`)")
        if self.path is None:
            parts.append("PathPrefix(`/`) [default backend]")
        elif self.path.type is PathType.EXACT:
            parts.append(f"Path(`{self.path.value}`)")
        else:
            parts.append(f"PathPrefix(`{self.path.value}`)")
        if self.conditions is not None:
            if self.conditions.method is not None:
                parts.append(f"Method(`{self.conditions.method}`)")
            parts += [f"Header(`{name}`, `{value}`)" for name, value in self.conditions.headers]
            parts += [f"Query(`{name}={value}`)" for name, value in self.conditions.query]
        return " && ".join(parts)


@dataclass(frozen=True, slots=True, kw_only=True, order=True)
class Server:
    host: str  # an IP address or a DNS name (ExternalName Services)
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


SCHEMES = ("http", "h2c")  # how the proxy talks to a service's servers


@dataclass(frozen=True, slots=True, kw_only=True, order=True)
class WeightedService:
    """One part of a weighted split: requests go to `service` in proportion to `weight`, through
    `middlewares` of their own (Gateway API filters on a backendRef), after the router's."""

    service: str
    weight: int
    middlewares: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.weight < 0:
            raise ValueError(f"weight {self.weight} of {self.service} must not be negative")


@dataclass(frozen=True, slots=True, kw_only=True)
class Service:
    """A set of servers balanced round-robin. No servers: requests get `status` (503) and
    `unavailable` says why.

    `scheme`: "http" (HTTP/1.1) or "h2c" (cleartext HTTP/2, as gRPC servers want).
    `weighted`: a split over other services instead of servers (Gateway API backendRefs weights);
    the service then has no servers of its own.
    `status`: what a request gets when there are no servers: 503, or 500 for a backend that is
    invalid (the Gateway API's answer for an unresolved backendRef).
    """

    name: str
    servers: tuple[Server, ...] = ()
    unavailable: str = ""
    scheme: str = "http"
    weighted: tuple[WeightedService, ...] = ()
    status: int = 503

    def __post_init__(self) -> None:
        if self.weighted and self.servers:
            raise ValueError(f"service {self.name}: a weighted split has no servers of its own")
        if self.status not in (500, 503):
            raise ValueError(f"service {self.name}: status {self.status} must be 500 or 503")
        if self.scheme not in SCHEMES:
            raise ValueError(
                f"service {self.name}: scheme {self.scheme!r} is not one of {', '.join(SCHEMES)}"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class Middleware:
    """A named middleware: `<namespace>-<name>@kubernetescrd` for a Middleware object, as Traefik names it."""

    name: str
    spec: MiddlewareSpec


@dataclass(frozen=True, slots=True, kw_only=True)
class DynamicConfig:
    routers: tuple[Router, ...] = ()
    services: tuple[Service, ...] = ()
    middlewares: tuple[Middleware, ...] = ()
    tls: TlsConfig = TlsConfig()
    _index: dict[str, Service] = field(default_factory=dict, compare=False, repr=False)
    _middleware_index: dict[str, Middleware] = field(default_factory=dict, compare=False, repr=False)
    _uses: dict[str, int] = field(default_factory=dict, compare=False, repr=False)  # routers per service
    _weighted: bool = field(default=False, compare=False, repr=False)  # a service is a weighted split

    def __post_init__(self) -> None:
        # C-level passes (map, chain, Counter): a version of 10,000 routers is made after each change
        self._index.update(zip(map(_NAME, self.services), self.services, strict=True))
        weighted = tuple(chain.from_iterable(map(_WEIGHTED, self.services)))
        self._uses.update(Counter(map(_SERVICE, self.routers)))
        missing = self._uses.keys() - self._index.keys()
        missing |= {w.service for w in weighted} - self._index.keys()
        if missing:
            raise ValueError(f"routers or weighted services refer to unknown services: {sorted(missing)}")
        self._middleware_index.update(zip(map(_NAME, self.middlewares), self.middlewares, strict=True))
        missing = set(chain.from_iterable(map(_MIDDLEWARES, self.routers))) - self._middleware_index.keys()
        missing |= {n for w in weighted for n in w.middlewares} - self._middleware_index.keys()
        if missing:
            raise ValueError(f"routers refer to unknown middlewares: {sorted(missing)}")
        object.__setattr__(self, "_weighted", bool(weighted))

    def edited(
        self,
        *,
        routers: tuple[Router, ...],
        services: dict[str, Service],
        tls: TlsConfig,
        dropped: Iterable[Router],
        added: Iterable[Router],
        changed_services: Iterable[Service],
        removed_services: Iterable[str],
    ) -> DynamicConfig:
        """This version with `routers` and `services` (by name, in order) instead of its own, the
        same middlewares, and `tls`, checked as __post_init__ checks a version but by what
        changed: `dropped`, this version's routers that are not in the new one (or not as they
        are), `added`, the new one's that are not in this one (or not as they are), the services
        new or changed, and the names of this version's services that the new one lacks. Costs
        copying a dictionary, not a pass over every router; a version with weighted services
        (Gateway API) is checked whole."""
        values = tuple(services.values())
        changed_services = tuple(changed_services)
        if self._weighted or any(s.weighted for s in changed_services):
            return DynamicConfig(routers=routers, services=values, middlewares=self.middlewares, tls=tls)
        removed = [name for name in dict.fromkeys(removed_services) if name in self._index]
        new = {s.name for s in changed_services if s.name not in self._index}
        if len(services) != len(self._index) - len(removed) + len(new) or any(n in services for n in removed):
            raise ValueError("the services removed and added do not make the new version's")
        uses = self._uses.copy()
        for router in dropped:
            n = uses[router.service] - 1
            if n:
                uses[router.service] = n
            else:
                del uses[router.service]
        added = tuple(added)
        for router in added:
            uses[router.service] = uses.get(router.service, 0) + 1
        missing = {r.service for r in added if r.service not in services}
        missing |= {name for name in removed if name in uses}
        if missing:
            raise ValueError(f"routers or weighted services refer to unknown services: {sorted(missing)}")
        known = self._middleware_index
        missing = {n for r in added for n in r.middlewares if n not in known}
        if missing:
            raise ValueError(f"routers refer to unknown middlewares: {sorted(missing)}")
        out = object.__new__(DynamicConfig)
        for name, value in (
            ("routers", routers),
            ("services", values),
            ("middlewares", self.middlewares),
            ("tls", tls),
            ("_index", services),
            ("_middleware_index", known),
            ("_uses", uses),
            ("_weighted", False),
        ):
            object.__setattr__(out, name, value)
        return out

    def service(self, name: str) -> Service:
        return self._index[name]

    def services_by_name(self) -> Mapping[str, Service]:
        """The services by name, in order (never to be changed: a copy is for that)."""
        return self._index

    def middleware(self, name: str) -> Middleware:
        return self._middleware_index[name]
