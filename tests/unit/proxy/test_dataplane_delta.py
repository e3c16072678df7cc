"""Dataplane.patch_steps: a change set applied to the live version routes exactly as the new
version compiled whole, and one that does not fit is refused with nothing changed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from passerelle.middlewares.redirect_scheme import RedirectScheme
from passerelle.model import DynamicConfig, Middleware, PathMatch, PathType, Router, Server, Service
from passerelle.model.delta import Delta, between
from passerelle.proxy.dataplane import Dataplane, Route
from passerelle.proxy.options import EntryPointOptions, ForwardingOptions
from passerelle.routing.table import HostRoutes, RouteTable

ENTRYPOINTS = ("web", "websecure")
HOSTS = (None, "a.test", "b.test", "*.test", "A.test")
PATHS = (None, ("/", PathType.PREFIX), ("/x", PathType.PREFIX), ("/x", PathType.EXACT))
MIDDLEWARE = Middleware(name="to-https", spec=RedirectScheme(scheme="https", port=443, permanent=True))


@st.composite
def configs(draw: st.DrawFn) -> DynamicConfig:
    services = {
        name: Service(
            name=name,
            servers=tuple(Server(host="127.0.0.1", port=p) for p in sorted(draw(st.sets(st.integers(1, 4), max_size=2)))),
            scheme=draw(st.sampled_from(("http", "http", "h2c"))),
        )
        for name in draw(st.sets(st.sampled_from(("s1", "s2", "s3")), min_size=1))
    }  # fmt: skip
    routers = []
    for i in draw(st.lists(st.integers(0, 7), unique=True, max_size=6)):
        path = draw(st.sampled_from(PATHS))
        routers.append(
            Router(
                name=f"r{i}",
                service=draw(st.sampled_from(sorted(services))),
                host=draw(st.sampled_from(HOSTS)),
                path=None if path is None else PathMatch(value=path[0], type=path[1]),
                entrypoints=draw(st.sampled_from(((), (), ("web",), ("websecure",)))),
                middlewares=draw(st.sampled_from(((), (), ("to-https",)))),
            )
        )
    draw(st.randoms()).shuffle(routers)
    return DynamicConfig(routers=tuple(routers), services=tuple(services.values()), middlewares=(MIDDLEWARE,))


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def dataplane(loop: asyncio.AbstractEventLoop) -> Dataplane:
    options = [EntryPointOptions(name=name, host="127.0.0.1", port=0) for name in ENTRYPOINTS]
    return Dataplane(options, ForwardingOptions(), loop)


def route(r: Route | None) -> Any:
    if r is None:
        return None
    pools = [(type(p).__name__, str(p.server), p.closed) for p in r.upstream.pools.items]
    return (r.name, r.upstream.service, pools, r.upstream.unavailable, r.redirect is not None)


def host_routes(h: HostRoutes[Route] | None) -> Any:
    if h is None:
        return None
    return ({k: route(v) for k, v in h.exact.items()}, {k: route(v) for k, v in h.prefix.items()})


def tables(dp: Dataplane) -> Any:
    """What every entry point routes where, with each route's pools."""
    out = {}
    for name, entry in dp.entrypoints.items():
        table = entry.table
        assert isinstance(table, RouteTable)
        out[name] = (
            {k: host_routes(v) for k, v in table.hosts.items() if v.exact or v.prefix},
            {k: host_routes(v) for k, v in table.wildcards.items() if v.exact or v.prefix},
            host_routes(table.any_host),
            route(table.default),
        )
    return out


def patch(dp: Dataplane, delta: Delta) -> None:
    for _ in dp.patch_steps(delta):
        pass


@settings(max_examples=200, deadline=None)
@given(st.lists(configs(), min_size=2, max_size=6))
def test_a_patched_version_routes_as_the_whole_version(versions: list[DynamicConfig]) -> None:
    loop = asyncio.new_event_loop()
    try:
        patched = dataplane(loop)
        patched.apply(versions[0])
        for before, after in zip(versions, versions[1:], strict=False):
            patch(patched, between(before, after))
            whole = dataplane(loop)
            whole.apply(after)
            assert tables(patched) == tables(whole)
            live = {key for key, pool in patched._pools.items() if not pool.closed}
            assert live == set(whole._pools)  # no pool left open that nothing uses, none missing
    finally:
        loop.close()


def config(*routers: Router, services: tuple[str, ...] = ("s",)) -> DynamicConfig:
    return DynamicConfig(
        routers=routers,
        services=tuple(Service(name=n, servers=(Server(host="127.0.0.1", port=1),)) for n in services),
    )


def test_a_change_set_that_does_not_fit_changes_nothing(loop: asyncio.AbstractEventLoop) -> None:
    prefix = PathMatch(type=PathType.PREFIX, value="/")
    a = Router(name="a", service="s", host="a.test", path=prefix)
    dp = dataplane(loop)
    with pytest.raises(ValueError, match="before any whole version"):
        patch(dp, Delta())
    dp.apply(config(a))
    before = tables(dp)
    b = Router(name="b", service="nowhere", host="b.test", path=prefix)
    bad = [
        (Delta(removed_routers=("zzz",)), "removes router zzz"),
        (Delta(routers=(b,), hosts={"b.test": ("b",)}), "unknown service nowhere"),
        (Delta(removed_services=("s",)), "routers still use"),
        (Delta(routers=(Router(name="c", service="s", host="c.test"),), hosts={}), "every host"),
        (Delta(routers=(Router(name="c", service="s", host="a.test", path=prefix),), hosts={"a.test": ("c",)}), "as they are"),
        (Delta(middlewares=True), "middlewares"),
    ]  # fmt: skip
    for delta, message in bad:
        with pytest.raises(ValueError, match=message):
            patch(dp, delta)
        assert tables(dp) == before


def test_a_change_set_leaves_the_other_hosts_routes_as_they_were(loop: asyncio.AbstractEventLoop) -> None:
    prefix = PathMatch(type=PathType.PREFIX, value="/")
    routers = [Router(name=f"r{i}", service="s", host=f"h{i}.test", path=prefix) for i in range(100)]
    before = config(*routers)
    dp = dataplane(loop)
    dp.apply(before)
    table = dp.entrypoints["web"].table
    assert isinstance(table, RouteTable)
    after = config(*routers[1:], Router(name="new", service="s", host="new.test", path=prefix))
    patch(dp, between(before, after))
    new = dp.entrypoints["web"].table
    assert isinstance(new, RouteTable) and new is dp.entrypoints["websecure"].table  # still one table
    assert new is not table and b"h0.test" not in new.hosts and b"new.test" in new.hosts
    assert all(new.hosts[k] is table.hosts[k] for k in new.hosts if k != b"new.test")  # shared


def test_an_endpoint_change_keeps_the_tables(loop: asyncio.AbstractEventLoop) -> None:
    prefix = PathMatch(type=PathType.PREFIX, value="/")
    before = config(Router(name="a", service="s", host="a.test", path=prefix))
    dp = dataplane(loop)
    dp.apply(before)
    table = dp.entrypoints["web"].table
    moved = Service(name="s", servers=(Server(host="127.0.0.1", port=2),))
    patch(dp, Delta(services=(moved,)))
    assert dp.entrypoints["web"].table is table  # nothing recompiled, nothing copied
    route = table.match(b"a.test", b"/")
    assert route is not None and [p.server.port for p in route.upstream.pools.items] == [2]
