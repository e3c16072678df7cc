"""DNS sync under the Kubernetes provider, end to end: two `passerelle run` replicas read Nodes, their
own Pods and an Ingress from the test API server and share one Lease; only the holder writes to a
real BIND, and the other takes over (and catches up at once) when the holder is killed. A standby
that drains annotates its own Pod, and the holder takes its node out of DNS."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.integration.bind import Bind
from tests.integration.dnsfixtures import dns_settings, host_ingress, node
from tests.integration.harness import Backends, Router, service
from tests.integration.test_kube_status import LEASE, pod
from tests.integration.test_kubernetes import slice_for, wait_for, with_ns
from tests.kubeapi import KubeAPI
from tests.kubeapi.fixtures import deploy_rules

HOST = "app.example.test"
COORDINATION = "coordination.k8s.io/v1"


def holder(api: KubeAPI) -> str:
    lease = api.get(COORDINATION, "Lease", "default", "passerelle") or {}
    return str((lease.get("spec") or {}).get("holderIdentity") or "")


def own_pod(on: str, grace_period: int | None = None) -> dict[str, Any]:
    """The router's own pod on node `on`, Running and Ready (what DNS sync requires by default),
    with a terminationGracePeriodSeconds when given (the API server would default it to 30)."""
    obj = pod(f"passerelle-{on}", on)
    obj["status"]["phase"] = "Running"
    if grace_period is not None:
        obj["spec"]["terminationGracePeriodSeconds"] = grace_period
    return obj


def set_ready(api: KubeAPI, name: str, ready: bool) -> None:
    status = {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    api.patch("v1", "Node", "", name, {"status": status}, status=True)


def cluster(api: KubeAPI, backends: Backends, grace_period: int | None = None) -> None:
    """Three ingress nodes with a ready router pod each, a worker node, and two Ingresses."""
    for name, address in (("n1", "10.0.0.1"), ("n2", "10.0.0.2"), ("n3", "10.0.0.3")):
        api.create(node(name, address))
        api.create(own_pod(name, grace_period))
    api.create(node("w1", "10.0.0.9", role="worker"))  # not selected: never in DNS
    api.create(own_pod("w1"))
    api.create(with_ns(service("web")))
    api.create(slice_for("web", backends.whoami("dns")))
    api.create(with_ns(host_ingress("app", HOST)))
    api.create(with_ns(host_ingress("elsewhere", "app.other.test")))  # not in a managed zone


def replica(
    api: KubeAPI,
    bind: Bind,
    tmp_path: Path,
    n: int,
    *,
    sigterm_drains: bool = False,
    config: dict[str, Any] | None = None,
    **sync: Any,
) -> Router:
    """`passerelle run` with the Kubernetes provider (token tN, identity replica-N) and dnsSync,
    as the pod passerelle-nN (the downward API's $POD_NAME and $POD_NAMESPACE). SIGTERM drains
    only with `sigterm_drains` (onSigterm left to its default): the other tests stop at once."""
    if not sigterm_drains:
        sync["drain"] = {"onSigterm": False, **sync.get("drain", {})}
    kube = {
        "kubeconfig": str(api.kubeconfig(tmp_path / f"kubeconfig{n}", token=f"t{n}")),
        "throttle": "0.1s",
        "leaderElection": {"identity": f"replica-{n}", **LEASE},
        # A fixed status: a new leader's status writer changes no Ingress (which would wake DNS
        # sync by itself), so only the Lease can make DNS sync catch up at once.
        "ingressEndpoint": {"ip": ["192.0.2.10"]},
    }
    settings: dict[str, Any] = {
        "providers": {"kubernetes": kube},
        "dnsSync": dns_settings(bind, **{"ttl": 5, "nodeName": f"n{n}", **sync}),
        **(config or {}),
    }
    env = {"POD_NAME": f"passerelle-n{n}", "POD_NAMESPACE": "default"}
    return Router(tmp_path / f"r{n}", config=settings, env=env)


def test_only_the_lease_holder_writes_dns_and_the_other_takes_over(
    backends: Backends, kubeapi: Callable[..., KubeAPI], bind: Bind, tmp_path: Path
) -> None:
    api = kubeapi(tokens={"t1": "replica-1", "t2": "replica-2"})
    cluster(api, backends)
    routers: dict[str, Router] = {}
    try:
        for n in (1, 2):
            routers[f"replica-{n}"] = replica(api, bind, tmp_path, n).start()
        wait_for(lambda: bind.addresses(HOST) == {"10.0.0.1", "10.0.0.2", "10.0.0.3"}, "the nodes in DNS")
        assert bind.addresses("app.other.test") == set()
        leader = holder(api)
        [standby] = set(routers) - {leader}
        wait_for(lambda: routers[leader].api("/api/dnssync")["leader"], "the holder knows it leads")
        led = routers[leader].api("/api/dnssync")
        assert led["healthy"] and led["changes_total"] >= 2 and led["names"] == 1  # the A set and its TXT
        assert led["addresses"] == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
        waiting = routers[standby].api("/api/dnssync")
        assert not waiting["leader"] and waiting["reconciles_total"] == 0 and waiting["changes_total"] == 0

        set_ready(api, "n3", False)  # a node made NotReady leaves DNS
        wait_for(lambda: bind.addresses(HOST) == {"10.0.0.1", "10.0.0.2"}, "a NotReady node leaves DNS")
        assert routers[standby].api("/api/dnssync")["changes_total"] == 0  # still only the holder writes

        dead = routers.pop(leader)
        assert dead.process is not None
        dead.process.kill()  # no clean stop: the Lease is not released, it must expire
        dead.process.wait()
        dead.stop()
        set_ready(api, "n3", True)  # while nobody leads: the standby sees it but must not write
        time.sleep(0.5)
        seen, standby_changes = bind.addresses(HOST), routers[standby].api("/api/dnssync")["changes_total"]
        assert holder(api) == leader  # read after DNS: the 3 s Lease had not expired when DNS was read
        assert seen == {"10.0.0.1", "10.0.0.2"} and standby_changes == 0
        wait_for(lambda: holder(api) == standby, "the standby takes the Lease", timeout=15)
        # It reconciles on gaining the Lease (leadership.on_change), not at its 60 s interval.
        wait_for(
            lambda: bind.addresses(HOST) == {"10.0.0.1", "10.0.0.2", "10.0.0.3"}, "the new leader writes"
        )

        api.patch("v1", "Node", "", "n2", {"spec": {"unschedulable": True}})  # kubectl cordon n2
        wait_for(lambda: bind.addresses(HOST) == {"10.0.0.1", "10.0.0.3"}, "a cordoned node leaves DNS")
        took = routers[standby].api("/api/dnssync")
        assert took["leader"] and took["healthy"] and took["changes_total"] >= 2
    finally:
        codes = [router.stop() for router in routers.values()]
    assert codes == [0]
    assert holder(api) == ""  # the survivor released the Lease on a clean stop


def test_a_leader_that_cannot_renew_the_lease_stops_writing_dns(
    backends: Backends, kubeapi: Callable[..., KubeAPI], bind: Bind, tmp_path: Path
) -> None:
    api = kubeapi(tokens={"t1": "replica-1"})
    cluster(api, backends)
    router = replica(api, bind, tmp_path, 1).start()
    try:
        wait_for(lambda: bind.addresses(HOST) == {"10.0.0.1", "10.0.0.2", "10.0.0.3"}, "the nodes in DNS")
        assert router.api("/api/dnssync")["leader"]
        api.inject(500, verb="update", resource="leases", times=10_000)  # the Lease cannot be renewed
        # Losing the Lease wakes DNS sync too (on_change), so its health says so within the deadline.
        wait_for(lambda: not router.api("/api/dnssync")["leader"], "DNS sync knows it no longer leads")
        changes = router.api("/api/dnssync")["changes_total"]
        set_ready(api, "n3", False)
        time.sleep(1.5)  # the watch event, the 0.1 s throttle and coalesce, a reconcile, many times over
        assert bind.addresses(HOST) == {"10.0.0.1", "10.0.0.2", "10.0.0.3"}  # not the leader: no write
        assert router.api("/api/dnssync")["changes_total"] == changes
        api._run(api._injected.clear)  # the API accepts Lease writes again
        wait_for(lambda: bind.addresses(HOST) == {"10.0.0.1", "10.0.0.2"}, "the leader again catches up")
    finally:
        assert router.stop() == 0


def test_a_draining_standby_annotates_its_pod_and_the_leader_takes_its_node_out_of_dns(
    backends: Backends, kubeapi: Callable[..., KubeAPI], bind: Bind, tmp_path: Path
) -> None:
    rules = deploy_rules("default")  # both replicas under deploy/10-rbac.yaml (pods: patch)
    api = kubeapi(
        tokens={"t1": "replica-1", "t2": "replica-2"}, rules={"replica-1": rules, "replica-2": rules}
    )
    cluster(api, backends)
    drain = {"acceptGrace": "1s", "timeout": "20s"}
    routers = {f"replica-{n}": replica(api, bind, tmp_path, n, ttl=2, drain=drain).start() for n in (1, 2)}
    try:
        wait_for(lambda: bind.addresses(HOST) == {"10.0.0.1", "10.0.0.2", "10.0.0.3"}, "the nodes in DNS")
        wait_for(lambda: bool(holder(api)), "a replica holds the Lease")
        leader = holder(api)
        [standby] = set(routers) - {leader}
        n = standby.removeprefix("replica-")
        address, pod_name = f"10.0.0.{n}", f"passerelle-n{n}"
        wait_for(lambda: routers[leader].api("/api/dnssync")["leader"], "the holder knows it leads")
        before = routers[leader].api("/api/dnssync")["changes_total"]
        draining = routers[standby]
        assert draining.process is not None
        command = subprocess.Popen(
            [sys.executable, "-m", "passerelle", "drain", "-c", str(draining.config_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        out_of_dns = ping_503 = None
        dns_at_503: set[str] = set()
        standby_changes: list[int] = []
        deadline = time.monotonic() + 40
        while draining.process.poll() is None and time.monotonic() < deadline:
            now = time.monotonic()
            if out_of_dns is None and address not in bind.addresses(HOST):
                out_of_dns = now
            try:
                if ping_503 is None and draining._api.get("/ping").status_code == 503:
                    ping_503, dns_at_503 = now, bind.addresses(HOST)
                standby_changes.append(draining.api("/api/dnssync")["changes_total"])
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        output = command.communicate(timeout=10)[0].decode()
        assert command.returncode == 0, output
        assert "drain: dns ok (removed): node" in output, output
        assert out_of_dns is not None and ping_503 is not None and out_of_dns <= ping_503, output
        assert address not in dns_at_503 and dns_at_503, dns_at_503  # out of DNS before /ping said 503
        assert bind.addresses(HOST) == {"10.0.0.1", "10.0.0.2", "10.0.0.3"} - {address}
        # The standby only annotated its own pod; the DNS change is the leader's.
        own = api.get("v1", "Pod", "default", pod_name) or {}
        assert own["metadata"]["annotations"]["passerelle.io/draining"] == "true"
        patches = [r for r in api.requests() if r.verb == "patch" and r.resource == "pods"]
        assert [(r.user, r.path.rpartition("/")[2], r.status) for r in patches] == [(standby, pod_name, 200)]
        assert standby_changes and set(standby_changes) == {0}
        assert routers[leader].api("/api/dnssync")["changes_total"] > before
        denied = [r for r in api.requests() if r.status in (401, 403)]
        assert not denied, denied[:5]
    finally:
        codes = [router.stop() for router in routers.values()]
    assert codes == [0, 0]


def test_a_pod_annotation_that_cannot_be_written_fails_the_drain(
    backends: Backends, kubeapi: Callable[..., KubeAPI], bind: Bind, tmp_path: Path
) -> None:
    """The API refuses the patch: `passerelle drain` says so and exits 1; the drain still ends (a lone
    replica leads, so it removes its own node)."""
    api = kubeapi(tokens={"t1": "replica-1"})
    cluster(api, backends)
    router = replica(api, bind, tmp_path, 1, ttl=1, drain={"acceptGrace": "0s", "timeout": "10s"}).start()
    try:
        wait_for(lambda: bind.addresses(HOST) == {"10.0.0.1", "10.0.0.2", "10.0.0.3"}, "the nodes in DNS")
        api.inject(403, verb="patch", resource="pods", times=10)
        done = subprocess.run(
            [sys.executable, "-m", "passerelle", "drain", "-c", str(router.config_path)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 1, done
        assert "drain: pod annotation FAILED: annotating pod default/passerelle-n1" in done.stderr, done
        assert done.stdout.splitlines()[-1] == "drain: router stopped", done.stdout
        assert bind.addresses(HOST) == {"10.0.0.2", "10.0.0.3"}
        own = api.get("v1", "Pod", "default", "passerelle-n1") or {}
        assert "passerelle.io/draining" not in ((own.get("metadata") or {}).get("annotations") or {})
    finally:
        router.stop()
