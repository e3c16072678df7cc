"""Which listeners an HTTPRoute attaches to, on which entry points, for which hostnames (pure).

A listener goes on entry points by port (`GatewayOptions.listeners` first, then any entry point
whose port is the listener's and whose TLS matches its protocol). A route attaches to the
listeners its parentRefs name (sectionName, port) that allow it (allowedRoutes namespaces and
kinds), for the hostnames both accept (`intersect`). Listener isolation: where a more specific
listener on the same entry point takes every host a (listener, hostname) pair could serve, the
pair is left out (`shadowed`); where it takes only some, the table's final host groups do it.
ReferenceGrants let a route name a backend (or a Gateway a Secret) in another namespace.
`Outcomes` is what translation found out along the way, for status (kube/gateway_status.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from passerelle.kube.gateway_objects import GROUP, Grant, Listener, ParentRef
from passerelle.kube.placement import EntryPointInfo


def intersect(route_host: str | None, listener_host: str | None) -> str | None | bool:
    """The hostname a route hostname serves on a listener: a name, None (any host), False (none).

    Gateway API HTTPRoute.hostnames: a wildcard covers one or more labels; the more specific of
    two names wins when one covers the other."""
    if route_host is None:
        return listener_host
    if listener_host is None or covers(listener_host, route_host):
        return route_host
    if covers(route_host, listener_host):
        return listener_host
    return False


def covers(wide: str, narrow: str) -> bool:
    """Does every host `narrow` matches also match `wide`?"""
    if wide == narrow:
        return True
    if not wide.startswith("*."):
        return False
    suffix = wide[1:]  # ".example.com"
    if narrow.startswith("*."):  # `*.a.example.com` is within `*.example.com`
        return narrow[1:].endswith(suffix)
    return narrow.endswith(suffix) and len(narrow) > len(suffix)


def specificity(hostname: str | None) -> tuple[int, int]:
    """How specific a listener hostname is for the hosts it matches: none < wildcard (longer first) < exact."""
    if hostname is None:
        return (0, 0)
    if hostname.startswith("*."):
        return (1, len(hostname))
    return (2, 0)


def shadowed(host: str | None, listener_host: str | None, others: Iterable[str | None]) -> bool:
    """Whether a more specific listener (hostname in `others`) takes every request for `host`."""
    if host is None:
        return False
    mine = specificity(listener_host)
    return any(
        other is not None and other != listener_host and specificity(other) > mine and covers(other, host)
        for other in others
    )


def allowed_kinds(listener: Listener) -> bool:
    """Does the listener accept HTTPRoutes? (allowedRoutes.kinds; default: by protocol)."""
    if listener.kinds is None:
        return True
    return (GROUP, "HTTPRoute") in listener.kinds


def allows_namespace(
    listener: Listener, gateway_namespace: str, route_namespace: str, labels: Mapping[str, str]
) -> bool:
    if listener.namespaces == "All":
        return True
    if listener.namespaces == "Selector":
        return listener.selector is not None and listener.selector.matches(labels)
    return route_namespace == gateway_namespace


@dataclass(frozen=True, slots=True, kw_only=True)
class Placement:
    entrypoints: tuple[EntryPointInfo, ...]
    problem: str = ""


def place_listener(
    listener: Listener,
    gateway: str,
    entrypoints: tuple[EntryPointInfo, ...],
    placements: tuple[tuple[int, str, str], ...],
) -> Placement:
    """The entry points a listener of Gateway `gateway` ("ns/name") goes on, or why none."""
    tls = listener.protocol == "HTTPS"
    named = [ep for port, ep, gw in placements if port == listener.port and gw == gateway] or [
        ep for port, ep, gw in placements if port == listener.port and not gw
    ]
    by_name = {ep.name: ep for ep in entrypoints}
    if named:
        chosen = tuple(by_name[n] for n in named if n in by_name)
        unknown = [n for n in named if n not in by_name]
        if unknown:
            return Placement(
                entrypoints=(),
                problem=f"gateway.listeners names entry point {unknown[0]!r}, which does not exist",
            )
    else:
        chosen = tuple(ep for ep in entrypoints if ep.port == listener.port and ep.tls == tls)
    wrong = [ep.name for ep in chosen if ep.tls != tls]
    if wrong:
        what = "terminates TLS" if not tls else "does not terminate TLS"
        return Placement(
            entrypoints=(), problem=f"entry point {wrong[0]} {what}, but the listener is {listener.protocol}"
        )
    if not chosen:
        kind = "TLS" if tls else "plain HTTP"
        return Placement(
            entrypoints=(),
            problem=f"no {kind} entry point listens on port {listener.port} "
            "(gateway.listeners can place it on one)",
        )
    return Placement(entrypoints=chosen)


def granted(
    grants: Iterable[Grant],
    *,
    from_kind: str,
    from_namespace: str,
    to_namespace: str,
    to_group: str,
    to_kind: str,
    to_name: str,
) -> bool:
    """Does a ReferenceGrant in `to_namespace` let an object of `from_kind` in `from_namespace` name this?"""
    return any(
        g.namespace == to_namespace
        and g.from_group == GROUP
        and g.from_kind == from_kind
        and g.from_namespace == from_namespace
        and g.to_group == to_group
        and g.to_kind == to_kind
        and (g.to_name is None or g.to_name == to_name)
        for g in grants
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """One status condition as translation found it: True or False, the Gateway API's reason, why."""

    ok: bool
    reason: str
    message: str = ""


@dataclass(slots=True)
class Outcomes:
    """What status (kube/gateway_status.py) reports, filled in by translation.

    gateways: (namespace, name) -> its Programmed outcome; listeners: (namespace, name) of the
    Gateway -> (listener, Accepted/Programmed outcome, ResolvedRefs outcome) in order; attached:
    (namespace, name, listener) -> the routes attached there; routes: (namespace, name) ->
    (parentRef, Accepted outcome) per parentRef naming one of our Gateways; resolved: (namespace,
    name) of a route -> its ResolvedRefs outcome when a backendRef could not be followed.
    """

    gateways: dict[tuple[str, str], Outcome] = field(default_factory=dict)
    listeners: dict[tuple[str, str], list[tuple[Listener, Outcome, Outcome]]] = field(default_factory=dict)
    attached: dict[tuple[str, str, str], set[tuple[str, str]]] = field(default_factory=dict)
    routes: dict[tuple[str, str], list[tuple[ParentRef, Outcome]]] = field(default_factory=dict)
    resolved: dict[tuple[str, str], Outcome] = field(default_factory=dict)
