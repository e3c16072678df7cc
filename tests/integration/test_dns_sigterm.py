"""A DaemonSet's rolling update as the kubelet does it, with SIGTERM: two `passerelle run` replicas
under the Kubernetes provider (the test API server, deploy/'s RBAC) with DNS sync to a real BIND.
SIGTERM drains by default there: the node leaves DNS before /ping turns 503, in-flight requests
finish, the process exits 0 within the pod's grace period. The leader's SIGTERM releases its Lease
and the other replica takes over DNS writes at once. At start, a pod whose grace period is too
short for the drain gets a warning Problem."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.integration.bind import Bind
from tests.integration.dnsfixtures import slow_request
from tests.integration.harness import Backends, Router
from tests.integration.test_dns_kube import HOST, cluster, holder, own_pod, replica
from tests.integration.test_kubernetes import wait_for
from tests.kubeapi import KubeAPI
from tests.kubeapi.fixtures import deploy_rules

TTL = 2
DRAIN = {"timeout": "15s", "acceptGrace": "2s"}
GRACE_TIMEOUT = 4
GRACE_PERIOD = 40  # the pods' terminationGracePeriodSeconds: 15 + 2 + 2 + 4 = 23 s, and room to exit


@dataclass
class Stop:
    """A SIGTERM'd replica seen from outside (time.monotonic)."""

    out_of_dns: float | None = None
    ping_503: float | None = None
    dns_at_503: set[str] = field(default_factory=set)
    exited: float | None = None
    code: int | None = None
    in_flight: list[int | str] = field(default_factory=list)  # started while /ping was 503


def sigterm(router: Router, bind: Bind, address: str) -> Stop:
    """SIGTERM `router`; until it exits, poll BIND and its /ping, and send a slow request once
    /ping is 503 (it must still be answered: the listeners close acceptGrace later)."""
    assert router.process is not None
    seen, slow = Stop(), []

    api = httpx.Client(base_url=f"http://127.0.0.1:{router.api_port}", timeout=1)
    sent = time.monotonic()
    router.process.send_signal(signal.SIGTERM)
    while router.process.poll() is None and time.monotonic() < sent + GRACE_PERIOD:
        now = time.monotonic()
        if seen.out_of_dns is None and address not in bind.addresses(HOST):
            seen.out_of_dns = now
        try:
            if seen.ping_503 is None and api.get("/ping").status_code == 503:
                seen.ping_503, seen.dns_at_503 = now, bind.addresses(HOST)
                slow.append(slow_request(router, HOST, seen.in_flight, timeout=15))
        except httpx.TransportError:
            pass
        time.sleep(0.02)
    seen.code = router.process.poll()
    seen.exited = time.monotonic() - sent if seen.code is not None else None  # seconds after SIGTERM
    for thread in slow:
        thread.join(timeout=15)
    api.close()
    return seen


def check(seen: Stop, address: str, router: Router) -> None:
    assert seen.code == 0 and seen.exited is not None, (seen, router.log())  # within the grace period
    assert seen.out_of_dns is not None and seen.ping_503 is not None, seen
    assert seen.out_of_dns <= seen.ping_503, seen
    assert seen.dns_at_503 and address not in seen.dns_at_503, seen  # out of DNS before the 503
    assert seen.in_flight == [200], seen
    assert "INFO passerelle stopped in " in router.log()  # each step's time, for a slow stop


