"""The ACME Secret store (kube/acme_store.py) in process against the test API server.

Two `SecretStorage` handles with their own API clients are two replicas. The storage interface's
own tests (tests/unit/acme/test_store.py) run here too, on this module's `replicas`; the rest is
what only Secrets and Leases do: one watch of ACME's Secrets in one namespace, writes with
resourceVersion preconditions and what a 409 does, API errors, Leases lost and taken over.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from passerelle.acme.records import HTTP_01, Challenge
from passerelle.acme.store import StorageError
from passerelle.backoff import Backoff
from passerelle.kube.acme_secrets import certificate_secret, challenge_secret, challenge_to_secret
from passerelle.kube.acme_store import LeaseTiming, SecretStorage
from passerelle.kube.client import ApiClient
from passerelle.kube.rbac import acme_access
from tests.kubeapi import KubeAPI
from tests.unit.acme.test_store import (  # noqa: F401  (run here on Secrets)
    certificate,
    eventually,
    test_a_stale_write_never_puts_an_older_certificate_back,
    test_challenges_are_seen_by_every_replica_until_withdrawn,
    test_deleting_an_expired_certificate_leaves_its_replacement,
    test_only_one_replica_holds_a_certificate_lock,
    test_records_round_trip,
    test_work_runs_while_the_lock_is_held,
)

NS = "passerelle"
TIMING = {"duration": 2.0, "renew_deadline": 1.5, "retry_period": 0.3}


def acme_rules(namespace: str = NS) -> list[dict[str, list[str]]]:
    """kube/rbac.py's acme_access() as a Role bound in `namespace` only."""
    rules = []
    for (group, resource), verbs in acme_access().items():
        rules.append(
            {"apiGroups": [group], "resources": [resource], "verbs": sorted(verbs), "namespaces": [namespace]}
        )
    return rules


class Cluster:
    """A test API server and storages on it, each with its own client, running until closed."""

    def __init__(self, api: KubeAPI, tmp_path: Path) -> None:
        self.api, self.tmp_path = api, tmp_path
        self.clients: list[ApiClient] = []
        self.tasks: list[asyncio.Task[None]] = []

    async def storage(
        self, identity: str, *, run: bool = True, namespace: str = NS, token: str = "test-token"
    ) -> SecretStorage:
        path = self.tmp_path / f"kubeconfig-{identity}-{len(self.clients)}"
        client = ApiClient.connect(str(self.api.kubeconfig(path, token=token)))
        self.clients.append(client)
        storage = SecretStorage(
            client,
            namespace=namespace,
            lease=LeaseTiming(identity=identity, **TIMING),
            backoff=Backoff(base=0.05, cap=0.2),
        )
        await storage.open()
        if run:
            self.tasks.append(asyncio.create_task(storage.run(lambda: None)))
        return storage

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for client in self.clients:
            await client.aclose()


@pytest.fixture
async def cluster(kubeapi: Callable[..., KubeAPI], tmp_path: Path) -> AsyncIterator[Cluster]:
    c = Cluster(kubeapi(), tmp_path)
    yield c
    await c.close()


@pytest.fixture
async def replicas(cluster: Cluster) -> tuple[SecretStorage, SecretStorage]:
    return await cluster.storage("one"), await cluster.storage("two")


async def test_only_acme_secrets_of_the_storage_namespace_are_followed(cluster: Cluster) -> None:
    api = cluster.api
    api.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "other", "namespace": NS}})
    elsewhere = challenge_to_secret(Challenge(type=HTTP_01, token="elsewhere", key_authorization="e.k"))
    elsewhere["metadata"]["namespace"] = "default"  # another namespace's (another installation's)
    api.create(elsewhere)
    one = await cluster.storage("one")
    mine = Challenge(type=HTTP_01, token="t", key_authorization="t.k")
    await one.publish(mine)
    await asyncio.sleep(0.3)  # the watch has had every chance to bring the other one
    assert one.challenges() == [mine]
    reads = [r for r in api.requests() if r.resource == "secrets" and r.verb in ("list", "watch")]
    assert reads and {r.path for r in reads} == {f"/api/v1/namespaces/{NS}/secrets"}
    assert all(parse_qs(r.query)["labelSelector"] == ["passerelle.io/acme"] for r in reads)


async def test_a_write_from_a_stale_view_rereads_and_never_clobbers(cluster: Cluster) -> None:
    one = await cluster.storage("one")
    stale = await cluster.storage("stale", run=False)  # read once at start, then never again
    older, newer, newest = (certificate("a.example.com", days=d) for d in (30, 60, 90))
    await stale.save_certificate(older)
    await eventually(lambda: one.certificates("le") == [older])
    await one.save_certificate(newer)  # `stale` still believes the Secret holds `older`
    stale_view = stale.certificates("le")
    conflicts_before = len([r for r in cluster.api.requests() if r.status == 409])
    await stale.save_certificate(older)  # PUT on the old resourceVersion: 409, re-read, keep `newer`
    assert len([r for r in cluster.api.requests() if r.status == 409]) == conflicts_before + 1
    assert stale_view == [older] and stale.certificates("le") == [newer]
    await stale.save_certificate(newest)  # based on what it re-read: goes through
    await eventually(lambda: one.certificates("le") == [newest])
    secret = cluster.api.get("v1", "Secret", NS, certificate_secret("le", newest.id))
    assert secret is not None and secret["type"] == "kubernetes.io/tls"
    assert secret["metadata"]["annotations"]["passerelle.io/acme-names"] == "a.example.com"


