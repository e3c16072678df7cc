"""The DNS plan, table-driven: nodes, pods, Ingresses and records read in; changes and problems out."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from passerelle.dnssync.desired import PlanOptions, Policy
from passerelle.dnssync.plan import plan
from passerelle.dnssync.records import RRset, ZoneState, ownership_name, ownership_value, rrset, txt_value
from passerelle.kube.ingress import translate
from passerelle.kube.selector import parse_selector
from passerelle.kube.snapshot import ClusterSnapshot

ZONE = "example.test"
OPTIONS = PlanOptions(
    zones=(ZONE,),
    owner="cluster-a",
    ttl=30,
    node_selector=parse_selector("role=ingress"),
    pod_selector=parse_selector("app.kubernetes.io/name=passerelle"),
)


def node(name: str, *addresses: str, ready: bool = True, cordoned: bool = False, role: str = "ingress", kind: str = "InternalIP", **labels: str) -> dict[str, Any]:  # fmt: skip
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"role": role, **labels}},
        "spec": {"unschedulable": True} if cordoned else {},
        "status": {
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "addresses": [{"type": kind, "address": a} for a in addresses]
            + [{"type": "Hostname", "address": name}],
        },
    }


def pod(
    node_name: str, *, ready: bool = True, draining: bool = False, app: str = "passerelle"
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": f"{app}-{node_name}", "namespace": "kube-system", "labels": {"app.kubernetes.io/name": app}}  # fmt: skip
    if draining:
        meta["annotations"] = {"passerelle.io/draining": "true"}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {"nodeName": node_name},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def ingress(name: str, *hosts: str, opt_out: bool = False, namespace: str = "default") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if opt_out:
        meta["annotations"] = {"passerelle.io/dns-sync": "false"}
    backend = {"service": {"name": "web", "port": {"number": 80}}}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": meta,
        "spec": {
            "rules": [
                {"host": h, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}
                for h in hosts
            ]
        },
    }


def txt(host: str, owner: str = "cluster-a", resource: str = "ingress/default/app") -> RRset:
    return rrset(ownership_name(host), "TXT", 30, [ownership_value(owner, resource)])


def a(host: str, *addresses: str, ttl: int = 30) -> RRset:
    return rrset(host, "AAAA" if ":" in addresses[0] else "A", ttl, addresses)


TWO_NODES = [node("n1", "10.0.0.1"), node("n2", "10.0.0.2"), pod("n1"), pod("n2")]
PUBLISHED = [txt("app.example.test"), a("app.example.test", "10.0.0.1", "10.0.0.2")]

# (id, objects, records read, option changes, draining, expected changes, expected problem substrings)
CASES: list[tuple[str, list[dict[str, Any]], list[RRset], dict[str, Any], set[str], list[str], list[str]]] = [
    (
        "new Ingress: A and ownership TXT created",
        [*TWO_NODES, ingress("app", "app.example.test")],
        [],
        {},
        set(),
        [
            "create app.example.test 30 A 10.0.0.1, 10.0.0.2",
            'create _passerelle.app.example.test 30 TXT "heritage=passerelle,passerelle/owner=cluster-a,passerelle/resource=ingress/default/app"',
        ],
        [],
    ),
    ("up to date: nothing", [*TWO_NODES, ingress("app", "app.example.test")], PUBLISHED, {}, set(), [], []),
    (
        "Ingress removed: records and TXT deleted",
        TWO_NODES,
        PUBLISHED,
        {},
        set(),
        [
            "delete app.example.test 30 A 10.0.0.1, 10.0.0.2",
            'delete _passerelle.app.example.test 30 TXT "heritage=passerelle,passerelle/owner=cluster-a,passerelle/resource=ingress/default/app"',
        ],
        [],
    ),
    (
        "Ingress removed, upsert-only: nothing deleted",
        TWO_NODES,
        PUBLISHED,
        {"policy": Policy.UPSERT_ONLY},
        set(),
        [],
        [],
    ),
    (
        "cordoned node leaves",
        [
            node("n1", "10.0.0.1"),
            node("n2", "10.0.0.2", cordoned=True),
            pod("n1"),
            pod("n2"),
            ingress("app", "app.example.test"),
        ],
        PUBLISHED,
        {},
        set(),
        ["update app.example.test 30 A 10.0.0.1, 10.0.0.2 -> 30 A 10.0.0.1"],
        [],
    ),
    (
        "NotReady node leaves",
        [
            node("n1", "10.0.0.1"),
            node("n2", "10.0.0.2", ready=False),
            pod("n1"),
            pod("n2"),
            ingress("app", "app.example.test"),
        ],
        PUBLISHED,
        {},
        set(),
        ["update app.example.test 30 A 10.0.0.1, 10.0.0.2 -> 30 A 10.0.0.1"],
        [],
    ),
    (
        "node whose passerelle pod is not ready leaves",
        [
            node("n1", "10.0.0.1"),
            node("n2", "10.0.0.2"),
            pod("n1"),
            pod("n2", ready=False),
            ingress("app", "app.example.test"),
        ],
        PUBLISHED,
        {},
        set(),
        ["update app.example.test 30 A 10.0.0.1, 10.0.0.2 -> 30 A 10.0.0.1"],
        [],
    ),
    (
        "node whose pod is annotated draining leaves",
        [
            node("n1", "10.0.0.1"),
            node("n2", "10.0.0.2"),
            pod("n1"),
            pod("n2", draining=True),
            ingress("app", "app.example.test"),
        ],
        PUBLISHED,
        {},
        set(),
        ["update app.example.test 30 A 10.0.0.1, 10.0.0.2 -> 30 A 10.0.0.1"],
        [],
    ),
    (
        "node draining locally leaves",
        [*TWO_NODES, ingress("app", "app.example.test")],
        PUBLISHED,
        {},
        {"n2"},
        ["update app.example.test 30 A 10.0.0.1, 10.0.0.2 -> 30 A 10.0.0.1"],
        [],
    ),
    (
        "node without the ingress role and node excluded from load balancers are not used",
        [
            node("n1", "10.0.0.1"),
            node("n2", "10.0.0.2", role="worker"),
            node("n3", "10.0.0.3", **{"node.kubernetes.io/exclude-from-external-load-balancers": ""}),
            pod("n1"),
            pod("n2"),
            pod("n3"),
            ingress("app", "app.example.test"),
        ],  # fmt: skip
        PUBLISHED,
        {},
        set(),
        ["update app.example.test 30 A 10.0.0.1, 10.0.0.2 -> 30 A 10.0.0.1"],
        [],
    ),
    (
        "pods not required: nodes alone decide",
        [node("n1", "10.0.0.1"), node("n2", "10.0.0.2"), ingress("app", "app.example.test")],
        PUBLISHED,
        {"pod_selector": None},
        set(),
        [],
        [],
    ),
    (
        "no node eligible: published addresses kept, a problem",
        [
            node("n1", "10.0.0.1", ready=False),
            node("n2", "10.0.0.2", cordoned=True),
            ingress("app", "app.example.test"),
        ],
        PUBLISHED,
        {},
        set(),
        [],
        ["DnsSync cluster-a: no ingress node is eligible (n1: NotReady"],
    ),
    (
        "no pods at all (manifests without Pods): nothing created, a problem naming the selector",
        [node("n1", "10.0.0.1"), ingress("app", "app.example.test")],
        [],
        {},
        set(),
        [],
        ["n1: no ready passerelle pod (app.kubernetes.io/name=passerelle)"],
    ),
    (
        "IPv4 and IPv6, ExternalIP",
        [
            node("n1", "192.0.2.1", "2001:db8::1", kind="ExternalIP"),
            node("n2", "10.0.0.2"),
            pod("n1"),
            pod("n2"),
            ingress("app", "app.example.test"),
        ],  # fmt: skip
        [txt("app.example.test")],
        {"address_type": "ExternalIP"},
        set(),
        ["create app.example.test 30 A 192.0.2.1", "create app.example.test 30 AAAA 2001:db8::1"],
        [],
    ),
    (
        "wildcard host: wildcard record, _wildcard ownership name",
        [*TWO_NODES, ingress("app", "*.apps.example.test")],
        [],
        {},
        set(),
        [
            "create *.apps.example.test 30 A 10.0.0.1, 10.0.0.2",
            'create _passerelle._wildcard.apps.example.test 30 TXT "heritage=passerelle,passerelle/owner=cluster-a,passerelle/resource=ingress/default/app"',
        ],
        [],
    ),
    (
        "hosts outside the zones and opted-out Ingresses are not managed",
        [*TWO_NODES, ingress("app", "app.other.test"), ingress("quiet", "quiet.example.test", opt_out=True)],
        [],
        {},
        set(),
        [],
        [],
    ),
    (
        "foreign record without ownership left alone, a problem on the Ingress",
        [*TWO_NODES, ingress("app", "app.example.test")],
        [a("app.example.test", "198.51.100.7", ttl=300)],
        {},
        set(),
        [],
        [
            "Ingress default/app: host app.example.test is not published in DNS: the name already has A records that passerelle does not own"
        ],
    ),
    (
        "name owned by another cluster: conflict, untouched",
        [*TWO_NODES, ingress("app", "app.example.test")],
        [txt("app.example.test", owner="cluster-b"), a("app.example.test", "198.51.100.7")],
        {},
        set(),
        [],
        ["the name is owned by passerelle owner 'cluster-b'"],
    ),
    (
        "names owned by another cluster are never deleted",
        TWO_NODES,
        [txt("old.example.test", owner="cluster-b"), a("old.example.test", "198.51.100.7")],
        {},
        set(),
        [],
        [],
    ),
    (
        "TTL change updates, resource change rewrites the TXT",
        [*TWO_NODES, ingress("other", "app.example.test")],
        PUBLISHED,
        {"ttl": 60},
        set(),
        [
            "update app.example.test 30 A 10.0.0.1, 10.0.0.2 -> 60 A 10.0.0.1, 10.0.0.2",
            'update _passerelle.app.example.test 30 TXT "heritage=passerelle,passerelle/owner=cluster-a,passerelle/resource=ingress/default/app" -> 60 TXT "heritage=passerelle,passerelle/owner=cluster-a,passerelle/resource=ingress/default/other"',
        ],
        [],
    ),
    (
        "fixed targets (VIP mode): nodes ignored",
        [ingress("app", "app.example.test")],
        [],
        {"targets": ("192.0.2.10", "2001:db8::10")},
        set(),
        [
            "create app.example.test 30 A 192.0.2.10",
            "create app.example.test 30 AAAA 2001:db8::10",
            'create _passerelle.app.example.test 30 TXT "heritage=passerelle,passerelle/owner=cluster-a,passerelle/resource=ingress/default/app"',
        ],
        [],
    ),
    (
        "last IPv6 node gone: AAAA deleted in sync",
        [node("n1", "10.0.0.1"), pod("n1"), ingress("app", "app.example.test")],
        [txt("app.example.test"), a("app.example.test", "10.0.0.1"), a("app.example.test", "2001:db8::2")],
        {},
        set(),
        ["delete app.example.test 30 AAAA 2001:db8::2"],
        [],
    ),
]


@pytest.mark.parametrize(
    "objects, records, overrides, draining, expected, problems",
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_plan(
    objects: list[dict[str, Any]],
    records: list[RRset],
    overrides: dict[str, Any],
    draining: set[str],
    expected: list[str],
    problems: list[str],
) -> None:
    snapshot = ClusterSnapshot.of(objects)
    config, _ = translate(snapshot)
    options = dataclasses.replace(OPTIONS, **overrides)
    result = plan(
        config,
        snapshot,
        {ZONE: ZoneState(zone=ZONE, rrsets=tuple(records))},
        options,
        draining=frozenset(draining),
    )
    assert sorted(str(c) for c in result.changes) == sorted(expected)
    found = [str(p) for p in result.problems]
    for wanted in problems:
        assert any(wanted in p for p in found), (wanted, found)
    if not problems:
        assert found == []


def test_unread_zone_is_not_planned() -> None:
    """A zone whose state could not be read gets no change, not a delete-everything: the owned,
    unclaimed names of the zone that was read are deleted, those of the unread one are not."""
    snapshot = ClusterSnapshot.of([*TWO_NODES])
    config, _ = translate(snapshot)
    options = dataclasses.replace(OPTIONS, zones=(ZONE, "other.test"))
    states = {ZONE: ZoneState(zone=ZONE, rrsets=tuple(PUBLISHED))}
    result = plan(config, snapshot, states, options)
    assert result.unread == ("other.test",)
    assert {c.name for c in result.changes} == {"app.example.test", "_passerelle.app.example.test"}
    assert all(c.zone == ZONE for c in result.changes)


SUB = "sub.example.test"
NESTED = dataclasses.replace(OPTIONS, zones=(ZONE, SUB))
IN_SUB = [txt("x.sub.example.test"), a("x.sub.example.test", "10.0.0.1")]


@pytest.mark.parametrize("claimed", [True, False], ids=["claimed", "unclaimed"])
def test_unread_child_zone_keeps_its_names_though_the_parent_lists_them(claimed: bool) -> None:
    """Zones example.test and sub.example.test, sub unreadable: its records, seen in the parent's
    transfer, are neither deleted nor updated through the parent."""
    objects = [*TWO_NODES, *([ingress("app", "x.sub.example.test")] if claimed else [])]
    snapshot = ClusterSnapshot.of(objects)
    config, _ = translate(snapshot)
    states = {ZONE: ZoneState(zone=ZONE, rrsets=tuple(IN_SUB))}
    result = plan(config, snapshot, states, NESTED)
    assert result.changes == () and result.unread == (SUB,)


def test_nested_zones_read_records_count_in_the_child() -> None:
    snapshot = ClusterSnapshot.of([*TWO_NODES])
    config, _ = translate(snapshot)
    states = {
        ZONE: ZoneState(zone=ZONE, rrsets=tuple(IN_SUB)),
        SUB: ZoneState(zone=SUB, rrsets=tuple(IN_SUB)),
    }
    result = plan(config, snapshot, states, NESTED)
    assert {(c.zone, c.name, c.action) for c in result.changes} == {
        (SUB, "x.sub.example.test", "delete"),
        (SUB, "_passerelle.x.sub.example.test", "delete"),
    }


def test_co_owned_name_is_not_deleted() -> None:
    """A TXT naming our owner and another one is a conflict for deletion as for an update."""
    both = rrset(
        ownership_name("app.example.test"),
        "TXT",
        30,
        [
            ownership_value("cluster-a", "ingress/default/app"),
            ownership_value("cluster-b", "ingress/default/app"),
        ],
    )
    snapshot = ClusterSnapshot.of([*TWO_NODES])
    config, _ = translate(snapshot)
    states = {ZONE: ZoneState(zone=ZONE, rrsets=(both, a("app.example.test", "10.0.0.1")))}
    result = plan(config, snapshot, states, OPTIONS)
    assert result.changes == ()
    assert any("'cluster-b' as well as 'cluster-a'" in p.message for p in result.problems), result.problems


BAD = txt_value(
    [b"heritage=passerelle,passerelle/owner=cluster-a,passerelle/owner=cluster-b,passerelle/resource=x"]
)


@pytest.mark.parametrize("claimed", [True, False], ids=["claimed", "unclaimed"])
def test_a_malformed_ownership_txt_makes_the_name_untouchable(claimed: bool) -> None:
    snapshot = ClusterSnapshot.of([*TWO_NODES, *([ingress("app", "app.example.test")] if claimed else [])])
    config, _ = translate(snapshot)
    registry = ownership_name("app.example.test")
    theirs = rrset(registry, "TXT", 30, [BAD, ownership_value("cluster-a", "ingress/default/app")])
    states = {ZONE: ZoneState(zone=ZONE, rrsets=(theirs, a("app.example.test", "10.0.0.1")))}
    result = plan(config, snapshot, states, OPTIONS)
    assert result.changes == ()
    assert any("malformed passerelle ownership record" in p.message for p in result.problems), result.problems


def owned(count: int) -> list[RRset]:
    return [r for i in range(count) for r in (txt(f"h{i}.example.test"), a(f"h{i}.example.test", "10.0.0.1"))]


@pytest.mark.parametrize(
    "owned_names, kept, force, percent, deleted",
    [
        (20, 0, False, 30, 0),  # empty configuration: nothing deleted, a problem
        (20, 13, False, 30, 0),  # 7 of 20 (35%) > 30%: withheld
        (20, 14, False, 30, 6),  # 6 of 20 (30%): allowed
        (20, 0, True, 30, 20),  # forced once
        (20, 0, False, 100, 20),  # guard off
        (9, 0, False, 30, 9),  # too few names for the guard
    ],
)
def test_mass_deletion_is_withheld(
    owned_names: int, kept: int, force: bool, percent: int, deleted: int
) -> None:
    snapshot = ClusterSnapshot.of([*TWO_NODES, ingress("app", *(f"h{i}.example.test" for i in range(kept)))])
    config, _ = translate(snapshot)
    records = [*owned(owned_names)]
    options = dataclasses.replace(OPTIONS, force=force, max_delete_percent=percent)
    result = plan(config, snapshot, {ZONE: ZoneState(zone=ZONE, rrsets=tuple(records))}, options)
    updates = [c for c in result.changes if c.action != "delete"]
    assert len({c.host for c in result.changes if c.action == "delete"}) == deleted
    assert len(updates) == kept  # A 10.0.0.1 -> 10.0.0.1, 10.0.0.2 goes ahead regardless
    withheld = [p for p in result.problems if "maxDeletePercent" in p.message]
    assert bool(withheld) == (deleted == 0 and owned_names - kept > 0 and owned_names >= 10), withheld
    assert result.withheld == (owned_names - kept if withheld else 0)  # counted for the metrics


def test_most_specific_zone_wins() -> None:
    snapshot = ClusterSnapshot.of([*TWO_NODES, ingress("app", "x.sub.example.test")])
    config, _ = translate(snapshot)
    options = dataclasses.replace(OPTIONS, zones=(ZONE, "sub.example.test"))
    states = {z: ZoneState(zone=z, rrsets=()) for z in options.zones}
    result = plan(config, snapshot, states, options)
    assert {c.zone for c in result.changes} == {"sub.example.test"}


def test_a_held_node_stays_out_of_the_plan() -> None:
    snapshot = ClusterSnapshot.of([*TWO_NODES, ingress("app", "app.example.test")])
    config, _ = translate(snapshot)
    states = {ZONE: ZoneState(zone=ZONE, rrsets=(txt("app.example.test"), a("app.example.test", "10.0.0.1")))}
    result = plan(config, snapshot, states, OPTIONS, held=frozenset({"n2"}))
    assert result.changes == () and result.addresses == ("10.0.0.1",)
    assert "n2: settling" in str(result.nodes[1])
