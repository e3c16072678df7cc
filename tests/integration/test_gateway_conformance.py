"""The upstream Gateway API conformance scenarios (HTTPRoute), run against a real passerelle process.

Data: `conformance/gateway-api/` (a copy of the shared set; see each file's header). Each upstream
test is one passerelle process with the base objects and the test's manifests. Deployments become
echo pods on loopback (`<deployment>-<n>`, one port each) behind EndpointSlices for the Services
that select them. Every Gateway listener port gets an entry point of its own per Gateway, on a
free port, placed with `gateway.listeners` (as upstream gives each Gateway its own address).
`conformance/gateway-api-gaps.yaml` lists what does not pass yet, with the reason: tests not run
at all, and cases that run and must fail. The test asserts exactly those fail, so a fix shows up.
"""

from __future__ import annotations

import copy
import json
import ssl
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import trustme
import yaml

from passerelle.kube.gateway import CONTROLLER_NAME
from tests.integration.harness import Backends, Router, echo, free_port

DATA = Path(__file__).parent / "conformance" / "gateway-api"
GAPS = yaml.safe_load((Path(__file__).parent / "conformance" / "gateway-api-gaps.yaml").read_text())
INFRA = "gateway-conformance-infra"
FEATURES = {"ReferenceGrant", "TLS"}  # harness features passerelle has (the `requires` of a test or case)
UPSTREAM = yaml.safe_load((DATA / "upstream-objects.yaml").read_text())
CA = trustme.CA()


def _tests() -> list[dict[str, Any]]:
    out = []
    for path in sorted((DATA / "tests").glob("*.yaml")):
        for test in yaml.safe_load(path.read_text())["tests"]:
            out.append(test | {"file": path.name})
    return out


TESTS = _tests()
RUN = [t for t in TESTS if t["name"] not in GAPS["not_run"]]


def test_every_scenario_is_run_or_listed() -> None:
    """Guards the runner: a test is run, or listed as not run with a reason; the lists name real tests."""
    names = {t["name"] for t in TESTS}
    assert set(GAPS["not_run"]) <= names
    assert set(GAPS["failing"]) <= names
    assert not set(GAPS["not_run"]) & set(GAPS["failing"])
    assert all(GAPS["not_run"][n] for n in GAPS["not_run"]) and all(
        g["reason"] for g in GAPS["failing"].values()
    )
    assert len(RUN) >= 35
    assert sum(len(t.get("status_checks") or ()) for t in TESTS) == GAPS["status_checks"]["count"]


def _class() -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "GatewayClass",
        "metadata": {"name": "passerelle"},
        "spec": {"controllerName": CONTROLLER_NAME},
    }


class Scene:
    """The objects of one test, with echo pods for its Deployments and entry points for its Gateways."""

    def __init__(self, test: dict[str, Any], backends: Backends) -> None:
        raw = yaml.safe_dump_all(
            UPSTREAM["base"] + [o for m in test["manifests"] for o in UPSTREAM["manifests"][m]]
        )
        objects = [o for o in yaml.safe_load_all(raw.replace("{GATEWAY_CLASS_NAME}", "passerelle")) if o]
        self.pods: dict[tuple[str, str], list[tuple[str, int]]] = {}  # (namespace, app label) -> pods
        kept = [_class()]
        for obj in objects:
            if obj["kind"] == "Deployment":
                ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
                app = obj["spec"]["selector"]["matchLabels"]["app"]
                replicas = obj["spec"].get("replicas", 1)
                pods = [(f"{name}-{n}", backends.whoami(f"{name}-{n}", ns)) for n in range(replicas)]
                self.pods[(ns, app)] = pods
            else:
                kept.append(obj)
        patched = {p["slice"]: p["pods_of"] for p in test.get("patch_endpointslices") or []}
        self.objects = []
        for obj in kept:
            if obj["kind"] == "EndpointSlice" and obj["metadata"]["name"] in patched:
                ns = obj["metadata"]["namespace"]
                self.objects += _slices(obj, self.pods[(ns, patched[obj["metadata"]["name"]])])
                continue
            self.objects.append(obj)
            if obj["kind"] == "Service" and (obj["spec"].get("selector") or {}).get("app"):
                ns = obj["metadata"]["namespace"]
                pods = self.pods.get((ns, obj["spec"]["selector"]["app"]), [])
                template = {
                    "apiVersion": "discovery.k8s.io/v1",
                    "kind": "EndpointSlice",
                    "metadata": {"name": obj["metadata"]["name"], "namespace": ns,
                                 "labels": {"kubernetes.io/service-name": obj["metadata"]["name"]}},
                    "addressType": "IPv4",
                    "ports": [{"name": p.get("name", "")} for p in obj["spec"]["ports"]],
                }  # fmt: skip
                self.objects += _slices(template, pods)
        # (namespace, gateway, listener port) -> (entry point, its port)
        self.entrypoints: dict[tuple[str, str, int], tuple[str, int]] = {}
        self.tls: set[str] = set()  # the entry points of HTTPS listeners
        secrets: set[tuple[str, str]] = set()
        for obj in self.objects:
            if obj["kind"] != "Gateway":
                continue
            ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
            for listener in obj["spec"]["listeners"]:
                key = (ns, name, listener["port"])
                if listener["protocol"] in ("HTTP", "HTTPS") and key not in self.entrypoints:
                    self.entrypoints[key] = (f"g{len(self.entrypoints)}", free_port())
                    if listener["protocol"] == "HTTPS":
                        self.tls.add(self.entrypoints[key][0])
                for ref in (listener.get("tls") or {}).get("certificateRefs") or []:
                    secrets.add((ref.get("namespace") or ns, ref["name"]))
        self.objects += [_secret(ns, name) for ns, name in sorted(secrets)]  # upstream makes them too

    def config(self) -> dict[str, Any]:
        return {
            "entryPoints": {
                name: {"address": f"127.0.0.1:{port}"} | ({"tls": {}} if name in self.tls else {})
                for name, port in self.entrypoints.values()
            },
            "gateway": {
                "listeners": [
                    {"port": port, "entryPoint": ep, "gateway": f"{ns}/{gw}"}
                    for (ns, gw, port), (ep, _) in self.entrypoints.items()
                ]
            },
        }


