"""Dataplane.apply: routes recompiled only when routers change; endpoints replaced in place."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from passerelle.middlewares.redirect_scheme import RedirectScheme
from passerelle.model import DynamicConfig, Middleware, PathMatch, PathType, Router, Server, Service
from passerelle.proxy.dataplane import Dataplane
from passerelle.proxy.h2c import H2cPool
from passerelle.proxy.options import EntryPointOptions, ForwardingOptions
from passerelle.proxy.upstream import Pool


def config(servers: dict[str, tuple[int, ...]], hosts: tuple[str, ...] = ("a", "b")) -> DynamicConfig:
    prefix = PathMatch(type=PathType.PREFIX, value="/")
    return DynamicConfig(
        routers=tuple(Router(name=h, service=f"svc-{h}", host=h, path=prefix) for h in hosts),
        services=tuple(
            Service(
                name=f"svc-{h}",
                servers=tuple(Server(host="127.0.0.1", port=p) for p in servers.get(h, ())),
                unavailable="" if servers.get(h) else f"svc-{h} has no ready endpoints",
            )
            for h in hosts
        ),  # fmt: skip
    )


@pytest.fixture
def dataplane() -> Iterator[Dataplane]:
    loop = asyncio.new_event_loop()
    yield Dataplane([EntryPointOptions(name="web", host="127.0.0.1", port=0)], ForwardingOptions(), loop)
    loop.close()


def ports(dataplane: Dataplane, host: bytes) -> list[int]:
    route = dataplane.entrypoints["web"].table.match(host, b"/")
    assert route is not None
    return [pool.server.port for pool in route.upstream.pools.items]


def test_an_endpoint_change_replaces_pools_without_recompiling(dataplane: Dataplane) -> None:
    dataplane.apply(config({"a": (1, 2), "b": (3,)}))
    table = dataplane.entrypoints["web"].table
    pool_b = table.match(b"b", b"/").upstream.pools.items[0]  # type: ignore[union-attr]
    dataplane.apply(config({"a": (2, 4), "b": (3,)}))
    assert dataplane.entrypoints["web"].table is table  # no recompilation
    assert ports(dataplane, b"a") == [2, 4]
    assert table.match(b"b", b"/").upstream.pools.items[0] is pool_b  # type: ignore[union-attr]
    dataplane.apply(config({"a": (), "b": (3,)}))
    route = table.match(b"a", b"/")
    assert route is not None and route.upstream.pools.items == ()
    assert route.upstream.unavailable == "svc-a has no ready endpoints"


def test_router_changes_recompile_and_keep_live_pools(dataplane: Dataplane) -> None:
    dataplane.apply(config({"a": (1,), "b": (3,)}))
    table = dataplane.entrypoints["web"].table
    pool = table.match(b"a", b"/").upstream.pools.items[0]  # type: ignore[union-attr]
    dataplane.apply(config({"a": (1,), "c": (5,)}, hosts=("a", "c")))
    new_table = dataplane.entrypoints["web"].table
    assert new_table is not table
    assert new_table.match(b"a", b"/").upstream.pools.items[0] is pool  # type: ignore[union-attr]
    assert new_table.match(b"b", b"/") is None and ports(dataplane, b"c") == [5]


def test_pools_of_servers_that_left_are_closed(dataplane: Dataplane) -> None:
    dataplane.apply(config({"a": (1, 2), "b": (3,)}))
    leaving = [p for p in dataplane.entrypoints["web"].table.match(b"a", b"/").upstream.pools.items]  # type: ignore[union-attr]
    dataplane.apply(config({"a": (2,), "b": (3,)}))
    assert [p.closed for p in leaving] == [True, False]


def test_a_router_with_a_redirect_scheme_answers_with_it() -> None:
    loop = asyncio.new_event_loop()
    try:
        dataplane = Dataplane(
            [EntryPointOptions(name="web", host="127.0.0.1", port=0)], ForwardingOptions(), loop
        )
        prefix = PathMatch(type=PathType.PREFIX, value="/")
        dataplane.apply(
            DynamicConfig(
                routers=(
                    Router(name="r", service="s", host="a", path=prefix, middlewares=("m@kubernetescrd",)),
                    Router(name="plain", service="s", host="b", path=prefix),
                ),
                services=(Service(name="s"),),
                middlewares=(
                    Middleware(
                        name="m@kubernetescrd", spec=RedirectScheme(scheme="https", port=8443, permanent=True)
                    ),
                ),
            )
        )
        route = dataplane.entrypoints["web"].table.match(b"a:8080", b"/x?y")
        assert route is not None and route.redirect is not None
        assert route.redirect.location(b"a:8080", b"/x?y") == b"https://a:8443/x?y"
        plain = dataplane.entrypoints["web"].table.match(b"b", b"/")
        assert plain is not None and plain.redirect is None
    finally:
        loop.close()


def test_an_entrypoint_redirect_catches_everything_but_routed_acme_challenges() -> None:
    loop = asyncio.new_event_loop()
    try:
        options = EntryPointOptions(
            name="web", host="127.0.0.1", port=0, redirect_scheme="https", redirect_port=443
        )
        dataplane = Dataplane([options], ForwardingOptions(), loop)
        dataplane.apply(config({"a": (1,)}, hosts=("a",)))
        table = dataplane.entrypoints["web"].table
        caught = table.match(b"nowhere.example", b"/any?q")
        assert caught is not None and caught.redirect is not None
        assert caught.redirect.location(b"nowhere.example:80", b"/any?q") == b"https://nowhere.example/any?q"
        assert table.match(b"a", b"/page") is caught  # above every Ingress route, as in Traefik
        challenge = table.match(b"a", b"/.well-known/acme-challenge/token")
        assert challenge is not None and challenge.name == "a"  # routed, not redirected
        # No challenge route for that host: the entry point's redirect, not a 404.
        unrouted = table.match(b"zzz", b"/.well-known/acme-challenge/token")
        assert unrouted is not None and unrouted.redirect is not None
    finally:
        loop.close()


def test_a_scheme_change_gets_a_pool_of_the_other_kind_and_closes_the_old_one(dataplane: Dataplane) -> None:
    prefix = PathMatch(type=PathType.PREFIX, value="/")
    server = Server(host="127.0.0.1", port=7)

    def with_scheme(scheme: str) -> DynamicConfig:
        return DynamicConfig(
            routers=(Router(name="a", service="svc", host="a", path=prefix),),
            services=(Service(name="svc", servers=(server,), scheme=scheme),),
        )

    def pool() -> Pool:
        route = dataplane.entrypoints["web"].table.match(b"a", b"/")
        assert route is not None
        return route.upstream.pools.items[0]

    dataplane.apply(with_scheme("http"))
    http = pool()
    assert type(http) is Pool
    dataplane.apply(with_scheme("h2c"))
    h2c = pool()
    assert isinstance(h2c, H2cPool) and http.closed and not h2c.closed
    dataplane.apply(with_scheme("h2c"))  # the same again: the live pool stays
    assert pool() is h2c
