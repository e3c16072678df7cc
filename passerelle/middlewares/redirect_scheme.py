"""redirectScheme: send the client to the same URL on another scheme and port.

Traefik's `spec.redirectScheme: {scheme, port, permanent}` (`pkg/config/dynamic/middlewares.go`):
`scheme` is required; `port` is a string or number and is left out of the Location when it is the
scheme's default; `permanent` picks 301/308 over 302/307. passerelle adds `host`, a fixed
host[:port] for the Location, which only Traefik 1.7's `ssl-host` annotation sets. A redirect
whose scheme is the entry point's own is a no-op in Traefik (the URL does not change), so
translation leaves it off the routers of those entry points.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from passerelle.http.redirect import is_authority
from passerelle.middlewares.fields import object_of

_KEYS = frozenset({"scheme", "port", "permanent"})


@dataclass(frozen=True, slots=True, kw_only=True)
class RedirectScheme:
    kind: ClassVar[str] = "redirectScheme"

    scheme: str
    port: int | None = None
    permanent: bool = False
    host: str | None = None

    def __post_init__(self) -> None:
        if self.scheme not in ("http", "https"):
            raise ValueError(f"scheme {self.scheme!r} must be http or https")
        if self.port is not None and not 0 < self.port < 65536:
            raise ValueError(f"port {self.port} must be between 1 and 65535")
        if self.host is not None and not is_authority(self.host):
            raise ValueError(f"host {self.host!r} must be host[:port]")

    @classmethod
    def from_middleware(cls, spec: Any) -> RedirectScheme:
        """The value of a Middleware's `spec.redirectScheme`."""
        spec = object_of(spec, _KEYS, "with `scheme`, and optionally `port` and `permanent`")
        scheme = spec.get("scheme")
        if not isinstance(scheme, str) or not scheme:
            raise ValueError("`scheme` is required (https or http)")
        port = spec.get("port")
        if isinstance(port, str) and port.isdigit():
            port = int(port)
        elif port in (None, ""):
            port = None
        elif isinstance(port, bool) or not isinstance(port, int):
            raise ValueError(f"`port` {port!r} must be a port number")
        permanent = spec.get("permanent", False)
        if isinstance(permanent, str) and permanent.lower() in ("true", "false"):
            permanent = permanent.lower() == "true"
        if not isinstance(permanent, bool):
            raise ValueError(f"`permanent` {permanent!r} must be true or false")
        return cls(scheme=scheme.lower(), port=port, permanent=permanent)

    def to_dict(self) -> dict[str, Any]:
        return {"scheme": self.scheme, "port": self.port, "permanent": self.permanent, "host": self.host}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RedirectScheme:
        return cls(scheme=data["scheme"], port=data["port"], permanent=data["permanent"], host=data["host"])
