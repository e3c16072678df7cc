"""The DNS plan, a pure function: served configuration + nodes + records read -> changes.

Desired state: each host of a served router (its `source` names the Ingress, or any other kind
that produced it) inside a managed zone gets A/AAAA records with the addresses of the eligible
nodes (or the fixed `targets`), and an ownership TXT (records.py). A node is eligible when it
matches the node selector, is Ready, not cordoned, not excluded from load balancers, not draining,
has an address of the configured type and, unless pods are not required, runs a ready passerelle
pod. Then, per managed name: names owned by someone else are left alone and reported on the
objects that claim them; owned names are created, updated or (policy `sync`) deleted.

Safety rules: a zone that could not be read is not planned at all (no change computed from an
unknown state; a name counts in its most specific managed zone, so a parent zone's transfer does
not stand in for an unread child); when no node is eligible the published addresses are kept, not
emptied (a snapshot with no healthy node is more often a broken input than a cluster-wide outage);
a name whose TXT names another owner besides us is never deleted; and, as octoDNS's "unsafe
plan", a reconcile that would delete more than `max_delete_percent` of the owned names (of at
least MIN_OWNED_FOR_GUARD) deletes none of them until forced (an empty or truncated configuration
must not empty the zone).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from passerelle.dnssync.records import (
    ADDRESS_RRTYPES,
    OCCUPYING_TYPES,
    Change,
    RRset,
    ZoneState,
    in_zone,
    malformed,
    owned_host,
    owner_of,
    ownership_name,
    ownership_value,
    rrset,
)
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
from passerelle.model import DynamicConfig, ObjectRef, Problem, Severity

OPT_OUT = "passerelle.io/dns-sync"  # "false" on an Ingress: its hosts are not published
MIN_OWNED_FOR_GUARD = 10  # below this many owned names, deletions are never withheld (as octoDNS)


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
    # (when there are at least MIN_OWNED_FOR_GUARD) is withheld unless `force`; 100 disables it.
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


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    wanted: tuple[Wanted, ...] = ()
    nodes: tuple[NodeVerdict, ...] = ()
    changes: tuple[Change, ...] = ()
    problems: tuple[Problem, ...] = ()
    unread: tuple[str, ...] = ()  # zones not planned: their state could not be read
    addresses: tuple[str, ...] = ()  # the addresses published for every name
    withheld: int = 0  # names whose deletion the mass-deletion guard held back (maxDeletePercent)


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


def plan(
    config: DynamicConfig,
    snapshot: ClusterSnapshot,
    states: Mapping[str, ZoneState],
    options: PlanOptions,
    *,
    draining: frozenset[str] = frozenset(),
    held: frozenset[str] = frozenset(),
) -> Plan:
    """`states`: the zones read, by name; a managed zone missing from it is left unchanged.
    `draining` and `held` (settling, see `settling`): nodes kept out of DNS."""
    problems: list[Problem] = []
    nodes: tuple[NodeVerdict, ...] = ()
    if options.targets:
        addresses = options.targets
    else:
        nodes = node_verdicts(snapshot, options, draining, held)
        addresses = tuple(sorted({a for n in nodes if not n.excluded for a in n.addresses}, key=_address_key))
        if not addresses:
            why = "; ".join(str(n) for n in nodes) or f"no node matches nodeSelector {options.node_selector}"
            problems.append(
                Problem(
                    ref=options.ref,
                    message=f"no ingress node is eligible ({why}): published addresses are kept, new names wait",
                )
            )
    names = wanted(host_claims(config, snapshot), addresses, options)
    changes, withheld = diff(names, states, options, problems)
    unread = tuple(z for z in options.zones if z not in states)
    return Plan(
        wanted=names,
        nodes=nodes,
        changes=changes,
        problems=tuple(problems),
        unread=unread,
        addresses=addresses,
        withheld=withheld,
    )


def diff(
    names: tuple[Wanted, ...], states: Mapping[str, ZoneState], options: PlanOptions, problems: list[Problem]
) -> tuple[tuple[Change, ...], int]:
    """The changes that bring `states` to `names`, and how many names' deletions were withheld."""
    # Each record counts in the most specific managed zone holding it: a parent zone's transfer
    # may list names of a child zone, which belong to (and are planned from) the child's read.
    actual = {
        (r.name, r.type): r
        for zone, state in states.items()
        for r in state.rrsets
        if zone_of(owned_host(r.name) or r.name, options.zones) == zone
    }
    changes: list[Change] = []
    planned: set[str] = set()
    for want in names:
        planned.add(want.name)  # even when its zone is unread: never deleted through another zone
        if want.zone not in states:
            continue
        registry = ownership_name(want.name)
        txt = actual.get((registry, "TXT"))
        owners = {o for o in map(owner_of, txt.values if txt else ()) if o is not None}
        others = owners - {options.owner}
        occupied = sorted(t for t in OCCUPYING_TYPES if (want.name, t) in actual)
        bad = [v for v in (txt.values if txt else ()) if malformed(v)]
        if others or bad or (options.owner not in owners and occupied):
            why = (
                f"the name is owned by passerelle owner {', '.join(sorted(others))!r} (TXT {registry})"
                if others
                else f"its TXT {registry} holds a malformed passerelle ownership record {bad[0]!r}"
                if bad
                else f"the name already has {'/'.join(occupied)} records that passerelle does not own (no TXT {registry})"
            )
            for ref in want.refs:
                problems.append(
                    Problem(
                        ref=ref,
                        message=f"host {want.name} is not published in DNS: {why}",
                        severity=Severity.WARNING,
                    )
                )
            continue
        if options.owner not in owners and not want.addresses:
            continue  # nothing to publish yet; the plan's problem says why
        text = ownership_value(options.owner, _resource(want.refs[0]))
        foreign = [v for v in (txt.values if txt else ()) if owner_of(v) is None]
        _replace(changes, want.zone, actual, rrset(registry, "TXT", options.ttl, [text, *foreign]), options)
        if not want.addresses:
            continue  # keep what is published (no eligible node)
        for rtype in ADDRESS_RRTYPES:
            family = [a for a in want.addresses if (":" in a) == (rtype == "AAAA")]
            after = rrset(want.name, rtype, options.ttl, family) if family else None
            _replace(changes, want.zone, actual, after, options, name=want.name, rtype=rtype, guard=txt)
    if options.policy is Policy.SYNC:
        deletions = _deletions(actual, planned, states, options, problems)
        owned = sum(
            1
            for (name, rtype), r in actual.items()
            if rtype == "TXT" and owned_host(name) and options.owner in map(owner_of, r.values)
        )
        removed = {c.host for c in deletions}
        if (
            not options.force
            and owned >= MIN_OWNED_FOR_GUARD
            and len(removed) * 100 > owned * options.max_delete_percent
        ):
            problems.append(
                Problem(
                    ref=options.ref,
                    message=(
                        f"deleting {len(removed)} of the {owned} owned names at once exceeds maxDeletePercent "
                        f"({options.max_delete_percent}%): deletions withheld (an empty or truncated "
                        f"configuration?); confirm with `passerelle dnssync --force` or raise maxDeletePercent"
                    ),
                )
            )
            return tuple(sorted(changes)), len(removed)
        changes.extend(deletions)
    return tuple(sorted(changes)), 0