def _secret(namespace: str, name: str) -> dict[str, Any]:
    """A kubernetes.io/tls Secret for the names the HTTPS scenarios ask for."""
    cert = CA.issue_cert("example.org", "second-example.org", "*.wildcard.org", "unknown-example.org")
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {"name": name, "namespace": namespace},
        "stringData": {
            "tls.crt": cert.cert_chain_pems[0].bytes().decode(),
            "tls.key": cert.private_key_pem.bytes().decode(),
        },
    }


def _slices(template: dict[str, Any], pods: list[tuple[str, int]]) -> list[dict[str, Any]]:
    """One slice per pod (a slice has one port number for all its endpoints)."""
    out = []
    for i, (pod, port) in enumerate(pods):
        eps = copy.deepcopy(template)
        eps["metadata"]["name"] = f"{template['metadata']['name']}-{i}"
        eps["addressType"] = "IPv4"
        eps["ports"] = [{"name": p.get("name", ""), "port": port} for p in template.get("ports") or [{}]]
        eps["endpoints"] = [{"addresses": ["127.0.0.1"], "targetRef": {"kind": "Pod", "name": pod}}]
        out.append(eps)
    return out


def _send(
    client: httpx.Client, port: int, request: dict[str, Any], extra: dict[str, str] | None = None
) -> httpx.Response:
    headers = {
        "Host": request.get("host") or f"127.0.0.1:{port}",
        **(request.get("headers") or {}),
        **(extra or {}),
    }
    scheme = request.get("scheme", "http")
    url = f"{scheme}://127.0.0.1:{port}{request.get('path', '/')}"
    sni = (
        {"sni_hostname": request["host"].partition(":")[0]}
        if scheme == "https" and request.get("host")
        else {}
    )
    return client.request(request.get("method", "GET"), url, headers=headers, extensions=sni)


def _check(client: httpx.Client, scene: Scene, test: dict[str, Any], case: dict[str, Any]) -> None:
    target = case.get("target") or {}
    default = 443 if (case.get("request") or {}).get("scheme") == "https" else 80
    key = (
        target.get("namespace", INFRA),
        target.get("gateway", test["gateway"]),
        target.get("port", default),
    )
    assert key in scene.entrypoints, f"no entry point for {key}"
    port = scene.entrypoints[key][1]
    request = case.get("request") or {}
    response_spec = case.get("response") or {}
    if case.get("kind") == "weights":
        _check_weights(client, port, request, case)
        return
    if case.get("kind") == "backend-header-weights":
        for _ in range(case["total_requests"]):
            answer = echo(_send(client, port, request))
            told = [v for k, v in answer["headers"].items() if k.lower() == "backend"]
            assert told == [[answer["pod"].rsplit("-", 1)[0]]], f"{answer['pod']} got Backend: {told}"
        return
    extra = {}
    if case.get("backend_set_response_headers"):
        extra["X-Echo-Set-Header"] = ",".join(
            f"{k}:{v}" for k, v in case["backend_set_response_headers"].items()
        )
    response = _send(client, port, request, extra)
    wanted = response_spec.get("status", 200)
    assert response.status_code in (wanted if isinstance(wanted, list) else [wanted]), (
        f"status {response.status_code}, want {wanted}: {response.text[:200]}"
    )
    for name, value in (response_spec.get("headers") or {}).items():
        assert ",".join(response.headers.get_list(name)) == value, (
            f"response {name}: {response.headers.get_list(name)}"
        )
    for name in response_spec.get("absent_headers") or []:
        assert name not in response.headers, f"response has {name}"
    if "redirect" in case:
        _check_redirect(response, request, case["redirect"], port)
    if response.status_code in (200, 204) and "backend" in case:
        answer = echo(response)
        assert answer["pod"].startswith(case["backend"]), f"answered by {answer['pod']}"
        assert answer["namespace"] == case.get("namespace", INFRA)
        seen = case.get("expected_request") or {
            k: v for k, v in request.items() if k in ("path", "host", "headers", "method")
        }
        got_path = answer["path"] + (f"?{answer['query']}" if answer["query"] else "")
        if "path" in seen:
            assert got_path == seen["path"], f"backend saw path {got_path}"
        if "host" in seen:
            assert answer["host"] == seen["host"], f"backend saw host {answer['host']}"
        if "method" in seen:
            assert answer["method"] == seen["method"]
        fields: dict[str, list[str]] = {}
        for name, values in answer["headers"].items():
            fields.setdefault(name.lower(), []).extend(values)
        for name, value in (seen.get("headers") or {}).items():
            assert ",".join(fields.get(name.lower(), [])) == value, (
                f"backend saw {name}: {fields.get(name.lower())}"
            )
        for name in seen.get("absent_headers") or []:
            assert name.lower() not in fields, f"backend saw {name}"


