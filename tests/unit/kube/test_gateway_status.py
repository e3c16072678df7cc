"""Gateway API status from a translation's outcomes: conditions, reasons, attached routes, and
only what differs is written (tests/integration/test_gateway.py has the writer against an API server)."""

from __future__ import annotations

import datetime
from typing import Any

from passerelle.kube.gateway import CONTROLLER_NAME, GatewayOptions
from passerelle.kube.gateway_status import status_patches
from passerelle.kube.placement import EntryPointInfo
from passerelle.kube.snapshot import ClusterSnapshot

GW = "gateway.networking.k8s.io/v1"
NOW = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.UTC)
EPS = (EntryPointInfo(name="web", port=80),)


def route(name: str, parent: dict[str, Any], backend: str = "app") -> dict[str, Any]:
    return {"apiVersion": GW, "kind": "HTTPRoute", "metadata": {"name": name, "namespace": "infra", "generation": 3},
            "spec": {"parentRefs": [parent], "rules": [{"backendRefs": [{"name": backend, "port": 80}]}]}}  # fmt: skip


def scene(*extra: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"apiVersion": GW, "kind": "GatewayClass", "metadata": {"name": "p"}, "spec": {"controllerName": CONTROLLER_NAME}},
        {"apiVersion": GW, "kind": "Gateway", "metadata": {"name": "gw", "namespace": "infra", "generation": 2},
         "spec": {"gatewayClassName": "p", "listeners": [
             {"name": "http", "port": 80, "protocol": "HTTP"},
             {"name": "tcp", "port": 80, "protocol": "TCP"},
             {"name": "far", "port": 81, "protocol": "HTTP"}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "app", "namespace": "infra"},
         "spec": {"ports": [{"port": 80}]}},
        *extra,
    ]  # fmt: skip


def conditions(entry: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in entry["conditions"]}


def test_gateway_and_route_conditions() -> None:
    objects = scene(
        route("ok", {"name": "gw", "sectionName": "http"}),
        route("missing-backend", {"name": "gw"}, backend="nope"),
        route("no-section", {"name": "gw", "sectionName": "nope"}),
        route("not-ours", {"name": "someone-elses"}),
    )
    patches = dict(status_patches(ClusterSnapshot.of(objects), GatewayOptions(), EPS, NOW))
    gateway = patches["/apis/gateway.networking.k8s.io/v1/namespaces/infra/gateways/gw/status"]["status"]
    assert conditions(gateway) == {"Accepted": ("True", "Accepted"), "Programmed": ("True", "Programmed")}
    listeners = {entry["name"]: entry for entry in gateway["listeners"]}
    assert conditions(listeners["http"]) == {
        "Accepted": ("True", "Accepted"), "Programmed": ("True", "Programmed"), "ResolvedRefs": ("True", "ResolvedRefs"),
    }  # fmt: skip
    assert listeners["http"]["attachedRoutes"] == 2
    assert conditions(listeners["tcp"])["Accepted"] == ("False", "UnsupportedProtocol")
    assert conditions(listeners["far"])["Programmed"] == ("False", "Invalid")
    assert all(c["observedGeneration"] == 2 and c["lastTransitionTime"] == "2026-12-01T12:00:00Z"
               for c in gateway["conditions"])  # fmt: skip

    def parents(name: str) -> list[dict[str, Any]]:
        return patches[f"/apis/gateway.networking.k8s.io/v1/namespaces/infra/httproutes/{name}/status"][
            "status"
        ]["parents"]

    [ok] = parents("ok")
    assert ok["parentRef"] == {"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": "infra",
                               "name": "gw", "sectionName": "http"}  # fmt: skip
    assert ok["controllerName"] == CONTROLLER_NAME
    assert conditions(ok) == {"Accepted": ("True", "Accepted"), "ResolvedRefs": ("True", "ResolvedRefs")}
    assert conditions(parents("missing-backend")[0])["ResolvedRefs"] == ("False", "BackendNotFound")
    assert conditions(parents("no-section")[0])["Accepted"] == ("False", "NoMatchingParent")
    assert not any(path.endswith("/not-ours/status") for path in patches)


def test_only_what_differs_is_written_and_others_entries_are_kept() -> None:
    objects = scene(route("ok", {"name": "gw", "sectionName": "http"}))
    first = dict(status_patches(ClusterSnapshot.of(objects), GatewayOptions(), EPS, NOW))
    other = {"parentRef": {"name": "x"}, "controllerName": "example.com/other", "conditions": []}
    for obj in objects:
        if obj["kind"] == "Gateway":
            obj["status"] = first["/apis/gateway.networking.k8s.io/v1/namespaces/infra/gateways/gw/status"][
                "status"
            ]
        if obj["kind"] == "HTTPRoute":
            written = first["/apis/gateway.networking.k8s.io/v1/namespaces/infra/httproutes/ok/status"][
                "status"
            ]
            obj["status"] = {"parents": [other, *written["parents"]]}
    later = NOW + datetime.timedelta(hours=1)
    assert status_patches(ClusterSnapshot.of(objects), GatewayOptions(), EPS, later) == []
    objects[-1]["metadata"]["generation"] = (
        4  # the route changed: new observedGeneration, same transition time
    )
    [(path, body)] = status_patches(ClusterSnapshot.of(objects), GatewayOptions(), EPS, later)
    assert path.endswith("/httproutes/ok/status")
    assert body["status"]["parents"][0] == other
    assert {c["observedGeneration"] for c in body["status"]["parents"][1]["conditions"]} == {4}
    assert {c["lastTransitionTime"] for c in body["status"]["parents"][1]["conditions"]} == {
        "2026-12-01T12:00:00Z"
    }
