"""What DNS should hold (pure): the options, the eligible nodes, the managed names and their claimants.

Desired state: each host of a served router (its `source` names the Ingress, or any other kind
that produced it) inside a managed zone gets A/AAAA records with the addresses of the eligible
nodes (or the fixed `targets`), and an ownership TXT (records.py). A node is eligible when it
matches the node selector, is Ready, not cordoned, not excluded from load balancers, not draining,
has an address of the configured type and, unless pods are not required, runs a ready passerelle
pod; one eligible again only recently may be held out a while (`settling`). A host counts in its
most specific managed zone (`zone_of`). plan.py compares this with what the zones hold.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from passerelle.dnssync.records import in_zone
from passerelle.kube.nodes import (
    NodeInfo,
    PodInfo,
    node_out_of_service,
    pods_out_of_service,
    read_node,
    read_pod,
)
from passerelle.kube.objects import InvalidObject
from passerelle.kube.selector import Selector
from passerelle.kube.snapshot import ClusterSnapshot
from passerelle.model import DynamicConfig, ObjectRef

OPT_OUT = "passerelle.io/dns-sync"  # "false" on an Ingress: its hosts are not published


class Policy(StrEnum):
    SYNC = "sync"  # create, update and delete
    UPSERT_ONLY = "upsert-only"  # create and update; never delete a record set


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanOptions:
    zones: tuple[str, ...]
    owner: str
    ttl: int = 60
    policy: Policy = Policy.SYNC
    node_selector: Selector = Selector()
    address_type: str = "InternalIP"  # or "ExternalIP"; IPv4 -> A, IPv6 -> AAAA
    pod_selector: Selector | None = None  # None: a node needs no passerelle pod
    pod_namespace: str = ""  # "": pods of any namespace
    targets: tuple[str, ...] = ()  # fixed addresses (a VIP); empty: the eligible nodes'
    # octoDNS's "unsafe plan" guard: deleting more than this share of the owned names at once
    # (when there are at least plan.MIN_OWNED_FOR_GUARD) is withheld unless `force`; 100 disables it.
    max_delete_percent: int = 30
    force: bool = False  # let one reconcile delete past max_delete_percent (`dnssync --force`)

    @property
    def ref(self) -> ObjectRef:
        """Where problems of DNS sync itself (not of one object) are reported."""
        return ObjectRef(kind="DnsSync", name=self.owner)


@dataclass(frozen=True, slots=True, kw_only=True)
class HostClaim:
    host: str
    ref: ObjectRef  # the object whose router serves the host


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeVerdict:
    name: str
    addresses: tuple[str, ...]  # of the configured type
    excluded: str = ""  # why the node is not in DNS; "" when it is

    def __str__(self) -> str:
        return f"{self.name}: {self.excluded or 'in DNS'} ({', '.join(self.addresses) or 'no address'})"


@dataclass(frozen=True, slots=True, kw_only=True)
class Wanted:
    name: str
    zone: str
    addresses: tuple[str, ...]
    refs: tuple[ObjectRef, ...]  # every object claiming the host, oldest first


def host_claims(config: DynamicConfig, snapshot: ClusterSnapshot) -> list[HostClaim]:
    """Every (host, object) a served router has, in the configuration's order (oldest first),
    without the objects annotated `passerelle.io/dns-sync: "false"`."""
    out: list[HostClaim] = []
    seen: set[tuple[str, str]] = set()
    for router in config.routers:
        if router.host is None or (router.host, router.source) in seen:
            continue
        seen.add((router.host, router.source))
        kind, _, qualified = router.source.partition(" ")
        namespace, _, name = qualified.rpartition("/")
        obj = snapshot.get(kind, namespace, name)
        annotations = ((obj or {}).get("metadata") or {}).get("annotations") or {}
        if str(annotations.get(OPT_OUT, "")).lower() == "false":
            continue
        out.append(
            HostClaim(host=router.host.lower(), ref=ObjectRef(kind=kind, namespace=namespace, name=name))
        )
    return out


def node_verdicts(
    snapshot: ClusterSnapshot,
    options: PlanOptions,
    draining: frozenset[str] = frozenset(),
    held: frozenset[str] = frozenset(),
) -> tuple[NodeVerdict, ...]:
    """The nodes the selector picks, each with its addresses and why it is out of DNS, if it is."""
    pods: dict[str, list[PodInfo]] = {}
    if options.pod_selector is not None:
        for obj in snapshot.of_kind("Pod"):
            try:
                pod = read_pod(obj)
            except InvalidObject:
                continue
            if (not options.pod_namespace or pod.namespace == options.pod_namespace) and (
                options.pod_selector.matches(pod.labels)
            ):
                pods.setdefault(pod.node_name, []).append(pod)
    out = []
    for obj in snapshot.of_kind("Node"):
        try:
            node = read_node(obj)
        except InvalidObject as e:
            name = str((obj.get("metadata") or {}).get("name", ""))
            out.append(NodeVerdict(name=name, addresses=(), excluded=f"invalid: {e}"))
            continue
        if not options.node_selector.matches(node.labels):
            continue
        addresses = tuple(a for kind, a in node.addresses if kind == options.address_type)
        out.append(
            NodeVerdict(
                name=node.name,
                addresses=addresses,
                excluded=_excluded(node, addresses, pods, options, draining, held),
            )
        )
    return tuple(out)


def settling(
    verdicts: tuple[NodeVerdict, ...],
    since: Mapping[str, float],
    now: float,
    settle: float,
    published: frozenset[str],
) -> dict[str, float]:
    """The eligible nodes held out of DNS, each with the time its hold ends: those eligible for
    less than `settle` seconds (`since`: when each became eligible) whose addresses are not
    published yet. A node already in DNS is never held (a restarted controller keeps what is
    there), and leaving is never delayed (an ineligible node is not in `verdicts`' eligible)."""
    out = {}
    for verdict in verdicts:
        if verdict.excluded or published.intersection(verdict.addresses):
            continue
        until = since.get(verdict.name, now) + settle
        if until > now:
            out[verdict.name] = until
    return out


def _excluded(
    node: NodeInfo,
    addresses: tuple[str, ...],
    pods: Mapping[str, list[PodInfo]],
    options: PlanOptions,
    draining: frozenset[str],
    held: frozenset[str] = frozenset(),
) -> str:
    if why := node_out_of_service(node):
        return why
    if node.name in draining:
        return "draining"
    if options.pod_selector is not None and (
        why := pods_out_of_service(pods.get(node.name, ()), options.pod_selector)
    ):
        return why
    if not addresses:
        return f"no {options.address_type} address"
    if node.name in held:
        return "settling (eligible again only recently: dnsSync.settleTime)"
    return ""


def wanted(claims: list[HostClaim], addresses: tuple[str, ...], options: PlanOptions) -> tuple[Wanted, ...]:
    """The managed names: hosts inside a zone (the most specific zone), with their claimants."""
    refs: dict[str, list[ObjectRef]] = {}
    zones: dict[str, str] = {}
    for claim in claims:
        zone = zone_of(claim.host, options.zones)
        if zone is None:
            continue
        zones[claim.host] = zone
        if claim.ref not in refs.setdefault(claim.host, []):
            refs[claim.host].append(claim.ref)
    return tuple(
        Wanted(name=host, zone=zones[host], addresses=addresses, refs=tuple(refs[host]))
        for host in sorted(refs)
    )


def zone_of(name: str, zones: tuple[str, ...]) -> str | None:
    """The most specific of `zones` that `name` is in."""
    return max((z for z in zones if in_zone(name, z)), key=len, default=None)


def addresses_of(nodes: tuple[NodeVerdict, ...]) -> tuple[str, ...]:
    """The addresses of the eligible nodes, IPv4 before IPv6, each in numeric order."""
    return tuple(sorted({a for n in nodes if not n.excluded for a in n.addresses}, key=_address_key))


def _address_key(address: str) -> tuple[int, int]:
    ip = ipaddress.ip_address(address)
    return (ip.version, int(ip))
