"""The conditional table: Ingress routers route exactly as in RouteTable; Gateway routers add
conditions (with fall-through), multi-label wildcards and listener isolation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from passerelle.model import DynamicConfig, PathMatch, PathType, RequestMatch, Router, Service
from passerelle.routing.conditional import ConditionalTable
from passerelle.routing.table import RouteTable
from tests.unit.routing.test_table import configs, hosts, paths


@settings(max_examples=300, deadline=None)
@given(configs(), hosts, st.sampled_from(["", ":8080"]), paths, st.sampled_from(["", "?q=1"]))
def test_ingress_routers_route_as_in_route_table(
    config: DynamicConfig, host: str, port: str, path: str, query: str
) -> None:
    plain: RouteTable[str] = RouteTable()
    conditional: ConditionalTable[str] = ConditionalTable()
    for router in config.routers:
        plain.add(router, router.name)
        conditional.add(router, router.name)
    request = ((host + port).encode(), (path + query).encode())
    assert conditional.match(*request) == plain.match(*request)


def gateway(
    name: str, path: str, *, host: str | None = None, listener: str = "", **conditions: object
) -> Router:
    match = RequestMatch(**conditions) if conditions else None  # type: ignore[arg-type]
    return Router(
        name=name,
        service="s",
        host=host,
        path=PathMatch(type=PathType.PREFIX, value=path),
        conditions=match,
        listener=listener,
    )


def head(target: str, *fields: str) -> bytes:
    return ("\r\n".join([f"GET {target} HTTP/1.1", "Host: h", *fields]) + "\r\n\r\n").encode()


@pytest.mark.parametrize(
    ("target", "fields", "method", "expected"),
    [
        ("/", (), b"GET", "root"),
        ("/", ("X-Env: canary",), b"GET", "canary"),
        ("/", ("x-env:   canary  ",), b"GET", "canary"),  # names case-insensitive, values trimmed
        ("/", ("X-Env: other", "X-Env: canary"), b"GET", "canary"),  # any of a repeated field
        ("/", ("X-Env: Canary",), b"GET", "root"),  # values exact
        ("/api/x", (), b"POST", "post"),
        ("/api/x", (), b"GET", "root"),  # the /api candidate's method fails: falls through to /
        ("/api/x?v=2", (), b"GET", "v2"),
        ("/api/x?v=2&v=3", (), b"GET", "v2"),  # the first value of a repeated parameter
        ("/api/x?v=3&v=2", (), b"GET", "root"),
        ("/api/x?v=%32", (), b"GET", "v2"),  # percent-decoded
        ("http://h/api/x?v=2", (), b"GET", "v2"),  # absolute-form
    ],
)
def test_conditions_and_fall_through(
    target: str, fields: tuple[str, ...], method: bytes, expected: str
) -> None:
    table: ConditionalTable[str] = ConditionalTable()
    for router in (
        gateway("root", "/"),
        gateway("canary", "/", headers=(("x-env", "canary"),)),
        gateway("post", "/api", method="POST"),
        gateway("v2", "/api", query=(("v", "2"),)),
    ):
        table.add(router, router.name)
    assert table.match_request(b"h", target.encode(), method, head(target, *fields)) == expected


def test_later_candidates_without_conditions_are_shadowed_and_ranks_order_the_rest() -> None:
    table: ConditionalTable[str] = ConditionalTable()
    for router in (
        gateway("first", "/"),
        gateway("second", "/"),
        gateway("query", "/", query=(("a", "1"),)),
        gateway("headers", "/", headers=(("a", "1"), ("b", "2"))),
        gateway("method", "/", method="GET"),
    ):
        table.add(router, router.name)
    assert [t for _, _, t in table.any_host.prefix[b""]] == ["method", "headers", "query", "first"]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("host", "path", "expected"),
    [
        ("a.example.com", "/wide", "wide"),
        ("a.b.example.com", "/wide", "wide"),  # a Gateway wildcard covers several labels
        ("x.foo.example.com", "/wide", None),  # the *.foo.example.com listener takes it: isolation
        ("x.foo.example.com", "/foo", "foo"),
        ("exact.foo.example.com", "/foo", "exact"),  # a route hostname under the listener's
        ("exact.foo.example.com", "/other", None),
        ("example.com", "/wide", None),
        ("elsewhere.test", "/any", "any"),
        ("[::1]:8080", "/any", "any"),
    ],
)
def test_wildcards_and_listener_isolation(host: str, path: str, expected: str | None) -> None:
    table: ConditionalTable[str] = ConditionalTable()
    for router in (
        gateway("wide", "/wide", host="*.example.com", listener="*.example.com"),
        gateway("foo", "/foo", host="*.foo.example.com", listener="*.foo.example.com"),
        gateway("exact", "/foo", host="exact.foo.example.com", listener="*.foo.example.com"),
        gateway("any", "/any"),
    ):
        table.add(router, router.name)
    assert table.match_request(host.encode(), path.encode(), b"GET", b"") == expected


def test_compile_uses_the_conditional_table_only_where_gateway_routers_are() -> None:
    from passerelle.routing.table import compile_tables

    routers = (
        Router(name="ingress", service="s", host="a.test", path=PathMatch(type=PathType.PREFIX, value="/")),
        Router(
            name="gw",
            service="s",
            path=PathMatch(type=PathType.PREFIX, value="/"),
            entrypoints=("gateway",),
            listener="",
        ),
    )
    tables = compile_tables(
        DynamicConfig(routers=routers, services=(Service(name="s"),)), ["web", "gateway"], str
    )
    assert isinstance(tables["web"], RouteTable) and isinstance(tables["gateway"], ConditionalTable)
    assert tables["web"].match(b"a.test", b"/") == str(routers[0])
    assert tables["gateway"].match(b"b.test", b"/") == str(routers[1])
