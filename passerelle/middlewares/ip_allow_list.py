"""ipAllowList: answer 403 to clients whose address is outside the listed ranges.

Traefik's `ipAllowList` (and its older name `ipWhiteList`) Middleware, `sourceRange` with
`rejectStatusCode`, and Traefik 1.7's `whitelist-source-range` annotation. The address checked is
the connection's peer, never a header: the data plane reads the `X-Real-Ip` line it wrote itself at
the end of the request head (http/headers.py `forwarded_static`), before any middleware edits the
head (proxy/dispatch.py). The check runs before the rest of the chain, redirects included: a client
that is not allowed learns nothing of the route. Traefik's `ipStrategy` (an address from
`X-Forwarded-For`, for a router behind another proxy) is not supported yet, nor is 1.7's
`whitelist-x-forwarded-for`. A range that does not parse is an error, where 1.7 let everything in.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from passerelle.http.errors import canned
from passerelle.middlewares.fields import object_of

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_REAL_IP = b"\r\nX-Real-Ip: "
_KEYS = frozenset({"sourceRange", "rejectStatusCode"})


@dataclass(frozen=True, slots=True, kw_only=True)
class IpAllowList:
    kind: ClassVar[str] = "ipAllowList"

    source_range: tuple[str, ...]
    status: int = 403
    networks: tuple[Network, ...] = field(init=False, compare=False, repr=False)
    _refusals: tuple[bytes, bytes] = field(init=False, compare=False, repr=False)  # (GET, HEAD)

    def __post_init__(self) -> None:
        if not self.source_range:
            raise ValueError("sourceRange must list at least one address or CIDR range")
        networks = []
        for entry in self.source_range:
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or CIDR range") from None
        if not 400 <= self.status <= 599:
            raise ValueError(f"rejectStatusCode {self.status} must be a 4xx or 5xx status")
        object.__setattr__(self, "networks", tuple(networks))
        object.__setattr__(self, "_refusals", (canned(self.status), canned(self.status, head=True)))

    def permits(self, address: str) -> bool:
        """Is `address` (as the peer name gives it; an IPv4-mapped IPv6 one counts as IPv4) listed?"""
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self.networks)

    def refusal(self, head: bytes, method: bytes) -> bytes | None:
        """The answer for a request head whose client is not allowed, or None when it is."""
        at = head.rfind(_REAL_IP)
        end = head.find(b"\r\n", at + len(_REAL_IP)) if at >= 0 else -1
        client = head[at + len(_REAL_IP) : end].decode("latin-1") if end >= 0 else ""
        if self.permits(client):
            return None
        return self._refusals[method == b"HEAD"]

    @classmethod
    def from_middleware(cls, spec: Any) -> IpAllowList:
        """The value of a Middleware's `spec.ipAllowList` (or `spec.ipWhiteList`)."""
        if isinstance(spec, Mapping) and "ipStrategy" in spec:
            raise ValueError("ipStrategy (the address from X-Forwarded-For) is not supported yet")
        spec = object_of(spec, _KEYS, "with `sourceRange`")
        ranges = spec.get("sourceRange")
        if not isinstance(ranges, list) or not all(isinstance(r, str) for r in ranges):
            raise ValueError("`sourceRange` must be a list of addresses or CIDR ranges")
        status = spec.get("rejectStatusCode", 403)
        if isinstance(status, bool) or not isinstance(status, int):
            raise ValueError(f"`rejectStatusCode` {status!r} must be a status code")
        return cls(source_range=tuple(r.strip() for r in ranges), status=status)

    def to_dict(self) -> dict[str, Any]:
        return {"sourceRange": list(self.source_range), "status": self.status}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IpAllowList:
        return cls(source_range=tuple(data["sourceRange"]), status=data["status"])
