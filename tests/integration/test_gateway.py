"""Gateway API objects through the whole router: requests, `/api/explain`, the API lists,
`passerelle check`, and a reload that changes a route, with real echo backends on loopback."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from passerelle.kube.gateway import CONTROLLER_NAME
from tests.integration.harness import Backends, Router, echo, endpoint_slice, service, wait_for
from tests.kubeapi import KubeAPI

GATEWAY = "gateway.networking.k8s.io/v1"


def objects(backends: Backends, *, second_rule_path: str = "/") -> list[dict[str, Any]]:
    one, two = backends.whoami("one-0"), backends.whoami("two-0")
    return [
        {"apiVersion": GATEWAY, "kind": "GatewayClass", "metadata": {"name": "pass"},
         "spec": {"controllerName": CONTROLLER_NAME}},
        {"apiVersion": GATEWAY, "kind": "Gateway", "metadata": {"name": "gw", "namespace": "default"},
         "spec": {"gatewayClassName": "pass", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}},
        {"apiVersion": GATEWAY, "kind": "HTTPRoute", "metadata": {"name": "r", "namespace": "default"},
         "spec": {"parentRefs": [{"name": "gw"}], "hostnames": ["app.test"], "rules": [
             {"backendRefs": [{"name": "one", "port": 80}]},
             {"matches": [{"path": {"value": second_rule_path}, "headers": [{"name": "version", "value": "two"}]}],
              "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "X-Via", "value": "gw"}]}}],
              "backendRefs": [{"name": "two", "port": 80}]},
             {"matches": [{"path": {"value": "/broken"}}], "backendRefs": [{"name": "missing", "port": 80}]},
         ]}},
        service("one"), endpoint_slice("one", [one]), service("two"), endpoint_slice("two", [two]),
    ]  # fmt: skip


def route_line(router: Router) -> int:
    """The line the HTTPRoute's document starts on in the manifest file."""
    start = 1
    for n, line in enumerate((router.manifests / "objects.yaml").read_text().splitlines(), start=1):
        if line == "---":
            start = n + 1
        elif line == "kind: HTTPRoute":
            return start
    raise AssertionError("no HTTPRoute in the file")


def test_gateway_routes_are_served_explained_and_listed(
    backends: Backends, make_router: Callable[..., Router]
) -> None:
    router = make_router(
        objects(backends), config={"gateway": {"listeners": [{"port": 80, "entryPoint": "web"}]}}
    )
    with httpx.Client(base_url=router.base, timeout=5) as client:
        plain = client.get("/x", headers={"Host": "app.test"})
        assert echo(plain)["pod"] == "one-0"
        matched = client.get("/x", headers={"Host": "app.test", "Version": "two"})
        assert echo(matched)["pod"] == "two-0" and echo(matched)["headers"]["X-Via"] == ["gw"]
        assert client.get("/broken", headers={"Host": "app.test"}).status_code == 500
        assert client.get("/x", headers={"Host": "other.test"}).status_code == 404

    url = quote(f"http://app.test:{router.port}/x", safe="")
    answer = router.api(f"/api/explain?url={url}&header={quote('Version: two')}")
    assert answer["router"]["source"] == "HTTPRoute default/r rule 1"
    assert "Header(`version`, `two`)" in answer["router"]["rule"]
    assert answer["result"]["action"] == "proxy" and "default/two:80" in answer["result"]["detail"]
    assert [m["kind"] for m in answer["middlewares"]] == ["headers"]
    without = router.api(f"/api/explain?url={url}")
    assert without["router"]["source"] == "HTTPRoute default/r rule 0"
    broken = router.api(f"/api/explain?url={quote(f'http://app.test:{router.port}/broken', safe='')}")
    assert broken["result"]["status"] == 500

    routers = router.api("/api/http/routers")
    sources = sorted(r["source"] for r in routers)
    assert sources == [f"HTTPRoute default/r rule {i}" for i in range(3)]
    listed = next(r for r in routers if r["source"].endswith("rule 2"))
    assert any("Service default/missing not found" in p["message"] for p in listed["problems"])
    assert listed["file"].endswith(f"objects.yaml:{route_line(router)}")
    assert any(p["object"] == "HTTPRoute default/r" for p in router.problems())

    # A change to the route reaches the data plane: the header match now needs /v2.
    version = router.version()
    router.write("objects.yaml", objects(backends, second_rule_path="/v2"))
    router.wait_version(version)
    with httpx.Client(base_url=router.base, timeout=5) as client:
        wait_for(
            lambda: echo(client.get("/x", headers={"Host": "app.test", "Version": "two"}))["pod"] == "one-0",
            "the header match moved to /v2",
        )
        assert echo(client.get("/v2/x", headers={"Host": "app.test", "Version": "two"}))["pod"] == "two-0"


