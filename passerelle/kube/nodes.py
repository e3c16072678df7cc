"""Reading Node and Pod objects into the few fields DNS sync decides on, with shape checks.

Only what `dnssync/desired.py` needs is kept: a Node's labels, Ready condition, `spec.unschedulable`
(set by `kubectl cordon`) and `status.addresses`; a Pod's labels, annotations, node, phase, Ready
condition and whether it is being deleted. A malformed object raises InvalidObject, so that the
manifests provider keeps its last valid version (a typo must not drop a node from DNS).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from passerelle.kube.objects import InvalidObject
from passerelle.kube.snapshot import Object, key_of

ADDRESS_TYPES = frozenset({"InternalIP", "ExternalIP", "Hostname", "InternalDNS", "ExternalDNS"})
DRAINING = "passerelle.io/draining"  # "true" on a passerelle Pod: its node stops getting traffic
EXCLUDE_FROM_LB = "node.kubernetes.io/exclude-from-external-load-balancers"


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeInfo:
    name: str
    labels: Mapping[str, str]
    ready: bool  # status.conditions[type=Ready].status == "True"
    unschedulable: bool  # spec.unschedulable: cordoned
    addresses: tuple[tuple[str, str], ...]  # (type, address) in status order


@dataclass(frozen=True, slots=True, kw_only=True)
class PodInfo:
    namespace: str
    name: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    node_name: str  # spec.nodeName; "" while unscheduled
    running: bool  # status.phase == "Running"
    ready: bool  # status.conditions[type=Ready].status == "True"
    deleting: bool  # metadata.deletionTimestamp is set: terminating


def read_node(obj: Object) -> NodeInfo:
    """Normalize a Node; raises InvalidObject listing every shape error found."""
    _, _, name = key_of(obj)
    errors: list[str] = []
    meta, spec, status = _sections(obj, errors)
    labels = _strings(meta.get("labels"), "metadata.labels", errors)
    addresses = []
    raw_addresses = status.get("addresses") or []
    if not isinstance(raw_addresses, list):
        errors.append("status.addresses: must be a list")
        raw_addresses = []
    for i, raw in enumerate(raw_addresses):
        where = f"status.addresses[{i}]"
        if not isinstance(raw, Mapping):
            errors.append(f"{where}: must be an object")
            continue
        kind, address = raw.get("type"), raw.get("address")
        if kind not in ADDRESS_TYPES:
            errors.append(f"{where}.type: {kind!r} is not one of {', '.join(sorted(ADDRESS_TYPES))}")
            continue
        if not isinstance(address, str) or not address:
            errors.append(f"{where}.address: required")
            continue
        if kind in ("InternalIP", "ExternalIP"):
            try:
                address = ipaddress.ip_address(address).compressed
            except ValueError:
                errors.append(f"{where}.address: {address!r} is not an IP address")
                continue
        addresses.append((str(kind), address))
    ready = _condition(status, "Ready", errors)
    if errors:
        raise InvalidObject(errors)
    return NodeInfo(
        name=name,
        labels=labels,
        ready=ready,
        unschedulable=spec.get("unschedulable") is True,
        addresses=tuple(addresses),
    )


def read_pod(obj: Object) -> PodInfo:
    """Normalize a Pod; raises InvalidObject listing every shape error found."""
    _, namespace, name = key_of(obj)
    errors: list[str] = []
    meta, spec, status = _sections(obj, errors)
    labels = _strings(meta.get("labels"), "metadata.labels", errors)
    annotations = _strings(meta.get("annotations"), "metadata.annotations", errors)
    node_name = spec.get("nodeName") or ""
    if not isinstance(node_name, str):
        errors.append("spec.nodeName: must be a string")
    ready = _condition(status, "Ready", errors)
    if errors:
        raise InvalidObject(errors)
    return PodInfo(
        namespace=namespace,
        name=name,
        labels=labels,
        annotations=annotations,
        node_name=str(node_name),
        running=status.get("phase") == "Running",
        ready=ready,
        deleting=bool(meta.get("deletionTimestamp")),
    )


def node_out_of_service(node: NodeInfo) -> str:
    """Why a node must not get traffic, from the Node alone ("" when it may): NotReady, cordoned,
    or labelled out of load balancers. One rule for DNS sync and Ingress status alike."""
    if not node.ready:
        return "NotReady"
    if node.unschedulable:
        return "cordoned (spec.unschedulable)"
    if EXCLUDE_FROM_LB in node.labels:
        return f"labelled {EXCLUDE_FROM_LB}"
    return ""


def pods_out_of_service(pods: Iterable[PodInfo], selector: object) -> str:
    """Why a node's passerelle pods (those `selector`, shown in the reason, picked) serve nothing
    ("" when one does): none Running, Ready and not terminating, or every such one draining."""
    ready = [p for p in pods if p.running and p.ready and not p.deleting]
    if not ready:
        return f"no ready passerelle pod ({selector})"
    if all(p.annotations.get(DRAINING, "").lower() == "true" for p in ready):
        return f"its passerelle pod is draining ({DRAINING})"
    return ""


def _sections(
    obj: Object, errors: list[str]
) -> tuple[Mapping[str, Any], Mapping[str, Any], Mapping[str, Any]]:
    out: list[Mapping[str, Any]] = []
    for section in ("metadata", "spec", "status"):
        value = obj.get(section) or {}
        if not isinstance(value, Mapping):
            errors.append(f"{section}: must be an object")
            value = {}
        out.append(value)
    return out[0], out[1], out[2]


def _strings(raw: Any, where: str, errors: list[str]) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        errors.append(f"{where}: must be a map of strings")
        return {}
    return {str(k): str(v) for k, v in raw.items()}


def _condition(status: Mapping[str, Any], kind: str, errors: list[str]) -> bool:
    conditions = status.get("conditions") or []
    if not isinstance(conditions, list):
        errors.append("status.conditions: must be a list")
        return False
    for condition in conditions:
        if isinstance(condition, Mapping) and condition.get("type") == kind:
            return condition.get("status") == "True"
    return False
