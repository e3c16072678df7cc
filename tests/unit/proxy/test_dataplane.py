"""Dataplane.apply: routes recompiled only when routers change; endpoints replaced in place."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from passerelle.model import DynamicConfig, PathMatch, PathType, Router, Server, Service
from passerelle.proxy.dataplane import Dataplane
from passerelle.proxy.options import EntryPointOptions, ForwardingOptions


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