def test_check_reports_gateway_problems_with_their_file(backends: Backends, tmp_path: Path) -> None:
    router = Router(tmp_path)
    router.write("objects.yaml", objects(backends))
    config = tmp_path / "check.yaml"
    config.write_text("entryPoints: {web: {address: ':80'}}\n")
    result = subprocess.run(
        [sys.executable, "-m", "passerelle", "check", "-c", str(config), str(router.manifests)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "HTTPRoute default/r: rules[2].backendRefs[0]: Service default/missing not found" in result.stdout
    assert f"objects.yaml:{route_line(router)}: error: HTTPRoute default/r" in result.stdout
    assert "3 routers" in result.stdout


def test_the_kubernetes_provider_serves_gateway_routes(
    backends: Backends, kubeapi: Callable[..., KubeAPI], make_router: Callable[..., Router], tmp_path: Path
) -> None:
    """Gateway API objects from the API server: a route to a Service of another namespace is served
    while a ReferenceGrant allows it, and answers 500 once the grant is deleted; the leader writes
    the Gateway's and the route's status as it goes."""
    api = kubeapi(crds={"gateway.networking.k8s.io"})
    pod = backends.whoami("web-0", "web")
    grant = {
        "apiVersion": "gateway.networking.k8s.io/v1beta1",
        "kind": "ReferenceGrant",
        "metadata": {"name": "apps-to-web", "namespace": "web"},
        "spec": {
            "from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "default"}],
            "to": [{"group": "", "kind": "Service"}],
        },
    }
    for obj in objects(backends)[:2]:
        api.create(obj)
    api.create(
        {"apiVersion": GATEWAY, "kind": "HTTPRoute", "metadata": {"name": "cross", "namespace": "default"},
         "spec": {"parentRefs": [{"name": "gw"}], "hostnames": ["cross.test"],
                  "rules": [{"backendRefs": [{"name": "site", "namespace": "web", "port": 80}]}]}}
    )  # fmt: skip
    api.create(service("site", namespace="web"))
    api.create(endpoint_slice("site", [pod], namespace="web")["items"][0])
    api.create(grant)
    kubeconfig = api.kubeconfig(tmp_path / "kubeconfig")
    router = make_router(
        config={
            "providers": {"kubernetes": {"kubeconfig": str(kubeconfig), "throttle": "0.1s"}},
            "gateway": {"listeners": [{"port": 80, "entryPoint": "web"}]},
        }
    )

    def route_conditions() -> dict[str, str]:
        parents = ((api.get(GATEWAY, "HTTPRoute", "default", "cross") or {}).get("status") or {}).get(
            "parents"
        ) or []
        return {c["type"]: f"{c['status']} {c['reason']}" for p in parents for c in p["conditions"]}

    def served(status: int) -> bool:
        return client.get("/", headers={"Host": "cross.test"}).status_code == status

    with httpx.Client(base_url=router.base, timeout=5) as client:
        wait_for(lambda: served(200), "the route is served")
        assert echo(client.get("/", headers={"Host": "cross.test"}))["pod"] == "web-0"
        # the leader writes status: the route is accepted, its references resolved, the Gateway programmed
        wanted = {"Accepted": "True Accepted", "ResolvedRefs": "True ResolvedRefs"}
        wait_for(lambda: route_conditions() == wanted, f"route status {wanted}", timeout=10)
        gateway = (api.get(GATEWAY, "Gateway", "default", "gw") or {}).get("status") or {}
        assert {c["type"]: c["status"] for c in gateway["conditions"]} == {
            "Accepted": "True",
            "Programmed": "True",
        }
        assert [(lst["name"], lst["attachedRoutes"]) for lst in gateway["listeners"]] == [("http", 1)]
        api.delete("gateway.networking.k8s.io/v1beta1", "ReferenceGrant", "web", "apps-to-web")
        wait_for(lambda: served(500), "the grant is gone")
        wanted = {"Accepted": "True Accepted", "ResolvedRefs": "False RefNotPermitted"}
        wait_for(lambda: route_conditions() == wanted, f"route status {wanted}", timeout=10)
    router.wait_problem("HTTPRoute default/cross", "RefNotPermitted")
