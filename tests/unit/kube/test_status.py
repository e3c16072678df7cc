"""Which addresses Ingress status publishes, table-driven over nodes and pods."""

from __future__ import annotations

from typing import Any

import pytest

from passerelle.kube.selector import parse_selector
from passerelle.kube.snapshot import ClusterSnapshot
from passerelle.kube.status import (
    EndpointPolicy,
    load_balancer,
    node_addresses,
    status_updates,
)
from passerelle.settings.kubernetes import IngressEndpoint


def node(
    name: str,
    *,
    ready: bool = True,
    role: str = "ingress",
    unschedulable: bool = False,
    external: str = "",
    excluded: bool = False,
) -> dict[str, Any]:
    addresses = [{"type": "InternalIP", "address": f"10.0.0.{name[-1]}"}] + (
        [{"type": "ExternalIP", "address": external}] if external else []
    )
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {"role": role}
            | ({"node.kubernetes.io/exclude-from-external-load-balancers": ""} if excluded else {}),
        },
        "spec": {"unschedulable": unschedulable},
        "status": {
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "addresses": addresses,
        },
    }


def pod(
    on: str,
    *,
    ready: bool = True,
    app: str = "passerelle",
    deleting: bool = False,
    phase: str = "Running",
    draining: bool = False,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": f"p-{on}",
        "namespace": "ingress",
        "labels": {"app.kubernetes.io/name": app},
        "annotations": {"passerelle.io/draining": "true"} if draining else {},
    }
    if deleting:
        meta["deletionTimestamp"] = "2026-12-01T00:00:00Z"
    return {
        "metadata": meta,
        "spec": {"nodeName": on},
        "status": {"phase": phase, "conditions": [{"type": "Ready", "status": str(ready)}]},
    }


@pytest.mark.parametrize(
    ("nodes", "pods", "expected"),
    [
        ([node("n1"), node("n2")], [pod("n1"), pod("n2")], ["10.0.0.1", "10.0.0.2"]),
        ([node("n1"), node("n2", ready=False)], [pod("n1"), pod("n2")], ["10.0.0.1"]),  # node not Ready
        ([node("n1"), node("n2", unschedulable=True)], [pod("n1"), pod("n2")], ["10.0.0.1"]),  # cordoned
        (
            [node("n1"), node("n2", role="worker")],
            [pod("n1"), pod("n2")],
            ["10.0.0.1"],
        ),  # not an ingress node
        ([node("n1"), node("n2")], [pod("n1"), pod("n2", ready=False)], ["10.0.0.1"]),  # router not ready
        ([node("n1"), node("n2")], [pod("n1"), pod("n2", deleting=True)], ["10.0.0.1"]),  # router stopping
        ([node("n1"), node("n2")], [pod("n1"), pod("n2", app="other")], ["10.0.0.1"]),  # someone else's pod
        ([node("n1"), node("n2")], [pod("n1"), pod("n2", phase="Pending")], ["10.0.0.1"]),  # not Running
        ([node("n1"), node("n2")], [pod("n1"), pod("n2", draining=True)], ["10.0.0.1"]),  # draining
        ([node("n1"), node("n2", excluded=True)], [pod("n1"), pod("n2")], ["10.0.0.1"]),  # labelled out
        ([node("n1", external="192.0.2.1")], [pod("n1")], ["192.0.2.1"]),  # ExternalIP first
        ([node("n1")], [], []),
    ],
)
def test_node_addresses(nodes: list[dict[str, Any]], pods: list[dict[str, Any]], expected: list[str]) -> None:
    assert node_addresses(nodes, pods, EndpointPolicy()) == [{"ip": ip} for ip in expected]


def test_configured_addresses_and_published_service_win_over_nodes() -> None:
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "lb", "namespace": "ingress"},
        "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.9", "ipMode": "VIP"}]}},
    }
    snapshot = ClusterSnapshot.of([node("n1"), service])
    assert load_balancer(snapshot, [pod("n1")], EndpointPolicy()) == [{"ip": "10.0.0.1"}]
    assert load_balancer(
        snapshot, [pod("n1")], EndpointPolicy(ips=("198.51.100.1",), hostname="vip.example")
    ) == [{"ip": "198.51.100.1"}, {"hostname": "vip.example"}]
    assert load_balancer(snapshot, [], EndpointPolicy(published_service="ingress/lb")) == [
        {"ip": "203.0.113.9"}
    ]
    assert load_balancer(snapshot, [], EndpointPolicy(published_service="ingress/missing")) == []


def test_only_ingresses_whose_status_differs_are_written() -> None:
    same = {
        "metadata": {"name": "same", "namespace": "a"},
        "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}},
    }
    stale = {
        "metadata": {"name": "stale", "namespace": "a"},
        "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.9"}]}},
    }
    empty = {"metadata": {"name": "empty"}}
    assert status_updates([same, stale, empty], [{"ip": "10.0.0.1"}]) == [
        ("a", "stale"),
        ("default", "empty"),
    ]


def test_selectors_are_kubectl_label_selectors() -> None:
    nodes = [node("n1"), node("n2", role="edge"), node("n3", role="worker")]
    policy = EndpointPolicy(node_selector=parse_selector("role in (ingress,edge)"))
    assert node_addresses(nodes, [pod(n) for n in ("n1", "n2", "n3")], policy) == [
        {"ip": "10.0.0.1"},
        {"ip": "10.0.0.2"},
    ]


@pytest.mark.parametrize("text", ["=x", "role in x", "a b"])
def test_a_selector_that_is_not_one_is_refused_at_load(text: str) -> None:
    with pytest.raises(ValueError):
        IngressEndpoint(nodeSelector=text)
