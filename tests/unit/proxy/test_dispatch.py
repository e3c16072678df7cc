"""`decide`: what the data plane does with a routed request, the decision explain reports too."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from types import SimpleNamespace

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


class Asked:
    """A Dispatcher's misdirected(), counted: what TlsPeer.misdirected saves."""

    def __init__(self) -> None:
        self.table = object()
        self.calls: list[bytes] = []

    def misdirected(self, context: ssl.SSLContext, host: bytes) -> bool:
        self.calls.append(host)
        return host == b"guarded.test"


def test_a_connection_asks_whether_a_host_is_misdirected_once_per_host_and_table() -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    handshake = SimpleNamespace(
        context=context, getpeercert=lambda binary_form: None, version=lambda: "TLSv1.3"
    )
    peer = dispatch.TlsPeer(handshake)  # type: ignore[arg-type]
    tls = Asked()
    answers = [peer.misdirected(tls, host) for host in (b"open.test", b"open.test", b"guarded.test")]  # type: ignore[arg-type]
    assert answers == [False, False, True]
    assert tls.calls == [b"open.test", b"guarded.test"]
    tls.table = object()  # a reload rebound the SNI table: its hosts' options may have changed
    assert peer.misdirected(tls, b"guarded.test") is True  # type: ignore[arg-type]
    assert tls.calls == [b"open.test", b"guarded.test", b"guarded.test"]
