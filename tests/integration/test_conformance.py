"""The upstream Ingress conformance scenarios, run against a real passerelle process.

Each run of a scenario file is one passerelle process. Every Service an Ingress references gets
echo backends (pods named `<service>--<n>`, in the run's namespace) behind a Service and an
EndpointSlice, like the upstream harness's echo Deployments. The derived group re-renders three
features in the v1beta1 Ingress shapes with v1 Endpoints objects.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.integration.harness import Backends, Router, echo

DATA = Path(__file__).parent / "conformance"
SUPPORTED_FEATURES = {"ImplementationSpecificAsPrefix"}
# Left out here, with the reason (each belongs to a later part of the project):
LEFT_OUT = {
    "status": "checks Ingress status, written by the live Kubernetes provider",
    "tls": "needs TLS termination on the entry point",
}


def _left_out(scenario: dict[str, Any]) -> str | None:
    if scenario.get("kind") == "status":
        return "status"
    if "tls_hostname" in (scenario.get("then") or {}):
        return "tls"
    return None


def _load_runs() -> list[tuple[str, dict[str, Any], str]]:
    """(test id, run, apiVersion variant) for every run of every scenario file."""
    out = []
    for group in ("ingress-conformance", "ingress-bfe"):
        for path in sorted((DATA / group).glob("*.yaml")):
            for run in yaml.safe_load(path.read_text())["runs"]:
                out.append((f"{group}/{run['id']}", run, "v1"))
    derived = yaml.safe_load((DATA / "derived" / "ingress-legacy-apiversions.yaml").read_text())
    for feature in derived["features"]:
        for run in yaml.safe_load((DATA / feature).read_text())["runs"]:
            for variant in derived["variants"]:
                out.append((f"derived/{run['id']}-{variant['suffix']}", run, variant["apiVersion"]))
    return out


RUNS = _load_runs()


def test_the_scenario_set_is_complete() -> None:
    """Guards the runner itself: every scenario is either run or left out for a stated reason."""
    total = sum(len(run["scenarios"]) for _, run, _ in RUNS)
    left = Counter(_left_out(s) for _, run, _ in RUNS for s in run["scenarios"] if _left_out(s))
    assert total > 150
    # one status-only scenario; one TLS scenario, in v1 and in the two derived legacy variants
    assert left == {"status": 1, "tls": 3}


def _backends_of(ingress: dict[str, Any]) -> Iterator[tuple[str, int | str]]:
    spec = ingress["spec"]
    found = [spec.get("defaultBackend")] if spec.get("defaultBackend") else []
    for r in spec.get("rules") or []:
        found += [p.get("backend") for p in (r.get("http") or {}).get("paths") or []]
    for backend in found:
        svc = (backend or {}).get("service") or {}
        port = svc.get("port") or {}
        if svc.get("name"):
            yield svc["name"], port.get("number") or port.get("name") or 8080


def _to_legacy(ingress: dict[str, Any], api_version: str) -> dict[str, Any]:
    """Render a v1 Ingress in a v1beta1 shape: spec.backend, serviceName/servicePort."""
    out = copy.deepcopy(ingress)
    out["apiVersion"] = api_version

    def backend(b: dict[str, Any]) -> dict[str, Any]:
        port = b["service"]["port"]
        return {"serviceName": b["service"]["name"], "servicePort": port.get("number") or port.get("name")}

    spec = out["spec"]
    if "defaultBackend" in spec:
        spec["backend"] = backend(spec.pop("defaultBackend"))
    for r in spec.get("rules") or []:
        for p in (r.get("http") or {}).get("paths") or []:
            p["backend"] = backend(p["backend"])
    return out


def _objects(run: dict[str, Any], variant: str, namespace: str, backends: Backends) -> list[dict[str, Any]]:
    replicas = {}
    for scenario in run["scenarios"]:
        if "scale" in scenario:
            replicas[scenario["scale"]["service"]] = scenario["scale"]["replicas"]
    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    ]
    services: dict[str, set[int | str]] = {}
    for raw in run["ingresses"]:
        ing = copy.deepcopy(raw)
        ing["metadata"]["namespace"] = namespace
        for name, port in _backends_of(ing):
            services.setdefault(name, set()).add(port)
        objects.append(ing if variant == "v1" else _to_legacy(ing, variant))
    for name, ports in services.items():
        svc_ports = [
            {"name": f"p{i}", "port": p if isinstance(p, int) else 8080}
            | ({"name": p} if isinstance(p, str) else {})
            for i, p in enumerate(sorted(ports, key=str))
        ]
        objects.append(
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
             "spec": {"ports": svc_ports}}
        )  # fmt: skip
        pods = [
            (f"{name}--{n}", backends.whoami(f"{name}--{n}", namespace)) for n in range(replicas.get(name, 1))
        ]
        for i, (pod, port) in enumerate(pods):
            if variant == "v1":
                objects.append(
                    {
                        "apiVersion": "discovery.k8s.io/v1",
                        "kind": "EndpointSlice",
                        "metadata": {"name": f"{name}-{i}", "namespace": namespace,
                                     "labels": {"kubernetes.io/service-name": name}},
                        "addressType": "IPv4",
                        "ports": [{"name": sp["name"], "port": port} for sp in svc_ports],
                        "endpoints": [{"addresses": ["127.0.0.1"], "targetRef": {"kind": "Pod", "name": pod}}],
                    }
                )  # fmt: skip
        if variant != "v1":
            objects.append(
                {
                    "apiVersion": "v1",
                    "kind": "Endpoints",
                    "metadata": {"name": name, "namespace": namespace},
                    "subsets": [
                        {
                            "addresses": [{"ip": "127.0.0.1"}],
                            "ports": [{"name": sp["name"], "port": port} for sp in svc_ports],
                        }
                        for _, port in pods
                    ],
                }
            )
    return objects


def _request(client: httpx.Client, router: Router, when: dict[str, Any]) -> httpx.Response:
    if "url" in when:
        url = httpx.URL(when["url"])
        host, target = url.netloc.decode(), url.raw_path.decode() or "/"
    else:
        host, target = when["host"], "/" + when["path"]
    return client.request(
        when["method"], f"{router.base}{target}", headers={"Host": host, "User-Agent": "Go-http-client/1.1"}
    )


def _check(client: httpx.Client, router: Router, scenario: dict[str, Any], namespace: str) -> None:
    when, then = scenario["when"], scenario["then"]
    if "repeat" in when:
        pods = set()
        for _ in range(when["repeat"]):
            response = _request(client, router, when)
            assert response.status_code == then["all_status"]
            pods.add(echo(response)["pod"])
        assert len(pods) == then["distinct_pods"], sorted(pods)
        return
    response = _request(client, router, when)
    assert response.status_code == then["status"], response.text[:300]
    if "service" in then:
        answer = echo(response)
        assert answer["pod"].rsplit("--", 1)[0] == then["service"]
        assert answer["namespace"] == namespace
    if "request_method" in then:
        answer = echo(response)
        assert answer["method"] == then["request_method"]
        assert answer["path"].lstrip("/") == then["request_path"].lstrip("/")
        assert answer["proto"] == then["request_proto"]
        for name, value in (then.get("request_headers") or {}).items():
            assert answer["headers"].get(name) == [value]
    if "request_host" in then:
        assert echo(response)["host"] == then["request_host"]
    if "response_proto" in then:
        assert response.http_version == then["response_proto"]
    for name in then.get("response_headers") or {}:
        assert name in response.headers, f"{name} missing from {dict(response.headers)}"


@pytest.mark.parametrize(("run", "variant"), [(r, v) for _, r, v in RUNS], ids=[i for i, _, _ in RUNS])
def test_conformance(
    run: dict[str, Any], variant: str, backends: Backends, make_router: Callable[..., Router]
) -> None:
    namespace = f"conformance-{run['id']}".replace("_", "-").lower()[:60]
    router = make_router(_objects(run, variant, namespace, backends))
    failures = []
    ran = 0
    with httpx.Client(timeout=10) as client:
        for scenario in run["scenarios"]:
            if _left_out(scenario) or not set(scenario.get("requires") or ()) <= SUPPORTED_FEATURES:
                continue
            ran += 1
            try:
                _check(client, router, scenario, namespace)
            except AssertionError as e:
                failures.append(f"{scenario['name']}: {e}")
    assert ran > 0
    assert not failures, "\n".join(failures) + "\n" + router.log()[-3000:]