async def test_a_deleted_expired_certificate_does_not_take_its_replacement_with_it(cluster: Cluster) -> None:
    one = await cluster.storage("one")
    stale = await cluster.storage("stale", run=False)
    old, new = certificate("a.example.com", days=1), certificate("a.example.com", days=90)
    await stale.save_certificate(old)
    await one.save_certificate(new)
    await eventually(lambda: one.certificates("le") == [new])
    await stale.delete_certificate(old)  # precondition on the version it saw: 409, nothing deleted
    assert cluster.api.get("v1", "Secret", NS, certificate_secret("le", new.id)) is not None
    await one.delete_certificate(new)
    await eventually(lambda: cluster.api.get("v1", "Secret", NS, certificate_secret("le", new.id)) is None)


async def test_api_errors_are_storage_errors_and_nothing_half_written_stays(cluster: Cluster) -> None:
    one = await cluster.storage("one")
    cert = certificate("a.example.com")
    cluster.api.inject(500, verb="create", resource="secrets")
    with pytest.raises(
        StorageError, match="writing Secret passerelle/passerelle-acme-le-a-example-com-.*500"
    ):
        await one.save_certificate(cert)
    assert one.certificates("le") == []
    await one.save_certificate(cert)  # the next attempt (the controller retries every round)
    assert one.certificates("le") == [cert]
    cluster.api.inject(503, verb="get", resource="leases")
    assert await one.try_lock("le", cert.id) is None  # the Lease could not be read: not ours
    lock = await one.try_lock("le", cert.id)
    assert lock is not None
    await lock.release()


async def test_a_lease_it_cannot_renew_is_given_up_before_another_replica_takes_it(
    kubeapi: Callable[..., KubeAPI], tmp_path: Path
) -> None:
    everything = [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]
    api = kubeapi(tokens={"t1": "one", "t2": "two"}, rules={"one": everything, "two": everything})
    cluster = Cluster(api, tmp_path)
    try:
        one, two = await cluster.storage("one", token="t1"), await cluster.storage("two", token="t2")
        lock = await one.try_lock("le", "a-1")
        assert lock is not None
        stops: list[float] = []

        async def keep() -> None:
            await lock.keep()
            stops.append(time.monotonic())

        keeping = asyncio.create_task(keep())
        await asyncio.sleep(1.0)  # renewed a few times
        assert not keeping.done() and await two.try_lock("le", "a-1") is None
        secrets_only = [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["*"]}]
        api._run(lambda: api.rules.__setitem__("one", secrets_only))  # type: ignore[union-attr]
        async with asyncio.timeout(15):
            while (taken := await two.try_lock("le", "a-1")) is None:
                await asyncio.sleep(0.05)
        took = time.monotonic()
        await asyncio.wait_for(keeping, 1)  # keep() returned: the lock is lost
        assert stops and stops[0] <= took  # one gave the order up before two could hold the Lease
        lease = api.get("coordination.k8s.io/v1", "Lease", NS, "passerelle-acme-le-a-1")
        assert lease is not None and lease["spec"]["holderIdentity"] == "two"
        await taken.release()
    finally:
        await cluster.close()


async def test_a_dead_holder_is_taken_over_after_the_lease_duration_and_not_before(cluster: Cluster) -> None:
    one, two = await cluster.storage("one"), await cluster.storage("two")
    lock = await one.try_lock("le", "a-1")  # taken, then never renewed nor released: one "died"
    assert lock is not None
    started = time.monotonic()
    async with asyncio.timeout(15):
        while (taken := await two.try_lock("le", "a-1")) is None:
            await asyncio.sleep(0.1)
    assert time.monotonic() - started >= TIMING["duration"]
    lease = cluster.api.get("coordination.k8s.io/v1", "Lease", NS, "passerelle-acme-le-a-1")
    assert lease is not None and lease["spec"]["holderIdentity"] == "two"
    await taken.release()


async def test_under_the_role_only_the_storage_namespace_is_writable(
    kubeapi: Callable[..., KubeAPI], tmp_path: Path
) -> None:
    api = kubeapi(tokens={"t": "router"}, rules={"router": acme_rules(NS)})
    cluster = Cluster(api, tmp_path)
    try:
        mine = await cluster.storage("one", token="t")
        await mine.save_certificate(certificate("a.example.com"))
        assert (await mine.try_lock("le", "a-1")) is not None
        assert not [r for r in api.requests() if r.status == 403]
        other = await cluster.storage("two", token="t", namespace="default", run=False)
        assert not other.ready()  # its list was refused
        with pytest.raises(StorageError, match="403"):
            await other.save_certificate(certificate("b.example.com"))
    finally:
        await cluster.close()


async def test_a_challenge_left_by_a_replica_that_died_is_ignored_then_deleted(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    left = Challenge(type=HTTP_01, token="left", key_authorization="left.k")
    body = challenge_to_secret(left)
    body["metadata"]["namespace"] = NS
    cluster.api.create(body)
    name = body["metadata"]["name"]

    def backdate() -> None:  # as if created two hours ago (the server sets creationTimestamp itself)
        cluster.api.store.objects[("secrets", NS, name)]["metadata"]["creationTimestamp"] = (
            "2000-01-01T00:00:00Z"
        )

    cluster.api._run(backdate)
    monkeypatch.setattr("passerelle.kube.acme_store.SWEEP", 0.05)
    one = await cluster.storage("one")
    fresh = Challenge(type=HTTP_01, token="fresh", key_authorization="fresh.k")
    await one.publish(fresh)
    assert one.challenges() == [fresh]  # the old one is not answered
    await eventually(lambda: cluster.api.get("v1", "Secret", NS, name) is None)  # and run() deleted it
    assert cluster.api.get("v1", "Secret", NS, challenge_secret(fresh)) is not None
