"""Delta: one version of the routing state as changes to the version before it.

Made by the incremental translation (kube/incremental.py) and sent to the workers instead of the
whole version when routers or services changed but middlewares did not: a worker then updates the
services named and rebuilds the routes of the hosts named, and keeps everything else as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from passerelle.model.config import DynamicConfig, Router, Service

HostKey = str | None  # a router's host in lower case; None: host-less routes and the default backend


def host_key(router: Router) -> HostKey:
    return None if router.host is None else router.host.lower()


@dataclass(frozen=True, slots=True, kw_only=True)
class Delta:
    """What changed, by name. `routers` and `services`: new or changed; `removed_*`: names gone.

    `hosts`: for every host that a changed or removed router was or is on, the names of all its
    routers, in version order (the route table keeps the first router of a (host, path), so order
    matters). `middlewares`: whether they changed too (then a worker is sent the whole version).
    `whole`: no change set can carry this version (Gateway API routing, which a worker cannot
    patch): it goes whole, and the rest is left empty rather than found by comparing versions.
    """

    routers: tuple[Router, ...] = ()
    removed_routers: tuple[str, ...] = ()
    services: tuple[Service, ...] = ()
    removed_services: tuple[str, ...] = ()
    hosts: Mapping[HostKey, tuple[str, ...]] = field(default_factory=dict)
    middlewares: bool = False
    whole: bool = False

    @property
    def services_changed(self) -> bool:
        return bool(self.services or self.removed_services)


def between(before: DynamicConfig, after: DynamicConfig) -> Delta:
    """The Delta from `before` to `after`, found by comparing them whole (the incremental
    translation knows it without comparing; this is for when it does not)."""
    routers = {r.name: r for r in before.routers}
    now = {r.name: r for r in after.routers}
    upserted = tuple(r for r in after.routers if routers.get(r.name) != r)
    removed = tuple(name for name in routers if name not in now)
    services = {s.name: s for s in before.services}
    names = {s.name for s in after.services}
    touched = {host_key(routers[r.name]) for r in upserted if r.name in routers}
    touched.update(host_key(routers[name]) for name in removed)
    touched.update(host_key(r) for r in upserted)
    hosts: dict[HostKey, list[str]] = {host: [] for host in touched}
    for router in after.routers:
        on = hosts.get(host_key(router))
        if on is not None:
            on.append(router.name)
    return Delta(
        routers=upserted,
        removed_routers=removed,
        services=tuple(s for s in after.services if services.get(s.name) != s),
        removed_services=tuple(name for name in services if name not in names),
        hosts={host: tuple(names) for host, names in hosts.items()},
        middlewares=before.middlewares != after.middlewares,
    )
