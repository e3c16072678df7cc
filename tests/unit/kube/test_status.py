"""Which addresses Ingress status publishes, table-driven over nodes and pods."""

from __future__ import annotations

from typing import Any

import pytest

from passerelle.kube.snapshot import ClusterSnapshot
from passerelle.kube.status import (
    EndpointPolicy,
    load_balancer,
    node_addresses,
    parse_selector,
    status_updates,
)


def node(
    name: str, *, ready: bool = True, role: str = "ingress", unschedulable: bool = False, external: str = ""
) -> dict[str, Any]:
    addresses = [{"type": "InternalIP", "address": f"10.0.0.{name[-1]}"}] + (
        [{"type": "ExternalIP", "address": external}] if external else []
    )
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"role": role}},
        "spec": {"unschedulable": unschedulable},
        "status": {
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "addresses": addresses,
        },
    }


def pod(on: str, *, ready: bool = True, app: str = "passerelle", deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": f"p-{on}",
        "namespace": "ingress",
        "labels": {"app.kubernetes.io/name": app},
    }
    if deleting:
        meta["deletionTimestamp"] = "2026-12-01T00:00:00Z"
    return {
        "metadata": meta,
        "spec": {"nodeName": on},
        "status": {"conditions": [{"type": "Ready", "status": str(ready)}]},
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


@pytest.mark.parametrize(
    ("text", "expected"),
    [("role=ingress", {"role": "ingress"}), ("a=1, b=2", {"a": "1", "b": "2"}), ("", {})],
)
def test_parse_selector(text: str, expected: dict[str, str]) -> None:
    assert parse_selector(text) == expected


@pytest.mark.parametrize("text", ["role", "role!=x", "a==b", "=x"])
def test_parse_selector_refuses_what_it_cannot_match(text: str) -> None:
    with pytest.raises(ValueError):
        parse_selector(text)


def _class(name: str, controller: str, default: bool = False) -> dict[str, Any]:
    annotations = {"ingressclass.kubernetes.io/is-default-class": "true"} if default else {}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"controller": controller},
    }


def _ingress(name: str, class_name: str | None = None, annotation: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "default"}
    if annotation:
        meta["annotations"] = {"kubernetes.io/ingress.class": annotation}
    spec = {"ingressClassName": class_name} if class_name else {}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta, "spec": spec}


OURS, TRAEFIK = "passerelle.io/ingress-controller", "traefik.io/ingress-controller"
INGRESSES = [
    _ingress("mine", "passerelle"),
    _ingress("legacy", annotation="passerelle"),
    _ingress("traefik", "traefik"),
    _ingress("none"),
]


@pytest.mark.parametrize(
    ("classes", "without_class", "owned"),
    [
        # only an IngressClass with passerelle's controller makes a class ours for status
        ([], True, ["none"]),
        ([_class("passerelle", OURS)], True, ["legacy", "mine", "none"]),
        # "traefik" is served (ingressClasses) but its status is Traefik's to write
        ([_class("passerelle", OURS), _class("traefik", TRAEFIK)], True, ["legacy", "mine", "none"]),
        ([_class("passerelle", OURS), _class("traefik", OURS)], True, ["legacy", "mine", "none", "traefik"]),
        # class-less: not when another controller's class is the default, unless ours is too
        ([_class("passerelle", OURS), _class("traefik", TRAEFIK, default=True)], True, ["legacy", "mine"]),
        ([_class("passerelle", OURS, default=True), _class("traefik", TRAEFIK, default=True)], False, ["legacy", "mine", "none"]),
        ([_class("passerelle", OURS)], False, ["legacy", "mine"]),
    ],
)  # fmt: skip
def test_status_is_written_only_on_ingresses_of_passerelles_classes(
    classes: list[dict[str, Any]], without_class: bool, owned: list[str]
) -> None:
    from passerelle.kube.ingress import IngressOptions, status_owned

    snapshot = ClusterSnapshot.of([*classes, *INGRESSES])
    options = IngressOptions(ingress_without_class=without_class)
    assert sorted(o["metadata"]["name"] for o in status_owned(snapshot, options)) == owned
