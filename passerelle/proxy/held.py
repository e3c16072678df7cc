"""The live version as a worker holds it by name, so that a change set can be checked and applied.

`Held` is what `Dataplane.patch_steps` reads and updates: the routers, services and middlewares by
name, the routers of each host, how many routers use each service and how many services each
upstream pool. `check` refuses a change set that does not fit (a router or service it removes is
not live, a router names a service or middleware that will not exist, a host's router list is not
what it will be) before anything is changed.
"""

from __future__ import annotations

from passerelle.model import DynamicConfig, Middleware, Router, Server, Service, TlsConfig
from passerelle.model.delta import Delta, HostKey, host_key

PoolKey = tuple[str, Server]  # (Pool.scheme, server)


def pool_keys(service: Service) -> list[PoolKey]:
    """The pools a service's servers are reached through. A pool's scheme is its Service's
    (upstream.Pool is "http", h2c.H2cPool "h2c"): one server can be both, for two Services."""
    return [(service.scheme, server) for server in service.servers]


class Held:
    """The live version by name, as a Delta changes it: what a worker needs to check and apply one."""

    def __init__(self) -> None:
        self.applied = False
        self.routers: dict[str, Router] = {}
        self.services: dict[str, Service] = {}
        self.middlewares: dict[str, Middleware] = {}
        self.tls = TlsConfig()
        self.hosts: dict[HostKey, set[str]] = {}  # router names per host
        self.uses: dict[str, int] = {}  # routers per service
        self.pool_users: dict[PoolKey, int] = {}  # services per pool

    @classmethod
    def of(cls, config: DynamicConfig) -> Held:
        held = cls()
        held.applied = True
        held.routers = {r.name: r for r in config.routers}
        held.services = {s.name: s for s in config.services}
        held.middlewares = {m.name: m for m in config.middlewares}
        held.tls = config.tls
        for router in config.routers:
            held.hosts.setdefault(host_key(router), set()).add(router.name)
            held.uses[router.service] = held.uses.get(router.service, 0) + 1
        for service in config.services:
            for key in pool_keys(service):
                held.pool_users[key] = held.pool_users.get(key, 0) + 1
        return held

    def check(self, delta: Delta) -> None:
        """Raises ValueError when `delta` does not fit this version; changes nothing."""
        if not self.applied:
            raise ValueError("a change set arrived before any whole version")
        if delta.middlewares or delta.whole:
            raise ValueError("a change set cannot change middlewares, nor carry a version that goes whole")
        routers, services = self.routers, self.services
        removed = set(delta.removed_routers)
        gone = set(delta.removed_services)
        upserted = {s.name for s in delta.services}
        for name in delta.removed_routers:
            if name not in routers:
                raise ValueError(f"the change set removes router {name}, which is not live")
        for name in gone:
            if name not in services:
                raise ValueError(f"the change set removes service {name}, which is not live")
        uses: dict[str, int] = {}
        hosts: dict[HostKey, set[str]] = {}
        for name in (*removed, *(r.name for r in delta.routers if r.name in routers)):
            old = routers[name]
            uses[old.service] = uses.get(old.service, 0) - 1
            hosts.setdefault(host_key(old), set(self.hosts.get(host_key(old), ()))).discard(name)
        for router in delta.routers:
            if router.service in gone or (router.service not in services and router.service not in upserted):
                raise ValueError(f"router {router.name} refers to unknown service {router.service}")
            for middleware in router.middlewares:
                if middleware not in self.middlewares:
                    raise ValueError(f"router {router.name} refers to unknown middleware {middleware}")
            uses[router.service] = uses.get(router.service, 0) + 1
            hosts.setdefault(host_key(router), set(self.hosts.get(host_key(router), ()))).add(router.name)
        for name in gone:
            if self.uses.get(name, 0) + uses.get(name, 0) > 0:
                raise ValueError(f"the change set removes service {name}, which routers still use")
        for host, names in delta.hosts.items():
            if set(names) != hosts.get(host, self.hosts.get(host, set())) or len(set(names)) != len(names):
                raise ValueError(f"the change set does not list the routers of host {host} as they are")
        if not hosts.keys() <= delta.hosts.keys():
            raise ValueError("the change set does not list the routers of every host it changes")

    def update_routers(self, delta: Delta) -> None:
        """Apply `delta`'s routers (after `check`)."""
        routers = self.routers
        for name in (*delta.removed_routers, *(r.name for r in delta.routers if r.name in routers)):
            old = routers.pop(name)
            self.hosts[host_key(old)].discard(name)
            self.uses[old.service] -= 1
        for router in delta.routers:
            routers[router.name] = router
            self.hosts.setdefault(host_key(router), set()).add(router.name)
            self.uses[router.service] = self.uses.get(router.service, 0) + 1