def test_sigterm_drains_a_standby_then_the_leader_whose_lease_passes_on(
    backends: Backends, kubeapi: Callable[..., KubeAPI], bind: Bind, tmp_path: Path
) -> None:
    rules = deploy_rules("default")  # replica() runs its routers as pods of "default"
    api = kubeapi(
        tokens={f"t{n}": f"replica-{n}" for n in (1, 2, 3)}, rules={f"replica-{n}": rules for n in (1, 2, 3)}
    )
    cluster(api, backends, grace_period=GRACE_PERIOD)
    config = {"graceTimeout": f"{GRACE_TIMEOUT}s"}
    routers = {
        f"replica-{n}": replica(
            api, bind, tmp_path, n, sigterm_drains=True, config=config, ttl=TTL, drain=DRAIN
        )
        for n in (1, 2)
    }
    for router in routers.values():
        router.start()
    try:
        wait_for(lambda: bind.addresses(HOST) == {"10.0.0.1", "10.0.0.2", "10.0.0.3"}, "the nodes in DNS")
        wait_for(lambda: bool(holder(api)), "a replica holds the Lease")
        leader = holder(api)
        [standby] = set(routers) - {leader}
        wait_for(lambda: routers[leader].api("/api/dnssync")["leader"], "the holder knows it leads")
        for router in routers.values():  # 40 s covers the drain: no Problem, a line that says so
            wait_for(lambda: "covers the longest stop, 23s" in router.log(), "the grace period checked")  # noqa: B023
            assert not [p for p in router.problems() if p["object"].startswith("Pod ")]

        # 1. The standby: it annotates its pod, the leader takes its node out of DNS.
        n = standby.removeprefix("replica-")
        seen = sigterm(routers[standby], bind, f"10.0.0.{n}")
        check(seen, f"10.0.0.{n}", routers[standby])
        pod = api.get("v1", "Pod", "default", f"passerelle-n{n}") or {}
        assert pod["metadata"]["annotations"]["passerelle.io/draining"] == "true"
        writes = [
            r for r in api.requests()
            if r.user == standby and r.verb in ("patch", "update", "create") and r.status < 300
        ]  # fmt: skip
        assert [(r.verb, r.resource) for r in writes] == [("patch", "pods")]  # no Lease, no DNS: the pod mark
        assert "drain: DNS removed: node" in routers[standby].log()

        # The DaemonSet's next pod on that node: a new pod object, a new replica (identity replica-3).
        api.delete("v1", "Pod", "default", f"passerelle-n{n}")
        new_pod = own_pod(f"n{n}", GRACE_PERIOD)
        new_pod["metadata"]["name"] = f"passerelle-n{n}-b"
        api.create(new_pod)
        successor = replica(api, bind, tmp_path, 3, config=config, ttl=TTL, nodeName=f"n{n}")
        successor.env["POD_NAME"] = f"passerelle-n{n}-b"
        successor.start()
        routers["replica-3"] = successor
        wait_for(
            lambda: bind.addresses(HOST) == {"10.0.0.1", "10.0.0.2", "10.0.0.3"}, "the new pod's node back"
        )

        # 2. The leader: it removes its own node, and releases the Lease as it exits.
        m = leader.removeprefix("replica-")
        seen = sigterm(routers[leader], bind, f"10.0.0.{m}")
        check(seen, f"10.0.0.{m}", routers[leader])
        assert holder(api) in ("", "replica-3")  # released: a Lease left to expire would still name it
        assert f"{leader} is no longer the leader" in routers[leader].log()
        wait_for(lambda: holder(api) == "replica-3", "the other replica takes the Lease")
        wait_for(lambda: successor.api("/api/dnssync")["leader"], "it knows it leads")
        api.patch("v1", "Node", "", "n3", {"spec": {"unschedulable": True}})  # kubectl cordon n3
        left = {"10.0.0.1", "10.0.0.2"} - {f"10.0.0.{m}"}
        wait_for(lambda: bind.addresses(HOST) == left, "the new leader writes DNS (n3 cordoned)")
        assert successor.api("/api/dnssync")["changes_total"] >= 1
    finally:
        codes = [router.stop() for router in routers.values()]
    assert codes == [0, 0, 0]


def test_a_grace_period_too_short_for_the_drain_is_a_problem_on_the_pod(
    backends: Backends, kubeapi: Callable[..., KubeAPI], bind: Bind, tmp_path: Path
) -> None:
    rules = deploy_rules("default")  # `get` on pods: the router reads its own
    api = kubeapi(tokens={"t1": "replica-1"}, rules={"replica-1": rules})
    cluster(api, backends, grace_period=30)
    router = replica(api, bind, tmp_path, 1, sigterm_drains=True, ttl=60).start()  # 60 + 60 + 10 + 2 s
    try:
        router.wait_problem("Pod default/passerelle-n1", "terminationGracePeriodSeconds 30 is shorter than the "
                            "longest stop, 132s (dnsSync.drain.timeout 60s + dnsSync.drain.dnsWait 60s + "
                            "dnsSync.drain.acceptGrace 10s + graceTimeout 2s)")  # fmt: skip
        assert "raise terminationGracePeriodSeconds to at least 132" in router.log()
    finally:
        assert router.process is not None
        router.process.send_signal(signal.SIGINT)  # SIGINT stops at once, without the drain
        assert router.process.wait(timeout=10) == 0
        router.stop()
