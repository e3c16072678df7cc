"""The DNS plan, a pure function: served configuration + nodes + records read -> changes.

desired.py says what DNS should hold: the managed names, each with the addresses of the eligible
nodes (or the fixed `targets`) and its claimants. Then, per managed name: names owned by someone
else are left alone and reported on the objects that claim them; owned names are created, updated
or (policy `sync`) deleted.

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

from collections.abc import Mapping
from dataclasses import dataclass

from passerelle.dnssync.desired import (
    NodeVerdict,
    PlanOptions,
    Policy,
    Wanted,
    addresses_of,
    host_claims,
    node_verdicts,
    wanted,
    zone_of,
)
from passerelle.dnssync.records import (
    ADDRESS_RRTYPES,
    OCCUPYING_TYPES,
    Change,
    RRset,
    ZoneState,
    malformed,
    owned_host,
    owner_of,
    ownership_name,
    ownership_value,
    rrset,
)
from passerelle.kube.snapshot import ClusterSnapshot
from passerelle.model import DynamicConfig, ObjectRef, Problem, Severity

MIN_OWNED_FOR_GUARD = 10  # below this many owned names, deletions are never withheld (as octoDNS)


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    wanted: tuple[Wanted, ...] = ()
    nodes: tuple[NodeVerdict, ...] = ()
    changes: tuple[Change, ...] = ()
    problems: tuple[Problem, ...] = ()
    unread: tuple[str, ...] = ()  # zones not planned: their state could not be read
    addresses: tuple[str, ...] = ()  # the addresses published for every name
    withheld: int = 0  # names whose deletion the mass-deletion guard held back (maxDeletePercent)


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
        addresses = addresses_of(nodes)
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
