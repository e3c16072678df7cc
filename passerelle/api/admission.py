"""Whom the API answers: requests for this machine when bound to loopback, requests whose Host is
unambiguous, up to `MAX_CONNECTIONS` connections at once, and actions from this host only.

Bound to loopback, the server answers only requests whose Host is a loopback name or address, so a
web page cannot read the API through DNS rebinding (a name of the attacker's that resolves to
127.0.0.1); bound elsewhere, any Host is accepted, as the operator chose. Two Host headers, or none
on HTTP/1.1, leave the host unknown: 400 (RFC 9112 §3.2).
"""

from __future__ import annotations

import asyncio
import ipaddress

MAX_CONNECTIONS = 64  # open API connections; one more is answered 503 and closed


class Slots:
    """How many API connections are open, against a limit (one per server, not per module)."""

    def __init__(self, limit: int = MAX_CONNECTIONS) -> None:
        self.limit = limit
        self.used = 0

    def take(self) -> bool:
        if self.used >= self.limit:
            return False
        self.used += 1
        return True

    def give_back(self) -> None:
        self.used -= 1


def loopback_host(host: bytes) -> bool:
    """Whether a Host header names this machine: localhost (or a `.localhost` name, RFC 6761 §6.3),
    or a loopback address, with any port."""
    if host[:1] == b"[":
        name = host[1 : host.find(b"]")].decode("latin-1")
    else:
        name = host.partition(b":")[0].decode("latin-1").lower().rstrip(".")
    return name.endswith(".localhost") or is_loopback_address(name)


def is_loopback_address(host: str) -> bool:
    """Whether a listening host (from `api.address`) is loopback only; "" (all addresses) is not."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_refusal(hosts: int, *, http10: bool) -> str | None:
    """Why a request with `hosts` Host header lines is 400, if it is: which host was meant is
    unknown with two, or with none on HTTP/1.1 (RFC 9112 §3.2; HTTP/1.0 tools may send none)."""
    if hosts > 1:
        return "more than one Host header"
    if hosts == 0 and not http10:
        return "an HTTP/1.1 request needs a Host header"
    return None


def from_this_host(transport: asyncio.BaseTransport) -> bool:
    """The peer is a loopback address, or the address the API listens on (an API bound to the
    node's address, reached from the node itself): who may take actions (POST)."""
    peer, local = transport.get_extra_info("peername"), transport.get_extra_info("sockname")
    try:
        address = ipaddress.ip_address(peer[0]) if peer else None
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address is None:
        return False
    return address.is_loopback or (local is not None and peer[0] == local[0])
