"""DNS sync against a real BIND 9: every scenario is checked by asking BIND what it serves."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dns.query
import dns.rcode
import dns.update
import pytest
import yaml

from passerelle.dnssync import controller
from passerelle.dnssync.controller import DrainResult
from passerelle.dnssync.provider import Conflict
from passerelle.dnssync.records import ownership_text
from tests.integration.bind import Bind
from tests.integration.dnsfixtures import Cluster, dns_settings, host_ingress, node, pod

HOST = "app.example.test"


@pytest.fixture
def bind(tmp_path: Path) -> Iterator[Bind]:
    server = Bind(
        tmp_path / "bind", extra_records="legacy IN A 198.51.100.7\nmx IN MX 10 mail.example.test.\n"
    )
    server.start()
    yield server
    server.stop()


def nodes(*specs: dict[str, object]) -> list[dict[str, object]]:
    return [*specs, *(pod(str(s["metadata"]["name"])) for s in specs)]  # type: ignore[index]


def one_app(cluster: Cluster) -> None:
    """Node n1 at 10.0.0.1, and Ingress app for HOST."""
    cluster.write("nodes.yaml", nodes(node("n1", "10.0.0.1")))
    cluster.write("app.yaml", [host_ingress("app", HOST)])


async def test_ingress_added_then_removed(tmp_path: Path, bind: Bind) -> None:
    cluster = Cluster(tmp_path, bind)
    cluster.write("nodes.yaml", nodes(node("n1", "10.0.0.1"), node("n2", "10.0.0.2")))
    cluster.write("app.yaml", [host_ingress("app", HOST, "*.apps.example.test")])
    outcome = await cluster.reconcile()
    assert outcome.ok, outcome.errors
    assert bind.addresses(HOST) == {"10.0.0.1", "10.0.0.2"}
    assert bind.ttl(HOST) == 30
    assert bind.addresses("anything.apps.example.test") == {"10.0.0.1", "10.0.0.2"}  # the wildcard
    assert bind.txt("_passerelle.app.example.test") == {
        "heritage=passerelle,passerelle/owner=cluster-a,passerelle/resource=ingress/default/app"
    }
    assert (await cluster.reconcile()).applied == 0  # in sync: nothing sent again
    cluster.remove("app.yaml")
    outcome = await cluster.reconcile()
    assert outcome.ok and outcome.applied == 4
    assert bind.addresses(HOST) == set() and bind.txt("_passerelle.app.example.test") == set()
    assert bind.addresses("anything.apps.example.test") == set()
    assert bind.addresses("legacy.example.test") == {"198.51.100.7"}  # foreign, untouched


async def test_nodes_join_and_leave(tmp_path: Path, bind: Bind) -> None:
    cluster = Cluster(tmp_path, bind)
    cluster.write("app.yaml", [host_ingress("app", HOST)])
    steps: list[tuple[str, list[dict[str, object]], set[str]]] = [
        ("one node", nodes(node("n1", "10.0.0.1")), {"10.0.0.1"}),
        ("a node added", nodes(node("n1", "10.0.0.1"), node("n2", "10.0.0.2")), {"10.0.0.1", "10.0.0.2"}),
        ("n2 cordoned", nodes(node("n1", "10.0.0.1"), node("n2", "10.0.0.2", cordoned=True)), {"10.0.0.1"}),
        ("n2 back", nodes(node("n1", "10.0.0.1"), node("n2", "10.0.0.2")), {"10.0.0.1", "10.0.0.2"}),
        ("n1 NotReady", nodes(node("n1", "10.0.0.1", ready=False), node("n2", "10.0.0.2")), {"10.0.0.2"}),
        (
            "n1 ready, its passerelle pod not",
            [node("n1", "10.0.0.1"), node("n2", "10.0.0.2"), pod("n1", ready=False), pod("n2")],
            {"10.0.0.2"},
        ),
        (
            "n1 deleted, n3 added",
            nodes(node("n2", "10.0.0.2"), node("n3", "10.0.0.3")),
            {"10.0.0.2", "10.0.0.3"},
        ),
        (
            "a node without the role",
            nodes(node("n2", "10.0.0.2"), node("n4", "10.0.0.4", role="worker")),
            {"10.0.0.2"},
        ),  # fmt: skip
    ]
    for what, objects, expected in steps:
        cluster.write("nodes.yaml", objects)
        outcome = await cluster.reconcile()
        assert outcome.ok, (what, outcome.errors)
        assert bind.addresses(HOST) == expected, what


async def test_a_node_back_ready_joins_after_the_settle_time(tmp_path: Path, bind: Bind) -> None:
    """A flapping node: leaving DNS is immediate, coming back waits settleTime."""
    now = [1000.0]
    cluster = Cluster(tmp_path, bind, clock=lambda: now[0], settleTime="30s")
    cluster.write("app.yaml", [host_ingress("app", HOST)])
    two = nodes(node("n1", "10.0.0.1"), node("n2", "10.0.0.2"))
    cluster.write("nodes.yaml", two)
    assert (await cluster.reconcile()).ok
    assert bind.addresses(HOST) == set()  # a fresh start: nodes not in DNS wait too
    now[0] += 31
    assert (await cluster.reconcile()).ok
    assert bind.addresses(HOST) == {"10.0.0.1", "10.0.0.2"}
    cluster.write("nodes.yaml", nodes(node("n1", "10.0.0.1"), node("n2", "10.0.0.2", ready=False)))
    assert (await cluster.reconcile()).ok
    assert bind.addresses(HOST) == {"10.0.0.1"}  # out at once
    now[0] += 5
    cluster.write("nodes.yaml", two)
    outcome = await cluster.reconcile()
    assert outcome.ok and outcome.applied == 0 and bind.addresses(HOST) == {"10.0.0.1"}  # held
    assert outcome.plan is not None and "n2: settling" in str(outcome.plan.nodes[1])
    now[0] += 29
    assert (await cluster.reconcile()).ok and bind.addresses(HOST) == {"10.0.0.1"}  # 29 s < 30 s
    now[0] += 2
    assert (await cluster.reconcile()).ok and bind.addresses(HOST) == {"10.0.0.1", "10.0.0.2"}
    restarted = Cluster(tmp_path / "again", bind, clock=lambda: now[0], settleTime="30s")
    restarted.write("app.yaml", [host_ingress("app", HOST)])
    restarted.write("nodes.yaml", two)
    outcome = await restarted.reconcile()  # a new controller keeps the nodes already in DNS
    assert outcome.ok and outcome.applied == 0 and bind.addresses(HOST) == {"10.0.0.1", "10.0.0.2"}


async def test_no_eligible_node_keeps_the_published_addresses(tmp_path: Path, bind: Bind) -> None:
    cluster = Cluster(tmp_path, bind)
    cluster.write("app.yaml", [host_ingress("app", HOST)])
    cluster.write("nodes.yaml", nodes(node("n1", "10.0.0.1")))
    assert (await cluster.reconcile()).ok
    cluster.write("nodes.yaml", nodes(node("n1", "10.0.0.1", ready=False)))
    outcome = await cluster.reconcile()
    assert outcome.ok and outcome.applied == 0
    assert bind.addresses(HOST) == {"10.0.0.1"}
    assert any("no ingress node is eligible" in p.message for p in cluster.sync.problems())


async def test_foreign_records_are_left_alone(tmp_path: Path, bind: Bind) -> None:
    cluster = Cluster(tmp_path, bind)
    cluster.write("nodes.yaml", nodes(node("n1", "10.0.0.1")))
    cluster.write("app.yaml", [host_ingress("legacy", "legacy.example.test", "mx.example.test")])
    outcome = await cluster.reconcile()
    assert outcome.ok
    assert bind.addresses("legacy.example.test") == {"198.51.100.7"}
    problems = [str(p) for p in cluster.sync.problems()]
    assert any(
        p.startswith("warning: Ingress default/legacy: host legacy.example.test is not published in DNS: "
                     "the name already has A records that passerelle does not own") for p in problems
    ), problems  # fmt: skip
    # A name with only other types (MX) is free: its A record is added beside them.
    assert bind.addresses("mx.example.test") == {"10.0.0.1"}
    assert bind.query("mx.example.test", "MX").answer


async def test_ownership_conflict_between_clusters(tmp_path: Path, bind: Bind) -> None:
    a = Cluster(tmp_path / "a", bind, ownerId="cluster-a")
    b = Cluster(tmp_path / "b", bind, ownerId="cluster-b")
    a.write("nodes.yaml", nodes(node("n1", "10.0.0.1")))
    b.write("nodes.yaml", nodes(node("m1", "10.9.0.1")))
    for cluster in (a, b):
        cluster.write("app.yaml", [host_ingress("app", HOST)])
    assert (await a.reconcile()).ok
    outcome = await b.reconcile()
    assert outcome.ok and outcome.applied == 0
    assert bind.addresses(HOST) == {"10.0.0.1"}
    assert any(
        p.ref.kind == "Ingress" and "owned by passerelle owner 'cluster-a'" in p.message
        for p in b.sync.problems()
    )
    b.remove("app.yaml")  # cluster-b's sync never deletes what cluster-a owns
    assert (await b.reconcile()).applied == 0
    assert bind.addresses(HOST) == {"10.0.0.1"}


async def test_upsert_only_never_deletes(tmp_path: Path, bind: Bind) -> None:
    cluster = Cluster(tmp_path, bind, policy="upsert-only")
    cluster.write("nodes.yaml", nodes(node("n1", "10.0.0.1"), node("n2", "10.0.0.2")))
    cluster.write("app.yaml", [host_ingress("app", HOST)])
    assert (await cluster.reconcile()).ok
    cluster.write("nodes.yaml", nodes(node("n1", "10.0.0.1"), node("n2", "10.0.0.2", cordoned=True)))
    assert (await cluster.reconcile()).ok
    assert bind.addresses(HOST) == {"10.0.0.1"}  # an update, allowed
    cluster.remove("app.yaml")
    outcome = await cluster.reconcile()
    assert outcome.ok and outcome.applied == 0
    assert bind.addresses(HOST) == {"10.0.0.1"}


async def test_opted_out_ingress_is_not_published(tmp_path: Path, bind: Bind) -> None:
    cluster = Cluster(tmp_path, bind)
    cluster.write("nodes.yaml", nodes(node("n1", "10.0.0.1")))
    cluster.write("app.yaml", [host_ingress("app", HOST, annotations={"passerelle.io/dns-sync": "false"})])
    assert (await cluster.reconcile()).ok
    assert bind.addresses(HOST) == set()


async def test_wrong_tsig_key_is_a_clear_error(tmp_path: Path, bind: Bind) -> None:
    good = Cluster(tmp_path / "good", bind)
    good.write("nodes.yaml", nodes(node("n1", "10.0.0.1")))
    good.write("app.yaml", [host_ingress("app", HOST)])
    assert (await good.reconcile()).ok
    provider = {**bind.settings()["rfc2136"], "tsigSecret": "c2VjcmV0LXRoYXQtYmluZC1kb2VzLW5vdC1rbm93"}  # type: ignore[dict-item]
    bad = Cluster(tmp_path / "bad", bind, provider={"rfc2136": provider})
    bad.write("nodes.yaml", nodes(node("n1", "10.0.0.1")))  # app.yaml absent: would delete if it could
    outcome = await bad.reconcile()
    assert not outcome.ok
    assert "rejected the TSIG signature (BadSignature): check tsigKeyName, tsigSecret" in outcome.errors[0]
    health = bad.sync.health()
    assert not health.healthy and health.consecutive_failures == 1 and health.failures_total == 1
    assert any("DNS not in sync (1 attempts, retrying)" in p.message for p in bad.sync.problems())
    assert bind.addresses(HOST) == {"10.0.0.1"}  # nothing deleted


async def test_server_down_then_back(tmp_path: Path, bind: Bind, monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = Cluster(tmp_path, bind, backoff=controller.Backoff(first_retry=0.2))
    cluster.write("nodes.yaml", nodes(node("n1", "10.0.0.1"), node("n2", "10.0.0.2")))
    cluster.write("app.yaml", [host_ingress("app", HOST)])
    cluster.load()
    task = asyncio.get_running_loop().create_task(cluster.sync.run())
    try:
        await until(lambda: bind.addresses(HOST) == {"10.0.0.1", "10.0.0.2"})
        bind.stop()
        cluster.write("nodes.yaml", nodes(node("n1", "10.0.0.1"), node("n2", "10.0.0.2", cordoned=True)))
        cluster.load()
        await until(lambda: cluster.sync.health().consecutive_failures >= 2)
        health = cluster.sync.health()
        assert not health.healthy and "Connect call failed" in health.last_error
        assert any("DNS not in sync" in p.message for p in cluster.sync.problems())
        bind.start()  # same zone, same journal: what was published is still there
        await until(lambda: bind.addresses(HOST) == {"10.0.0.1"})
        await until(lambda: cluster.sync.health().healthy)
        assert not any("DNS not in sync" in p.message for p in cluster.sync.problems())
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def until(condition: object, timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():  # type: ignore[operator]
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def write_config(tmp_path: Path, bind: Bind, **overrides: object) -> Path:
    manifests = tmp_path / "manifests"
    manifests.mkdir(exist_ok=True)
    (manifests / "all.yaml").write_text(
        yaml.safe_dump_all(
            [*nodes(node("n1", "10.0.0.1"), node("n2", "10.0.0.2", cordoned=True)), host_ingress("app", HOST)]
        )
    )
    config = tmp_path / "passerelle.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "providers": {"manifests": {"directory": "manifests"}},
                "dnsSync": dns_settings(bind, **overrides),
            }
        )
    )
    return config


def passerelle(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "passerelle", *args], capture_output=True, text=True, timeout=30
    )


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path: Path, bind: Bind) -> None:
    config = write_config(tmp_path, bind)
    result = passerelle("dnssync", "--dry-run", "-c", str(config))
    assert result.returncode == 0, result.stderr
    assert "(dry run: nothing written)" in result.stdout
    assert "  n1: in DNS (10.0.0.1)" in result.stdout
    assert "  n2: cordoned (spec.unschedulable) (10.0.0.2)" in result.stdout
    assert "  app.example.test -> 10.0.0.1  [Ingress default/app]" in result.stdout
    assert "  create app.example.test 30 A 10.0.0.1" in result.stdout
    assert bind.addresses(HOST) == set()
    result = passerelle("dnssync", "-c", str(config))  # without --dry-run: one reconcile, applied
    assert result.returncode == 0 and "applied 2 changes" in result.stdout, result.stdout + result.stderr
    assert bind.addresses(HOST) == {"10.0.0.1"}


def test_dry_run_with_the_server_down_says_so(tmp_path: Path, bind: Bind) -> None:
    config = write_config(tmp_path, bind)
    bind.stop()
    result = passerelle("dnssync", "--dry-run", "-c", str(config))
    assert result.returncode == 1
    assert "zone example.test: not read, not planned" in result.stdout
    assert "error: transfer (AXFR) of zone example.test: rfc2136 127.0.0.1:" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_dns_settings_are_one_line_errors(tmp_path: Path, bind: Bind) -> None:
    config = write_config(tmp_path, bind, ownerId="no spaces", nodeSelector="=ingress", target=["10.0.0.300"])
    result = passerelle("dnssync", "--dry-run", "-c", str(config))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    for key in ("dnsSync.ownerId", "dnsSync.nodeSelector", "dnsSync.target"):
        assert f"{key}: " in result.stderr, result.stderr


class Switch:
    """A leadership that the test hands over, as a Lease would."""

    def __init__(self) -> None:
        self.leader = False

    def is_leader(self) -> bool:
        return self.leader


async def test_only_the_leader_writes(tmp_path: Path, bind: Bind) -> None:
    lease = Switch()
    cluster = Cluster(tmp_path, bind, leadership=lease)
    one_app(cluster)
    outcome = await cluster.reconcile()
    assert outcome.plan is None and outcome.ok and not cluster.sync.health().leader
    assert bind.addresses(HOST) == set()
    preview = await cluster.sync.reconcile(write=False)  # what a standby would do: plan, not write
    assert preview.plan is not None and len(preview.plan.changes) == 2 and preview.applied == 0
    lease.leader = True
    outcome = await cluster.reconcile()
    assert outcome.applied == 2 and cluster.sync.health().leader
    assert bind.addresses(HOST) == {"10.0.0.1"}


async def test_large_changes_are_batched(tmp_path: Path, bind: Bind) -> None:
    cluster = Cluster(tmp_path, bind, provider={"rfc2136": {**bind.settings()["rfc2136"], "batchSize": 7}})  # type: ignore[dict-item]
    cluster.write("nodes.yaml", nodes(node("n1", "10.0.0.1"), node("n2", "fd00::2")))
    hosts = [f"h{i}.example.test" for i in range(40)]
    cluster.write("app.yaml", [host_ingress("app", *hosts)])
    outcome = await cluster.reconcile()
    assert outcome.ok and outcome.applied == 120  # A, AAAA and TXT for each
    assert outcome.messages == 20  # 2 names (6 changes) per message of at most 7
    for host in hosts:
        assert bind.addresses(host) == {"10.0.0.1", "fd00::2"}, host
    state = await cluster.sync.provider.read(bind.zone)
    assert len([r for r in state.rrsets if r.type == "TXT"]) == 40


async def test_a_name_changed_under_the_plan_is_refused_alone(tmp_path: Path, bind: Bind) -> None:
    """Prerequisites: a name whose records moved after the read is not overwritten; the other names
    of its batch are applied; the next reconcile reads again and converges."""
    cluster = Cluster(tmp_path, bind)
    cluster.write("nodes.yaml", nodes(node("n1", "10.0.0.1")))
    cluster.write("app.yaml", [host_ingress("app", "a.example.test", "b.example.test", "c.example.test")])
    assert (await cluster.reconcile()).ok
    cluster.write("nodes.yaml", nodes(node("n1", "10.0.0.1"), node("n2", "10.0.0.2")))
    cluster.load()
    result = await cluster.plan()
    assert len(result.changes) == 3
    # someone else moves b between the read and the write
    update = dns.update.UpdateMessage(bind.zone, keyring=bind.keyring())
    update.replace("b.example.test.", 30, "A", "10.0.0.9")
    assert dns.query.tcp(update, "127.0.0.1", port=bind.port, timeout=2).rcode() == dns.rcode.NOERROR
    with pytest.raises(Conflict, match=r"changed since it was read \(b.example.test\)"):
        await cluster.sync.provider.apply(bind.zone, result.changes)
    assert bind.addresses("a.example.test") == bind.addresses("c.example.test") == {"10.0.0.1", "10.0.0.2"}
    assert bind.addresses("b.example.test") == {"10.0.0.9"}  # not overwritten blindly
    assert (await cluster.reconcile()).ok  # read again: b is ours (its TXT), so it is corrected
    assert bind.addresses("b.example.test") == {"10.0.0.1", "10.0.0.2"}


async def test_a_name_taken_over_since_the_read_keeps_its_new_owner(tmp_path: Path, bind: Bind) -> None:
    """An address update whose TXT does not change still requires the TXT as read: a name another
    owner took between the read and the write is not given our addresses."""
    cluster = Cluster(tmp_path, bind)
    one_app(cluster)
    assert (await cluster.reconcile()).ok
    cluster.write("nodes.yaml", nodes(node("n1", "10.0.0.1"), node("n2", "10.0.0.2")))
    cluster.load()
    result = await cluster.plan()
    assert [c.type for c in result.changes] == ["A"]  # the TXT is unchanged
    theirs = ownership_text("cluster-b", "ingress/default/app")
    update = dns.update.UpdateMessage(bind.zone, keyring=bind.keyring())
    update.replace(f"_passerelle.{HOST}.", 30, "TXT", f'"{theirs}"')
    assert dns.query.tcp(update, "127.0.0.1", port=bind.port, timeout=2).rcode() == dns.rcode.NOERROR
    with pytest.raises(Conflict):
        await cluster.sync.provider.apply(bind.zone, result.changes)
    assert bind.addresses(HOST) == {"10.0.0.1"} and bind.txt(f"_passerelle.{HOST}") == {theirs}


async def test_a_cname_made_since_the_read_refuses_the_create(tmp_path: Path, bind: Bind) -> None:
    """RFC 2136 §3.4.2.2: the server silently ignores an A added beside a CNAME; the create's
    prerequisite makes that a refusal the controller sees, instead of a lost write."""
    cluster = Cluster(tmp_path, bind)
    one_app(cluster)
    cluster.load()
    result = await cluster.plan()
    update = dns.update.UpdateMessage(bind.zone, keyring=bind.keyring())
    update.replace(f"{HOST}.", 30, "CNAME", "legacy.example.test.")
    assert dns.query.tcp(update, "127.0.0.1", port=bind.port, timeout=2).rcode() == dns.rcode.NOERROR
    with pytest.raises(Conflict, match=HOST):
        await cluster.sync.provider.apply(bind.zone, result.changes)
    assert bind.txt(f"_passerelle.{HOST}") == set()  # the name's TXT did not go in without its A
    outcome = await cluster.reconcile()  # read again: the CNAME is someone else's
    assert outcome.ok and outcome.applied == 0
    assert any("already has CNAME records" in p.message for p in cluster.sync.problems())


async def test_a_refused_update_mid_apply_reports_what_was_applied(tmp_path: Path) -> None:
    """The server refuses the second message (its update-policy denies one name): the first
    message's changes stay applied, are counted, and the error says so."""
    key = '"passerelle-key"'
    server = Bind(
        tmp_path / "bind",
        update_policy=f"deny {key} name z.example.test. ANY; grant {key} subdomain example.test. ANY;",
    )
    server.start()
    try:
        rfc2136: dict[str, object] = {**server.settings()["rfc2136"], "batchSize": 2}  # type: ignore[dict-item]
        cluster = Cluster(tmp_path, server, provider={"rfc2136": rfc2136})
        cluster.write("nodes.yaml", nodes(node("n1", "10.0.0.1")))
        cluster.write("app.yaml", [host_ingress("app", "a.example.test", "z.example.test")])
        outcome = await cluster.reconcile()
        assert not outcome.ok and outcome.applied == 2, outcome
        assert "answered REFUSED" in outcome.errors[0] and "2 of 4 changes were applied" in outcome.errors[0]
        assert cluster.sync.health().changes_total == 2
        assert server.addresses("a.example.test") == {"10.0.0.1"}
        assert server.addresses("z.example.test") == set()
    finally:
        server.stop()


