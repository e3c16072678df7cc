"""`decide`: what the data plane does with a routed request, the decision explain reports too."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from passerelle.http.redirect import Redirect
from passerelle.model import Server
from passerelle.proxy import dispatch
from passerelle.proxy.dataplane import Route, Upstream
from passerelle.proxy.deadlines import Deadlines
from passerelle.proxy.options import ForwardingOptions
from passerelle.proxy.upstream import Pool


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def _route(loop: asyncio.AbstractEventLoop, *, servers: int, redirect: bool = False) -> Route:
    upstream = Upstream("svc")
    pools = [
        Pool(Server(host="10.0.0.1", port=8080 + i), loop, ForwardingOptions(), Deadlines(loop))
        for i in range(servers)
    ]
    upstream.set(pools, "")
    return Route("r", upstream, Redirect(scheme="https") if redirect else None)


@pytest.mark.parametrize(
    ("route", "misdirected", "action"),
    [
        (None, False, dispatch.NOT_FOUND),
        (None, True, dispatch.MISDIRECTED),
        ({"servers": 1}, True, dispatch.MISDIRECTED),  # 421 before anything else
        ({"servers": 0, "redirect": True}, False, dispatch.REDIRECT),  # a redirect needs no servers
        ({"servers": 0}, False, dispatch.UNAVAILABLE),
        ({"servers": 2}, False, dispatch.PROXY),
    ],
)
def test_decide(
    loop: asyncio.AbstractEventLoop, route: dict[str, int] | None, misdirected: bool, action: str
) -> None:
    made = None if route is None else _route(loop, **route)
    assert dispatch.decide(made, misdirected) == action


def test_an_unavailable_service_says_why(loop: asyncio.AbstractEventLoop) -> None:
    route = _route(loop, servers=0)
    assert route.upstream.unavailable == "service svc has no servers"
