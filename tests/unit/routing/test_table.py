"""The compiled table against the reference semantics in rules.py, on generated inputs."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from passerelle.model import DynamicConfig, PathMatch, PathType, Router, Service
from passerelle.routing import rules
from passerelle.routing.table import _parent, _path, compile_tables

segment = st.sampled_from(["a", "b", "foo", "foobar", "x.y", "", "A"])
paths = st.lists(segment, min_size=0, max_size=4).map(lambda parts: "/" + "/".join(parts))
hosts = st.sampled_from(["a.example.com", "b.example.com", "example.com", "x.a.example.com", "other"])
rule_hosts = st.sampled_from([None, "a.example.com", "*.example.com", "example.com", "*.a.example.com"])
path_types = st.sampled_from([PathType.EXACT, PathType.PREFIX])


@st.composite
def configs(draw: st.DrawFn) -> DynamicConfig:
    routers = []
    seen = set()
    for i in range(draw(st.integers(0, 8))):
        host, kind, path = draw(rule_hosts), draw(path_types), draw(paths)
        if kind is PathType.PREFIX:
            path = path.rstrip("/") or "/"
        if (host, kind, path) in seen:
            continue  # translation never emits a duplicate claim
        seen.add((host, kind, path))
        routers.append(Router(name=f"r{i}", service="s", host=host, path=PathMatch(type=kind, value=path)))
    if draw(st.booleans()):
        routers.append(Router(name="default", service="s"))
    return DynamicConfig(routers=tuple(routers), services=(Service(name="s"),))


def reference_match(config: DynamicConfig, host: str, path: str) -> str | None:
    """Exact host before wildcard before none; within a host Exact before Prefix, longest prefix first."""
    host = rules.normalize_host(host)
    path = rules.request_path(path)

    def rank(r: Router) -> tuple[int, int, int]:
        tier = 0 if r.host is not None and not r.host.startswith("*.") else 1 if r.host is not None else 2
        assert r.path is not None
        return (tier, 0 if r.path.type is PathType.EXACT else 1, -len(r.path.value.rstrip("/")))

    candidates = [
        r
        for r in config.routers
        if r.path is not None and rules.host_matches(r.host, host) and rules.path_matches(r.path, path)
    ]
    if candidates:
        return min(candidates, key=rank).name
    return next((r.name for r in config.routers if r.path is None), None)


@settings(max_examples=400, deadline=None)
@given(configs(), hosts, st.sampled_from(["", ":8080", ":1"]), paths, st.sampled_from(["", "?q=1", "?a/b"]))
def test_table_agrees_with_the_reference(
    config: DynamicConfig, host: str, port: str, path: str, query: str
) -> None:
    table = compile_tables(config, ["web"], lambda r: r.name)["web"]
    got = table.match(
        (host.upper() if len(path) % 2 else host).encode() + port.encode(), (path + query).encode()
    )
    assert got == reference_match(config, host + port, path + query)


def test_element_wise_prefix_examples() -> None:
    rule = PathMatch(type=PathType.PREFIX, value="/foo")
    assert [rules.path_matches(rule, p) for p in ("/foo", "/foo/", "/foo/bar", "/foobar", "/fo", "/")] == [
        True, True, True, False, False, False,
    ]  # fmt: skip
    slash = PathMatch(type=PathType.PREFIX, value="/aaa/bbb/")
    assert rules.path_matches(slash, "/aaa/bbb") and not rules.path_matches(slash, "/aaa/bbbxyz")


def test_wildcard_matches_exactly_one_label() -> None:
    assert rules.host_matches("*.example.com", "a.example.com")
    assert not rules.host_matches("*.example.com", "example.com")
    assert not rules.host_matches("*.example.com", "a.b.example.com")
    assert not rules.host_matches("*.example.com", ".example.com")


def test_absolute_form_targets_and_ipv6_hosts() -> None:
    config = DynamicConfig(
        routers=(
            Router(name="api", service="s", host="[::1]", path=PathMatch(type=PathType.PREFIX, value="/api")),
            Router(name="any", service="s", path=PathMatch(type=PathType.EXACT, value="/")),
        ),
        services=(Service(name="s"),),
    )
    table = compile_tables(config, ["web"], lambda r: r.name)["web"]
    assert table.match(b"[::1]:8080", b"/api/v1?x") == "api"
    assert table.match(b"other", b"http://other") == "any"
    assert table.match(b"[::1]", b"http://[::1]:8080/api") == "api"


def test_entrypoint_restricted_routers_only_reach_their_tables() -> None:
    config = DynamicConfig(
        routers=(
            Router(name="both", service="s", path=PathMatch(type=PathType.PREFIX, value="/")),
            Router(
                name="secure",
                service="s",
                host="h",
                path=PathMatch(type=PathType.PREFIX, value="/"),
                entrypoints=("websecure",),
            ),
        ),  # fmt: skip
        services=(Service(name="s"),),
    )
    tables = compile_tables(config, ["web", "websecure"], lambda r: r.name)
    assert tables["web"].match(b"h", b"/") == "both"
    assert tables["websecure"].match(b"h", b"/") == "secure"


@given(st.binary(max_size=12).map(lambda b: b.translate(bytes.maketrans(b"\x00\x01", b"/?"))))
def test_the_compiled_path_loops_are_partition_and_rpartition(data: bytes) -> None:
    assert _path(data) == data.partition(b"?")[0]
    assert _parent(data) == data.rpartition(b"/")[0]
