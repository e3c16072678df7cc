"""Ingress status and leader election against the test API server: only the leader writes, and
another replica takes over when it dies or cannot renew."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from passerelle.kube.client import ApiClient
from passerelle.kube.ingress import IngressOptions
from passerelle.kube.lease import Leadership
from passerelle.kube.snapshot import ClusterSnapshot
from passerelle.kube.status import EndpointPolicy, StatusWriter
from tests.integration.harness import Backends, Router, ingress, rule, service
from tests.integration.test_kubernetes import slice_for, wait_for, with_ns
from tests.kubeapi import KubeAPI
from tests.kubeapi.fixtures import deploy_rules

NET = "networking.k8s.io/v1"
LEASE = {"leaseDuration": "3s", "renewDeadline": "2s", "retryPeriod": "0.5s"}


def node(name: str, ip: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"role": "ingress"}},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "addresses": [{"type": "InternalIP", "address": ip}],
        },
    }


def pod(name: str, on: str, ready: bool = True) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "default",
            "labels": {"app.kubernetes.io/name": "passerelle"},
        },
        "spec": {"nodeName": on},
        "status": {
            "phase": "Running",  # a pod the kubelet runs; status, like DNS sync, asks for it
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def published(api: KubeAPI, name: str = "app") -> list[str]:
    obj = api.get(NET, "Ingress", "default", name) or {}
    return [
        e.get("ip", "") for e in ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    ]


def status_writers(api: KubeAPI) -> set[str]:
    return {r.user for r in api.requests() if r.resource == "ingresses/status" and r.status < 400}


def test_only_the_leader_writes_status_and_the_other_takes_over_when_it_dies(
    backends: Backends, kubeapi: Callable[..., KubeAPI], tmp_path: Path
) -> None:
    api = kubeapi(tokens={"t1": "replica-1", "t2": "replica-2"})
    api.create(node("n1", "192.0.2.1"))
    api.create(node("n2", "192.0.2.2"))
    api.create(node("worker", "192.0.2.99") | {"metadata": {"name": "worker", "labels": {"role": "worker"}}})
    for name, on in (("p1", "n1"), ("p2", "n2"), ("p3", "worker")):
        api.create(pod(name, on))
    api.create(with_ns(service("app")))
    api.create(slice_for("app", backends.whoami("status")))
    api.create(with_ns(ingress("app", [rule("app.test", ("/", "Prefix", "app"))])))
    routers = {}
    try:
        for n in (1, 2):
            kubeconfig = api.kubeconfig(tmp_path / f"kubeconfig{n}", token=f"t{n}")
            settings = {
                "kubeconfig": str(kubeconfig),
                "throttle": "0.1s",
                "leaderElection": {"identity": f"replica-{n}", **LEASE},
            }
            routers[f"replica-{n}"] = Router(
                tmp_path / f"r{n}", config={"providers": {"kubernetes": settings}}
            ).start()
        wait_for(lambda: published(api) == ["192.0.2.1", "192.0.2.2"], "status lists the ingress nodes")
        lease = api.get("coordination.k8s.io/v1", "Lease", "default", "passerelle")
        assert lease is not None
        leader = lease["spec"]["holderIdentity"]
        assert status_writers(api) == {leader}
        api.replace(
            pod("p2", "n2", ready=False) | {"metadata": api.get("v1", "Pod", "default", "p2")["metadata"]},
            status=True,
        )  # type: ignore[index]
        wait_for(lambda: published(api) == ["192.0.2.1"], "a node whose router is not ready is left out")
        assert status_writers(api) == {leader}
        dead = routers.pop(leader)
        assert dead.process is not None
        dead.process.kill()  # no clean stop: the Lease is not released, it must expire
        killed = time.monotonic()
        dead.process.wait()
        dead.stop()
        follower = next(iter(routers))
        wait_for(
            lambda: (
                (api.get("coordination.k8s.io/v1", "Lease", "default", "passerelle") or {})["spec"][
                    "holderIdentity"
                ]
                == follower
            ),
            "the follower takes the Lease",
            timeout=15,
        )
        took_over = time.monotonic() - killed
        api.replace(
            pod("p2", "n2") | {"metadata": api.get("v1", "Pod", "default", "p2")["metadata"]}, status=True
        )  # type: ignore[index]
        wait_for(lambda: published(api) == ["192.0.2.1", "192.0.2.2"], "the new leader writes")
        assert status_writers(api) == {leader, follower}
        assert took_over < 3 * 3, f"took {took_over:.1f}s for a 3s lease"  # generous: a loaded machine
    finally:
        codes = [router.stop() for router in routers.values()]
    assert codes == [0]  # the survivor stops cleanly (and releases the Lease)
    assert (api.get("coordination.k8s.io/v1", "Lease", "default", "passerelle") or {})["spec"][
        "holderIdentity"
    ] == ""


async def test_a_leader_that_cannot_renew_stops_leading_before_another_takes_over(
    kubeapi: Callable[..., KubeAPI], tmp_path: Path
) -> None:
    api = kubeapi(tokens={"t1": "one", "t2": "two"})
    clients = [ApiClient.connect(str(api.kubeconfig(tmp_path / f"k{n}", token=f"t{n}"))) for n in (1, 2)]
    one, two = (
        Leadership(
            c,
            namespace="default",
            name="test",
            identity=i,
            lease_duration=1.5,
            renew_deadline=1.0,
            retry_period=0.2,
        )
        for c, i in zip(clients, ("one", "two"), strict=True)
    )
    both: list[float] = []  # moments when both thought they led: must stay empty

    async def sample() -> None:
        while True:
            if one.is_leader() and two.is_leader():
                both.append(asyncio.get_running_loop().time())
            await asyncio.sleep(0.005)

    async with asyncio.TaskGroup() as tasks:
        sampler = tasks.create_task(sample())
        first = tasks.create_task(one.run())
        async with asyncio.timeout(10):
            while not one.is_leader():
                await asyncio.sleep(0.05)
        second = tasks.create_task(two.run())
        await asyncio.sleep(1.2)  # two renewals
        assert one.is_leader() and not two.is_leader()
        api.inject(500, verb="update", resource="leases", times=1000)  # nobody can write the Lease now
        lost = asyncio.get_running_loop().time()
        async with asyncio.timeout(10):
            while one.is_leader():
                await asyncio.sleep(0.02)
        assert (
            asyncio.get_running_loop().time() - lost <= 1.0 + 0.2 + 0.3
        )  # within the renew deadline (+ a retry)
        assert not two.is_leader()
        api._run(api._injected.clear)  # the API accepts writes again: whoever tries first leads
        async with asyncio.timeout(10):
            while not (one.is_leader() or two.is_leader()):
                await asyncio.sleep(0.05)
        await asyncio.sleep(2.0)  # the winner renews, the other watches: still never both
        assert not (one.is_leader() and two.is_leader())
        first.cancel()
        second.cancel()
        sampler.cancel()
    assert not both, f"both led at {both[:3]}"
    for c in clients:
        await c.aclose()
    lease = api.get("coordination.k8s.io/v1", "Lease", "default", "test")
    assert lease is not None and lease["spec"]["holderIdentity"] == ""  # released on stop


def test_problems_become_events_on_their_objects_once_under_the_deployed_rbac(
    backends: Backends, kubeapi: Callable[..., KubeAPI], tmp_path: Path
) -> None:
    api = kubeapi(rules={"tester": deploy_rules("default")}, crds={"traefik.io", "gateway.networking.k8s.io"})
    api.create(node("n1", "192.0.2.1"))
    api.create(pod("p1", "n1"))
    api.create(with_ns(service("app")))
    api.create(slice_for("app", backends.whoami("events")))
    good = with_ns(ingress("good", [rule("good.test", ("/", "Prefix", "app"))]))
    good["metadata"]["annotations"] = {"traefik.ingress.kubernetes.io/router.entrypoints": "web"}  # honoured
    api.create(good)
    api.create(with_ns(ingress("bad", [rule("bad.test", ("/", "Prefix", "missing"))])))
    settings = {
        "kubeconfig": str(api.kubeconfig(tmp_path / "kubeconfig")),
        "throttle": "0.1s",
        "leaderElection": LEASE,
    }
    router = Router(tmp_path / "r", config={"providers": {"kubernetes": settings}}).start()
    try:

        def events_on(name: str) -> list[dict[str, Any]]:
            return [e for e in api.objects("v1", "Event") if e["involvedObject"]["name"] == name]

        wait_for(lambda: bool(events_on("bad")), "an Event on the Ingress with a problem")
        for i in range(3):  # new versions that repeat the same problem
            version = router.version()
            api.create(with_ns(ingress(f"more{i}", [rule(f"more{i}.test", ("/", "Prefix", "app"))])))
            router.wait_version(version)
        time.sleep(1.5)  # a recorder round or two
        [event] = events_on("bad")
        assert event["type"] == "Warning" and event["reason"] == "NotServed" and event["count"] == 1
        assert "missing" in event["message"] and event["involvedObject"]["uid"]
        assert events_on("good") == [] and not any(events_on(f"more{i}") for i in range(3))
        wait_for(lambda: published(api, "good") == ["192.0.2.1"], "status written under the deployed RBAC")
        denied = [r for r in api.requests() if r.status in (401, 403)]
        assert not denied, denied[:5]  # the code uses nothing deploy/10-rbac.yaml does not grant
    finally:
        assert router.stop() == 0


def test_ingresses_naming_many_missing_secrets_never_starve_the_lease(
    backends: Backends, kubeapi: Callable[..., KubeAPI], tmp_path: Path
) -> None:
    """A watch per missing Secret once filled the 100-connection pool and the Lease GETs timed
    out: now those Secrets are read by GET and the Lease has a pool of its own."""
    api = kubeapi()
    api.create(node("n1", "192.0.2.1"))
    api.create(pod("p1", "n1"))
    api.create(with_ns(service("app")))
    api.create(slice_for("app", backends.whoami("many")))
    count = 120
    for i in range(count):
        body = ingress(f"app{i}", [rule(f"app{i}.test", ("/", "Prefix", "app"))])
        body["spec"]["tls"] = [{"hosts": [f"app{i}.test"], "secretName": f"missing{i}"}]
        api.create(with_ns(body))
    settings = {
        "kubeconfig": str(api.kubeconfig(tmp_path / "kubeconfig")),
        "throttle": "0.1s",
        "leaderElection": {"identity": "only", **LEASE},
    }
    router = Router(tmp_path / "r", config={"providers": {"kubernetes": settings}}).start()
    lease = lambda: api.get("coordination.k8s.io/v1", "Lease", "default", "passerelle") or {}  # noqa: E731
    try:
        wait_for(lambda: lease().get("spec", {}).get("holderIdentity") == "only", "leads", timeout=20)
        wait_for(lambda: published(api, f"app{count - 1}") == ["192.0.2.1"], "status written", timeout=30)
        renewals, deadline = set(), time.monotonic() + 5  # 10 retry periods, 2.5 renew deadlines
        while time.monotonic() < deadline:
            spec = lease()["spec"]
            assert spec["holderIdentity"] == "only"
            renewals.add(spec["renewTime"])
            time.sleep(0.1)
        assert len(renewals) >= 5, renewals  # renewed all along (every 0.5s when nothing waits)
        failed = [r for r in api.requests() if r.resource == "leases" and r.status >= 400 and r.status != 404]
        assert not failed, failed[:3]
        gets = {r.path for r in api.requests() if r.resource == "secrets" and r.verb == "get"}
        assert len(gets) == count  # each missing Secret read alone...
        assert not [r for r in api.requests() if r.verb == "watch" and "metadata.name" in r.query]
    finally:
        assert router.stop() == 0


def test_a_new_leader_bumps_the_event_an_earlier_one_left_and_status_is_only_for_our_classes(
    backends: Backends, kubeapi: Callable[..., KubeAPI], tmp_path: Path
) -> None:
    api = kubeapi(rules={"tester": deploy_rules("default")})
    api.create(node("n1", "192.0.2.1"))
    api.create(pod("p1", "n1"))
    api.create(with_ns(service("app")))
    api.create(slice_for("app", backends.whoami("classes")))
    for name, controller in (
        ("passerelle", "passerelle.io/ingress-controller"),
        ("traefik", "traefik.io/ingress-controller"),
    ):
        api.create(
            {
                "apiVersion": NET,
                "kind": "IngressClass",
                "metadata": {"name": name},
                "spec": {"controller": controller},
            }
        )
    mine = with_ns(
        ingress("mine", [rule("mine.test", ("/", "Prefix", "app"))], ingressClassName="passerelle")
    )
    theirs = with_ns(
        ingress("theirs", [rule("theirs.test", ("/", "Prefix", "app"))], ingressClassName="traefik")
    )
    api.create(mine)
    api.create(theirs)  # served (ingressClasses has "traefik") but Traefik's to write status on
    api.create(
        with_ns(ingress("bad", [rule("bad.test", ("/", "Prefix", "missing"))], ingressClassName="passerelle"))
    )
    settings = {
        "kubeconfig": str(api.kubeconfig(tmp_path / "kubeconfig")),
        "throttle": "0.1s",
        "leaderElection": LEASE,
    }  # fmt: skip

    def events_on(name: str) -> list[dict[str, Any]]:
        return [e for e in api.objects("v1", "Event") if e["involvedObject"]["name"] == name]

    first = Router(tmp_path / "r1", config={"providers": {"kubernetes": settings}}).start()
    try:
        wait_for(lambda: published(api, "mine") == ["192.0.2.1"], "status on our class's Ingress")
        wait_for(lambda: bool(events_on("bad")), "an Event on the Ingress with a problem")
        api.replace(
            pod("p1", "n1", ready=False) | {"metadata": api.get("v1", "Pod", "default", "p1")["metadata"]},
            status=True,
        )  # type: ignore[index]
        time.sleep(0.3)
        api.replace(
            pod("p1", "n1") | {"metadata": api.get("v1", "Pod", "default", "p1")["metadata"]}, status=True
        )  # type: ignore[index]
        time.sleep(3)  # longer than the settle time: the flap settled back where it was
    finally:
        assert first.stop() == 0
    assert published(api, "theirs") == []  # served, but its status left alone
    writes = [r for r in api.requests() if r.resource == "ingresses/status"]
    assert sorted(r.path.split("/")[-2] for r in writes) == [
        "bad",
        "mine",
    ]  # once each: the flap wrote nothing
    [event] = events_on("bad")
    assert event["count"] == 1
    second = Router(tmp_path / "r2", config={"providers": {"kubernetes": settings}}).start()
    try:  # a new leader starts fresh: its create is a 409 (same name), so it bumps the Event
        wait_for(lambda: events_on("bad")[0]["count"] == 2, "the earlier leader's Event bumped")
        assert len(events_on("bad")) == 1
        assert not [r for r in api.requests() if r.status in (401, 403)]  # get on events is granted
    finally:
        assert second.stop() == 0


class _Snapshots:
    def __init__(self, snapshot: ClusterSnapshot) -> None:
        self.latest = snapshot

    def subscribe(self) -> asyncio.Event:
        event = asyncio.Event()
        event.set()
        return event


async def test_a_status_write_gives_up_when_leadership_would_end(
    kubeapi: Callable[..., KubeAPI], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A PATCH the API is slow to answer is abandoned at the renew deadline, not left to land
    after another replica may lead."""
    caplog.set_level(logging.WARNING, "passerelle.status")
    api = kubeapi()
    objects = [
        node("n1", "192.0.2.1"),
        pod("p1", "n1"),
        with_ns(ingress("app", [rule("app.test", ("/", "Prefix", "app"))])),
    ]
    for o in objects:
        api.create(o)
    client = ApiClient.connect(str(api.kubeconfig(tmp_path / "k")))
    leadership = Leadership(
        client,
        namespace="default",
        name="t",
        identity="one",
        lease_duration=1.5,
        renew_deadline=1.0,
        retry_period=0.2,
    )
    writer = StatusWriter(
        client,
        snapshots=_Snapshots(ClusterSnapshot.of(objects)),
        leadership=leadership,
        policy=EndpointPolicy(),
        options=IngressOptions(),
        settle=0.0,
    )
    try:
        async with asyncio.TaskGroup() as tasks:
            campaign = tasks.create_task(leadership.run())
            async with asyncio.timeout(10):
                while not leadership.is_leader():
                    await asyncio.sleep(0.02)
            api.stall(30, verb="patch", resource="ingresses/status", times=100)  # answers far too late
            api.inject(500, verb="update", resource="leases", times=1000)  # and the Lease cannot be renewed
            started = time.time()
            writing = tasks.create_task(writer.run())
            async with asyncio.timeout(10):
                while leadership.is_leader():
                    await asyncio.sleep(0.01)
            lost = time.time()
            async with asyncio.timeout(5):
                while "status not written" not in caplog.text:
                    await asyncio.sleep(0.01)
            [record] = [r for r in caplog.records if "status not written" in r.getMessage()]
            assert started < record.created <= lost + 0.25  # given up by the deadline, not 30 s later
            assert writer.writes == 0
            writing.cancel()
            campaign.cancel()
    finally:
        await client.aclose()