def test_only_dns_sync_loads_dnspython() -> None:
    """Settings and the wiring load in every process; dnspython only where DNS sync runs."""
    code = "import sys, passerelle.settings, passerelle.app; print(any(m.startswith('dns.') for m in sys.modules))"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
    )


async def test_drain_gives_up_when_the_server_stays_down(
    tmp_path: Path, bind: Bind, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = Cluster(tmp_path, bind, backoff=controller.Backoff(first_retry=0.1))  # this process is node n1
    cluster.write("nodes.yaml", nodes(node("n1", "10.0.0.1"), node("n2", "10.0.0.2")))
    cluster.write("app.yaml", [host_ingress("app", HOST)])
    assert (await cluster.reconcile()).ok
    bind.stop()
    report = await cluster.sync.drain_node(timeout=0.5)  # not confirmed: the drain goes on
    assert report.result is DrainResult.TIMEOUT and report.failed and "Connect call failed" in report.detail
    bind.start()
    assert (await cluster.sync.drain_node(timeout=5)).result is DrainResult.REMOVED
    assert bind.addresses(HOST) == {"10.0.0.2"}
    cluster.load()
    assert (await cluster.sync.reconcile()).applied == 0  # stays out while this process drains


async def test_drain_of_the_last_node_keeps_it_and_says_so(tmp_path: Path, bind: Bind) -> None:
    cluster = Cluster(tmp_path, bind)  # this process is node n1
    one_app(cluster)
    assert (await cluster.reconcile()).ok
    report = await cluster.sync.drain_node(timeout=5)
    assert report.result is DrainResult.KEPT and not report.failed, report
    assert bind.addresses(HOST) == {"10.0.0.1"}


async def test_drain_of_an_unknown_node_fails(tmp_path: Path, bind: Bind) -> None:
    cluster = Cluster(tmp_path, bind)
    cluster.sync.node_name = "passerelle-7d9f-abcde"  # a pod's host name, not a node's
    cluster.write("nodes.yaml", nodes(node("n1", "10.0.0.1"), node("n2", "10.0.0.2")))
    cluster.write("app.yaml", [host_ingress("app", HOST)])
    assert (await cluster.reconcile()).ok
    report = await cluster.sync.drain_node(timeout=5)
    assert report.result is DrainResult.UNKNOWN_NODE and report.failed, report
    assert bind.addresses(HOST) == {"10.0.0.1", "10.0.0.2"}


@pytest.mark.parametrize("algorithm", ["hmac-sha512", "hmac-sha384", "hmac-sha224", "hmac-sha1", "hmac-md5"])
async def test_other_tsig_algorithms(tmp_path: Path, algorithm: str) -> None:
    server = Bind(tmp_path / "bind", algorithm=algorithm).start()
    try:
        cluster = Cluster(tmp_path, server)
        one_app(cluster)
        outcome = await cluster.reconcile()
        assert outcome.ok and outcome.applied == 2, outcome.errors
        assert server.addresses(HOST) == {"10.0.0.1"}
    finally:
        server.stop()


async def test_an_algorithm_the_server_does_not_use_for_the_key_is_refused(
    tmp_path: Path, bind: Bind
) -> None:
    provider = {**bind.settings()["rfc2136"], "tsigAlgorithm": "hmac-sha512"}  # type: ignore[dict-item]
    cluster = Cluster(tmp_path, bind, provider={"rfc2136": provider})
    cluster.write("nodes.yaml", nodes(node("n1", "10.0.0.1")))
    outcome = await cluster.reconcile()
    assert not outcome.ok and "rejected the TSIG signature" in outcome.errors[0], outcome.errors


async def test_a_skewed_clock_is_named_as_such(
    tmp_path: Path, bind: Bind, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BIND answers BADTIME to a signature an hour off: the error points at the clocks, not the key."""
    import time
    import types

    import dns.message
    import dns.renderer

    skewed = types.SimpleNamespace(time=lambda: time.time() + 3600)
    monkeypatch.setattr(dns.renderer, "time", skewed)
    monkeypatch.setattr(dns.message, "time", skewed)
    cluster = Cluster(tmp_path, bind)
    one_app(cluster)
    outcome = await cluster.reconcile()
    assert not outcome.ok and "(BadTime)" in outcome.errors[0] and "check NTP" in outcome.errors[0], (
        outcome.errors
    )


async def test_a_multi_string_non_utf8_txt_beside_ours_is_kept_as_is(tmp_path: Path) -> None:
    """A foreign TXT value at the ownership name, two strings and a byte that is not UTF-8: the
    plan compares and rewrites it as the strings it is (the prerequisite matches; nothing is
    flattened or re-encoded)."""
    server = Bind(tmp_path / "bind", extra_records='_passerelle.app IN TXT "v=x " "\\255end"\n').start()
    try:
        cluster = Cluster(tmp_path, server)
        one_app(cluster)
        outcome = await cluster.reconcile()
        assert outcome.ok and outcome.applied == 2, outcome.errors
        answer = server.query(f"_passerelle.{HOST}", "TXT").answer
        strings = sorted(tuple(rd.strings) for rrset in answer for rd in rrset)
        assert strings == [
            (b"heritage=passerelle,passerelle/owner=cluster-a,passerelle/resource=ingress/default/app",),
            (b"v=x ", b"\xffend"),
        ]
        assert (await cluster.reconcile()).applied == 0  # read back equal: in sync
    finally:
        server.stop()


async def test_a_co_owned_name_is_not_deleted(tmp_path: Path, bind: Bind) -> None:
    """A TXT naming us and another owner: our Ingress gone, the name stays, with a warning."""
    cluster = Cluster(tmp_path, bind)
    one_app(cluster)
    assert (await cluster.reconcile()).ok
    update = dns.update.UpdateMessage(bind.zone, keyring=bind.keyring())
    update.add(f"_passerelle.{HOST}.", 30, "TXT", f'"{ownership_text("cluster-b", "ingress/default/app")}"')
    assert dns.query.tcp(update, "127.0.0.1", port=bind.port, timeout=2).rcode() == dns.rcode.NOERROR
    cluster.remove("app.yaml")
    outcome = await cluster.reconcile()
    assert outcome.ok and outcome.applied == 0
    assert bind.addresses(HOST) == {"10.0.0.1"} and len(bind.txt(f"_passerelle.{HOST}")) == 2
    assert any("as well as 'cluster-a'" in p.message for p in cluster.sync.problems())
