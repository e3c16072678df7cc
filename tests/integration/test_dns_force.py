"""`passerelle dnssync --force` and `--dry-run` in a cluster: two replicas under the Kubernetes
provider (the test API server) writing to a real BIND. A mass deletion is withheld by the guard
(maxDeletePercent); `--dry-run` in any pod shows it; `--force` in a standby's pod is refused and
names the Lease holder; in the holder's pod it lets one reconcile through. The guard's trips and
DNS sync's health are on /metrics."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.bind import Bind
from tests.integration.dnsfixtures import host_ingress, node
from tests.integration.harness import Backends, Router, service
from tests.integration.test_dns_kube import holder, own_pod, replica
from tests.integration.test_kubernetes import slice_for, wait_for, with_ns
from tests.kubeapi import KubeAPI

HOSTS = [f"app{i}.example.test" for i in range(12)]  # the guard needs 10 or more owned names


def dnssync(router: Router, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "passerelle", "dnssync", "-c", str(router.config_path), *flags],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def metrics(router: Router) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{router.api_port}/metrics", timeout=5).text
    return {
        sample.name + (f"{{{','.join(f'{k}={v}' for k, v in sample.labels.items())}}}" if sample.labels else ""): sample.value
        for family in text_string_to_metric_families(text)
        if family.name.startswith("passerelle_dnssync")
        for sample in family.samples
    }  # fmt: skip


def test_force_lets_one_reconcile_through_the_guard_on_the_leader_only(
    backends: Backends, kubeapi: Callable[..., KubeAPI], bind: Bind, tmp_path: Path
) -> None:
    api = kubeapi(tokens={"t1": "replica-1", "t2": "replica-2"})
    for name, address in (("n1", "10.0.0.1"), ("n2", "10.0.0.2")):
        api.create(node(name, address))
        api.create(own_pod(name))
    api.create(with_ns(service("web")))
    api.create(slice_for("web", backends.whoami("force")))
    for i, host in enumerate(HOSTS):
        api.create(with_ns(host_ingress(f"app{i}", host)))
    routers = {f"replica-{n}": replica(api, bind, tmp_path, n).start() for n in (1, 2)}
    try:
        wait_for(
            lambda: all(bind.addresses(h) == {"10.0.0.1", "10.0.0.2"} for h in HOSTS), "the names in DNS"
        )
        wait_for(lambda: bool(holder(api)), "a replica holds the Lease")
        leader = routers[holder(api)]
        [standby] = [r for name, r in routers.items() if name != holder(api)]
        wait_for(lambda: leader.api("/api/dnssync")["leader"], "the holder knows it leads")

        refused = dnssync(leader)  # in a cluster the leader reconciles by itself
        assert refused.returncode == 2 and "give --dry-run or --force" in refused.stderr, refused

        for i in range(1, 12):  # 11 of the 12 names at once: past maxDeletePercent (30 %)
            api.delete("networking.k8s.io/v1", "Ingress", "default", f"app{i}")
        leader.wait_problem(
            "DnsSync cluster-a", "deleting 11 of the 12 owned names at once exceeds", timeout=10
        )
        assert bind.addresses(HOSTS[5]) == {"10.0.0.1", "10.0.0.2"}  # withheld
        assert leader.api("/api/dnssync")["withheld"] == 11
        seen = metrics(leader)
        assert (
            seen["passerelle_dnssync_deletions_withheld_total"] >= 1
            and seen["passerelle_dnssync_leader"] == 1
        )
        assert seen["passerelle_dnssync_names"] == 1 and seen["passerelle_dnssync_addresses"] == 2
        assert seen["passerelle_dnssync_last_success"] > 0 and seen["passerelle_dnssync_healthy"] == 1

        plan = dnssync(standby, "--dry-run")  # any replica reads and plans; nothing is written
        assert plan.returncode == 0, plan
        assert (
            "(dry run: nothing written)" in plan.stdout and "deleting 11 of the 12 owned names" in plan.stdout
        )
        assert standby.api("/api/dnssync")["changes_total"] == 0

        elsewhere = dnssync(standby, "--force")
        assert elsewhere.returncode == 2, elsewhere
        assert f"this replica does not write DNS, the Lease holder {holder(api)!r} does" in elsewhere.stderr
        assert bind.addresses(HOSTS[5]) == {"10.0.0.1", "10.0.0.2"}

        forced = dnssync(leader, "--force")
        assert forced.returncode == 0, forced
        assert "(forced)" in forced.stdout and "applied 22 changes" in forced.stdout, (
            forced.stdout
        )  # A + TXT each
        assert all(bind.addresses(h) == set() for h in HOSTS[1:])
        assert bind.addresses(HOSTS[0]) == {"10.0.0.1", "10.0.0.2"}
        assert leader.api("/api/dnssync")["withheld"] == 0  # and the next reconcile has nothing left to do
    finally:
        codes = [router.stop() for router in routers.values()]
    assert codes == [0, 0]