def _check_redirect(
    response: httpx.Response, request: dict[str, Any], want: dict[str, Any], port: int
) -> None:
    location = urlsplit(response.headers.get("location", ""))
    scheme = want.get("scheme", "http")
    assert location.scheme == scheme, f"Location {response.headers.get('location')}"
    host = want.get("host") or (request.get("host") or "127.0.0.1").partition(":")[0]
    assert location.hostname == host, f"Location {response.headers.get('location')}"
    expected_port = str(want["port"]).replace("{listener_port}", str(port)) if "port" in want else None
    got_port = str(location.port) if location.port is not None else None
    if expected_port is None:
        assert got_port in (None, "80" if scheme == "http" else "443"), (
            f"Location {response.headers.get('location')}"
        )
    else:
        default = "80" if scheme == "http" else "443"
        assert got_port == expected_port or (got_port is None and expected_port == default), (
            f"Location {response.headers.get('location')}, want port {expected_port}"
        )
    if "path" in want:
        assert location.path == want["path"], f"Location {response.headers.get('location')}"


def _check_weights(client: httpx.Client, port: int, request: dict[str, Any], case: dict[str, Any]) -> None:
    total = case["total_requests"]
    counts: Counter[str] = Counter()
    for _ in range(total):
        response = _send(client, port, request)
        assert response.status_code == 200, response.text[:200]
        counts[echo(response)["pod"].rsplit("-", 1)[0]] += 1
    for backend, share in case["weights"].items():
        got = counts[backend] / total
        assert abs(got - share) <= case["tolerance"], (
            f"{backend}: {got:.2f} of requests, want {share}: {dict(counts)}"
        )


def _cases(test: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for i, case in enumerate(test.get("cases") or []):
        yield f"{i}: {case.get('name') or case.get('request')}", case


@pytest.mark.parametrize("test", RUN, ids=[t["name"] for t in RUN])
def test_gateway_conformance(
    test: dict[str, Any], backends: Backends, make_router: Callable[..., Router]
) -> None:
    if not set(test.get("requires") or ()) <= FEATURES:
        pytest.fail(
            f"{test['name']} requires {test['requires']}: list it under not_run in gateway-api-gaps.yaml"
        )
    scene = Scene(test, backends)
    router = make_router(scene.objects, config=scene.config())
    gap = GAPS["failing"].get(test["name"], {})
    failed: dict[int, str] = {}
    ran = 0
    trust = ssl.create_default_context()
    CA.configure_trust(trust)  # HTTPS listeners must serve the Secrets their certificateRefs name
    with httpx.Client(timeout=10, verify=trust) as client:
        for i, (label, case) in enumerate(_cases(test)):
            if not set(case.get("requires") or ()) <= FEATURES:
                continue
            for step in case.get("before") or []:
                gone = step["delete"]
                scene.objects = [
                    o for o in scene.objects
                    if (o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])
                    != (gone["kind"], gone["namespace"], gone["name"])
                ]  # fmt: skip
                version = router.version()
                router.write("objects.yaml", scene.objects)
                router.wait_version(version)
            ran += 1
            try:
                _check(client, scene, test, case)
            except AssertionError as e:
                failed[i] = f"{label}: {e}"
    assert ran > 0 or not test.get("cases")
    expected = set(gap.get("cases", []))
    unexpected = {i: why for i, why in failed.items() if i not in expected}
    fixed = expected - set(failed)
    problems = json.dumps(router.problems(), indent=1)[:3000]
    assert not unexpected, "\n".join(unexpected.values()) + f"\nproblems: {problems}\n" + router.log()[-2000:]
    assert not fixed, f"cases {sorted(fixed)} pass now: take them out of gateway-api-gaps.yaml"
