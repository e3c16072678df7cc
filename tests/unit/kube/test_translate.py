"""Table-driven Ingress translation tests: each `fixtures/<case>.yaml` holds Kubernetes objects and,
beside them, the routers, services, problems and request routing the Ingress spec calls for.

Fixture format::

    objects: [...]                     # Kubernetes objects (namespace defaults to `default`)
    options:                           # optional IngressOptions
      ingressClasses: [passerelle]
      ingressWithoutClass: true
      entryPoints:                     # default: {web: {port: 8080}}
        web: {port: 8080}
        websecure: {port: 8443, tls: true}
        plain: {port: 80, redirect: websecure}   # http.redirections.entryPoint to websecure
    expect:
      routers:                         # a multiset of (host, path, service, entrypoints, middlewares)
        - {name: optional, host: foo.example.com or null, path: {type: Prefix, value: /} or null,
           service: <service name>, entrypoints: [web] (default [], all), middlewares: [] (default)}
      middlewares:                     # exactly these (default none), as the codec writes them
        - {name: redirect-https-permanent@passerelle, kind: redirectScheme, spec: {...}}
      services:                        # exactly these services, with exactly these servers
        - {name: ..., servers: ["10.0.0.1:8080"], unavailable: optional substring,
           scheme: h2c (default http)}
      problems:                        # exactly this many problems, each matching one of these
        - {object: "Ingress ns/name", severity: error, message_contains: "..."}
      requests:                        # optional: end to end through the compiled route table
        - {host: foo.example.com:8080, path: /foo, router: <router name> or null,
           entrypoint: web (default)}
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from passerelle.kube.ingress import IngressOptions, translate
from passerelle.kube.placement import EntryPointInfo
from passerelle.kube.snapshot import ClusterSnapshot
from passerelle.model import Problem, Router, codec
from passerelle.routing.table import compile_tables

FIXTURES = Path(__file__).parent / "fixtures"
CASES = sorted(FIXTURES.glob("*.yaml"))

_CASE_KEYS = {"objects", "options", "expect"}
_EXPECT_KEYS = {"routers", "services", "problems", "requests", "middlewares"}
_ROUTER_KEYS = {"name", "host", "path", "service", "entrypoints", "middlewares"}
_SERVICE_KEYS = {"name", "servers", "unavailable", "scheme"}
_PROBLEM_KEYS = {"object", "severity", "message_contains"}
_REQUEST_KEYS = {"host", "path", "router", "entrypoint"}

RouterKey = tuple[str | None, tuple[str, str] | None, str, tuple[str, ...], tuple[str, ...]]


def _load(path: Path) -> dict[str, Any]:
    case = yaml.safe_load(path.read_text(encoding="utf-8"))
    # A typo in a fixture must fail loudly, not silently assert less.
    assert set(case) <= _CASE_KEYS, f"unknown keys {set(case) - _CASE_KEYS}"
    assert set(case["expect"]) <= _EXPECT_KEYS, f"unknown keys {set(case['expect']) - _EXPECT_KEYS}"
    for key, allowed in (
        ("routers", _ROUTER_KEYS),
        ("services", _SERVICE_KEYS),
        ("problems", _PROBLEM_KEYS),
        ("requests", _REQUEST_KEYS),
    ):
        for entry in case["expect"].get(key) or []:
            assert set(entry) <= allowed, f"{key}: unknown keys {set(entry) - allowed}"
    for entry in case["expect"].get("routers") or []:
        assert {"host", "path", "service"} <= set(entry), f"router needs host, path, service: {entry}"
    return case


def _options(raw: dict[str, Any] | None) -> IngressOptions:
    raw = raw or {}
    assert set(raw) <= {"ingressClasses", "ingressWithoutClass", "entryPoints"}, raw
    kwargs: dict[str, Any] = {}
    if "entryPoints" in raw:
        tls = {name: bool(ep.get("tls")) for name, ep in raw["entryPoints"].items()}
        kwargs["entrypoints"] = tuple(
            EntryPointInfo(
                name=name,
                tls=tls[name],
                port=ep.get("port", 0),
                redirect_scheme=("https" if tls[ep["redirect"]] else "http") if "redirect" in ep else "",
                redirect_to=ep.get("redirect", ""),
            )
            for name, ep in raw["entryPoints"].items()
        )
    if "ingressClasses" in raw:
        kwargs["ingress_classes"] = tuple(raw["ingressClasses"])
    if "ingressWithoutClass" in raw:
        kwargs["ingress_without_class"] = raw["ingressWithoutClass"]
    return IngressOptions(**kwargs)


def _router_key(router: Router) -> RouterKey:
    path = None if router.path is None else (str(router.path.type), router.path.value)
    return (router.host, path, router.service, router.entrypoints, router.middlewares)


def _expected_router_key(entry: dict[str, Any]) -> RouterKey:
    path = entry["path"]
    return (
        entry["host"],
        None if path is None else (path["type"], path["value"]),
        entry["service"],
        tuple(entry.get("entrypoints", ())),
        tuple(entry.get("middlewares", ())),
    )


def _matches(problem: Problem, entry: dict[str, Any]) -> bool:
    return (
        str(problem.ref) == entry["object"]
        and str(problem.severity) == entry["severity"]
        and entry["message_contains"] in problem.message
    )


def _assign(expected: list[dict[str, Any]], actual: list[Problem]) -> bool:
    """Is there a one-to-one pairing of expected entries with actual problems? (tiny backtracking)"""
    if not expected:
        return True
    first, rest = expected[0], expected[1:]
    for i, problem in enumerate(actual):
        if _matches(problem, first) and _assign(rest, actual[:i] + actual[i + 1 :]):
            return True
    return False


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_translate(path: Path) -> None:
    case = _load(path)
    expect = case["expect"]
    config, problems = translate(ClusterSnapshot.of(case["objects"]), _options(case.get("options")))
    shown = "\n".join(str(p) for p in problems) or "(none)"

    # Routers: a multiset of (host, path, service, entrypoints, middlewares); names only where given.
    expected_routers = expect.get("routers") or []
    assert Counter(map(_router_key, config.routers)) == Counter(
        map(_expected_router_key, expected_routers)
    ), f"problems were:\n{shown}"
    by_name = {r.name: r for r in config.routers}
    assert len(by_name) == len(config.routers), "router names must be unique"
    for entry in expected_routers:
        if "name" in entry:
            assert entry["name"] in by_name, f"no router named {entry['name']!r}; have {sorted(by_name)}"
            assert _router_key(by_name[entry["name"]]) == _expected_router_key(entry)

    # Services: exactly these, with exactly these servers; no servers always says why.
    expected_services = {s["name"]: s for s in expect.get("services") or []}
    actual_services = {s.name: s for s in config.services}
    assert len(actual_services) == len(config.services), "service names must be unique"
    assert sorted(actual_services) == sorted(expected_services)
    for name, entry in expected_services.items():
        service = actual_services[name]
        assert sorted(str(s) for s in service.servers) == sorted(entry["servers"]), name
        assert service.scheme == entry.get("scheme", "http"), name
        if entry["servers"]:
            assert service.unavailable == "", name
            assert "unavailable" not in entry, f"{name}: a service with servers is available"
        else:
            assert "unavailable" in entry, f"{name}: say why a service has no servers"
            assert entry["unavailable"] in service.unavailable, name

    # Problems: each expected one present, and nothing else.
    expected_problems = expect.get("problems") or []
    assert len(problems) == len(expected_problems), f"problems were:\n{shown}"
    assert _assign(expected_problems, problems), f"problems were:\n{shown}"

    # Middlewares: exactly these.
    assert codec.dump(config)["middlewares"] == expect.get("middlewares", [])

    # The configuration crosses process boundaries as JSON.
    assert codec.load(json.loads(json.dumps(codec.dump(config)))) == config

    # Requests, end to end through the compiled table.
    requests = expect.get("requests") or []
    if requests:
        names = [ep.name for ep in _options(case.get("options")).entrypoints]
        tables = compile_tables(config, names, lambda r: r.name)
        got = [
            tables[r.get("entrypoint", "web")].match(r["host"].encode(), r["path"].encode()) for r in requests
        ]
        want = [r["router"] for r in requests]
        assert got == want, "\n".join(
            f"{r['host']}{r['path']}: got {g}, want {w}"
            for r, g, w in zip(requests, got, want, strict=True)
            if g != w
        )


def test_there_are_fixtures() -> None:
    assert len(CASES) >= 25