def _deletions(
    actual: Mapping[tuple[str, str], RRset],
    planned: set[str],
    states: Mapping[str, ZoneState],
    options: PlanOptions,
    problems: list[Problem],
) -> list[Change]:
    """Policy sync: the owned names nobody claims any more, with their ownership TXT."""
    changes: list[Change] = []
    for (name, rtype), txt in sorted(actual.items()):
        host = owned_host(name)
        if rtype != "TXT" or host is None or host in planned:
            continue
        owners = {o for o in map(owner_of, txt.values) if o is not None}
        if options.owner not in owners:
            continue
        zone = zone_of(host, options.zones)
        if zone is None or zone not in states:
            continue  # its zone was not read: its state is unknown
        others = owners - {options.owner}
        bad = [v for v in txt.values if malformed(v)]
        if others or bad:
            why = (
                f"names passerelle owner {', '.join(sorted(others))!r} as well as {options.owner!r}"
                if others
                else f"also holds a malformed passerelle ownership record {bad[0]!r}"
            )
            problems.append(
                Problem(
                    ref=options.ref,
                    message=f"{host} is not deleted: its TXT {name} {why}",
                    severity=Severity.WARNING,
                )
            )
            continue
        for address_type in ADDRESS_RRTYPES:
            _replace(changes, zone, actual, None, options, name=host, rtype=address_type)
        rest = [v for v in txt.values if owner_of(v) != options.owner]
        _replace(
            changes,
            zone,
            actual,
            rrset(name, "TXT", txt.ttl, rest) if rest else None,
            options,
            name=name,
            rtype="TXT",
        )
    return changes


def zone_of(name: str, zones: tuple[str, ...]) -> str | None:
    """The most specific of `zones` that `name` is in."""
    return max((z for z in zones if in_zone(name, z)), key=len, default=None)


def _replace(
    changes: list[Change],
    zone: str,
    actual: Mapping[tuple[str, str], RRset],
    after: RRset | None,
    options: PlanOptions,
    *,
    name: str = "",
    rtype: str = "",
    guard: RRset | None = None,
) -> None:
    key = (after.name, after.type) if after is not None else (name, rtype)
    before = actual.get(key)
    if before == after or (after is None and options.policy is Policy.UPSERT_ONLY):
        return
    changes.append(Change(zone=zone, name=key[0], type=key[1], before=before, after=after, guard=guard))


def _resource(ref: ObjectRef) -> str:
    return f"{ref.kind.lower()}/{ref.namespace}/{ref.name}"


def _address_key(address: str) -> tuple[int, int]:
    ip = ipaddress.ip_address(address)
    return (ip.version, int(ip))


def describe(result: Plan, options: PlanOptions) -> list[str]:
    """The plan for people (`passerelle dnssync --dry-run`): nodes, names, changes, problems."""
    lines = [
        f"policy {options.policy}, owner {options.owner}, ttl {options.ttl}s, zones {', '.join(options.zones)}"
    ]
    if options.targets:
        lines.append(f"targets (fixed): {', '.join(options.targets)}")
    else:
        lines.append(f"nodes ({options.node_selector}, {options.address_type}):")
        lines.extend(f"  {verdict}" for verdict in result.nodes)
    lines.append(f"names ({len(result.wanted)}):")
    lines.extend(
        f"  {w.name} -> {', '.join(w.addresses) or '(none)'}  [{', '.join(map(str, w.refs))}]"
        for w in result.wanted
    )
    lines.extend(f"zone {zone}: not read, not planned" for zone in result.unread)
    lines.append(f"changes ({len(result.changes)}):")
    lines.extend(f"  {change}" for change in result.changes)
    lines.extend(str(problem) for problem in result.problems)
    return lines
