"""One version of routing state: routers, services, servers, and TLS state (`tls.py`).

Routers match on structure (host, path kind and value), not on a rule language: the route table
compiles them into hash lookups. `rule()` renders the Traefik-style rule for people to read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from passerelle.middlewares.base import MiddlewareSpec
from passerelle.model.tls import TlsConfig


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
class Router:
    """Sends requests for `host` (None: any host) and `path` to `service`.

    `path` None makes the router a default backend: it catches what no other router matches.
    `entrypoints` empty means every entry point (Traefik's default for Ingress routes).
    `middlewares` names entries of `DynamicConfig.middlewares`, applied in order before `service`.
    """

    name: str
    service: str
    host: str | None = None
    path: PathMatch | None = None
    entrypoints: tuple[str, ...] = ()
    middlewares: tuple[str, ...] = ()
    source: str = ""  # "Ingress ns/name": where the router came from

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
        return " && ".join(parts)


@dataclass(frozen=True, slots=True, kw_only=True, order=True)
class Server:
    host: str  # an IP address or a DNS name (ExternalName Services)
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


SCHEMES = ("http", "h2c")  # how the proxy talks to a service's servers


@dataclass(frozen=True, slots=True, kw_only=True)
class Service:
    """A set of servers balanced round-robin. No servers: requests get 503 and `unavailable` says why.

    `scheme`: "http" (HTTP/1.1) or "h2c" (cleartext HTTP/2, as gRPC servers want).
    """

    name: str
    servers: tuple[Server, ...] = ()
    unavailable: str = ""
    scheme: str = "http"

    def __post_init__(self) -> None:
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

    def __post_init__(self) -> None:
        self._index.update((s.name, s) for s in self.services)
        missing = {r.service for r in self.routers} - self._index.keys()
        if missing:
            raise ValueError(f"routers refer to unknown services: {sorted(missing)}")
        self._middleware_index.update((m.name, m) for m in self.middlewares)
        missing = {n for r in self.routers for n in r.middlewares} - self._middleware_index.keys()
        if missing:
            raise ValueError(f"routers refer to unknown middlewares: {sorted(missing)}")

    def service(self, name: str) -> Service:
        return self._index[name]

    def middleware(self, name: str) -> Middleware:
        return self._middleware_index[name]
