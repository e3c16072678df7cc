"""Ingress status: which addresses to publish (pure), and the writer that publishes them as leader.

`status.loadBalancer.ingress` of every Ingress this controller serves lists where its traffic
enters: configured addresses (`ingressEndpoint.ip`/`hostname`, the VIP case), or the addresses a
published Service's load balancer has, or else every node that matches the ingress node selector,
is Ready and schedulable, and runs a ready passerelle pod (a node being drained, or whose router
is not ready yet, is left out: kube/nodes.py's rule, the one DNS sync follows). Node addresses: ExternalIP if the node has one, else InternalIP.
Only the leader (kube/lease.py) writes, with a merge patch on `/status`, and only what differs,
and only on the Ingresses whose class is passerelle's (`ingress.status_owned`: a class another
controller owns is served but its status left alone). The address set must have stayed the same
for `settle` seconds before it is written (a DaemonSet rollout flips every node out and back in:
that is one write per Ingress, not 2N), writes take tokens from a bucket, and each is bounded by
the time left before the Lease's renew deadline so none lands after leadership is lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

from passerelle.kube.bucket import TokenBucket
from passerelle.kube.client import ApiClient, KubeError
from passerelle.kube.ingress import IngressOptions, status_owned
from passerelle.kube.lease import Leadership
from passerelle.kube.nodes import PodInfo, node_out_of_service, pods_out_of_service, read_node, read_pod
from passerelle.kube.objects import InvalidObject
from passerelle.kube.selector import Selector, parse_selector
from passerelle.kube.snapshot import ClusterSnapshot, Object

log = logging.getLogger("passerelle.status")

RESYNC = 30.0  # seconds between checks of every status even when nothing changed


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointPolicy:
    ips: tuple[str, ...] = ()
    hostname: str = ""
    published_service: str = ""  # namespace/name
    node_selector: Selector = field(default_factory=lambda: parse_selector("role=ingress"))
    pod_selector: Selector = field(
        default_factory=lambda: parse_selector("app.kubernetes.io/name=passerelle")
    )


def node_addresses(
    nodes: Iterable[Object], pods: Iterable[Object], policy: EndpointPolicy
) -> list[dict[str, str]]:
    """The nodes that get traffic by the rule DNS sync follows too (kube/nodes.py: Ready, not
    cordoned or labelled out, with a Running, Ready passerelle pod that is not draining);
    malformed objects are left out."""
    by_node: dict[str, list[PodInfo]] = {}
    for obj in pods:
        try:
            pod = read_pod(obj)
        except InvalidObject:
            continue
        if policy.pod_selector.matches(pod.labels):
            by_node.setdefault(pod.node_name, []).append(pod)
    out = set()
    for obj in nodes:
        try:
            node = read_node(obj)
        except InvalidObject:
            continue
        if not policy.node_selector.matches(node.labels) or node_out_of_service(node):
            continue
        if pods_out_of_service(by_node.get(node.name, ()), policy.pod_selector):
            continue
        addresses = dict(node.addresses)
        address = addresses.get("ExternalIP") or addresses.get("InternalIP")
        if address:
            out.add(address)
    return [{"ip": a} for a in sorted(out)]


def load_balancer(
    snapshot: ClusterSnapshot, pods: Iterable[Object], policy: EndpointPolicy
) -> list[dict[str, str]]:
    """The `status.loadBalancer.ingress` list every served Ingress should have."""
    if policy.ips or policy.hostname:
        return [{"ip": ip} for ip in policy.ips] + (
            [{"hostname": policy.hostname}] if policy.hostname else []
        )
    if policy.published_service:
        namespace, _, name = policy.published_service.partition("/")
        service = snapshot.get("Service", namespace, name) or {}
        entries = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        return [
            {k: v for k, v in e.items() if k in ("ip", "hostname")} for e in entries if isinstance(e, dict)
        ]
    return node_addresses(snapshot.of_kind("Node"), pods, policy)


def status_updates(ingresses: Iterable[Object], addresses: list[dict[str, str]]) -> list[tuple[str, str]]:
    """(namespace, name) of the Ingresses whose published addresses differ from `addresses`."""
    out = []
    for obj in ingresses:
        current = (((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress")) or []
        if current != addresses:
            meta = obj.get("metadata") or {}
            out.append((meta.get("namespace") or "default", meta.get("name") or ""))
    return out


async def relay(event: asyncio.Event, wake: asyncio.Event) -> None:
    """Set `wake` whenever `event` is set (a new snapshot, a change of leadership)."""
    while True:
        await event.wait()
        event.clear()
        wake.set()


async def tick(wake: asyncio.Event, every: float) -> None:
    """Set `wake` every `every` seconds: a failed write is retried, and a status someone else
    changed is corrected."""
    while True:
        await asyncio.sleep(every)
        wake.set()


def wake_on(tasks: asyncio.TaskGroup, wake: asyncio.Event, *events: asyncio.Event) -> None:
    """Set `wake` now (whatever was published before the caller subscribed), on each of `events`,
    and every RESYNC seconds, from tasks of `tasks`."""
    for event in events:
        tasks.create_task(relay(event, wake))
    tasks.create_task(tick(wake, RESYNC))
    wake.set()


async def leading_snapshots(
    tasks: asyncio.TaskGroup, wake: asyncio.Event, snapshots: Any, leadership: Leadership
) -> AsyncIterator[ClusterSnapshot]:
    """The latest snapshot each time `wake` is set (see wake_on) while `leadership` says this
    replica leads. `snapshots` has `.latest: ClusterSnapshot | None` and `.subscribe()`."""
    wake_on(tasks, wake, snapshots.subscribe(), leadership.subscribe())
    while True:
        await wake.wait()
        wake.clear()
        snapshot = snapshots.latest
        if snapshot is not None and leadership.is_leader():
            yield snapshot


async def patch_status(
    client: ApiClient, leadership: Leadership, bucket: TokenBucket, what: str, path: str, body: dict[str, Any]
) -> bool | None:
    """One merge patch of a `/status` as the leader: a token from `bucket` first, and never past the
    Lease's renew deadline. True: written; False: refused or timed out (logged; the next round
    retries); None: leadership was lost while waiting for the token, so stop writing."""
    await bucket.acquire()
    if not leadership.is_leader():
        return None
    try:
        async with asyncio.timeout(leadership.time_left()):
            await client.request("PATCH", path, body=body, content_type="application/merge-patch+json")
    except (KubeError, TimeoutError) as e:
        log.warning("%s: status not written: %s", what, e or "renew deadline")
        return False
    return True


class StatusWriter:
    """Keeps served Ingresses' status up to date while `leadership` says this replica leads."""

    def __init__(
        self,
        client: ApiClient,
        *,
        snapshots: Any,  # has `.latest: ClusterSnapshot | None` and `.subscribe() -> asyncio.Event`
        leadership: Leadership,
        policy: EndpointPolicy,
        options: IngressOptions,
        settle: float = 2.0,
        burst: int = 50,
        rate: float = 10.0,
    ) -> None:
        self._client = client
        self._settle = settle
        self._bucket = TokenBucket(burst, rate)
        self._pending: list[dict[str, str]] | None = None  # the address set last computed
        self._since = 0.0  # when it became that
        self._snapshots = snapshots
        self._leadership = leadership
        self._policy = policy
        self._options = options
        self._wake = asyncio.Event()
        self.writes = 0

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            async for snapshot in leading_snapshots(tasks, self._wake, self._snapshots, self._leadership):
                # the provider's snapshots hold the router's pods, listed
                addresses = load_balancer(snapshot, snapshot.of_kind("Pod"), self._policy)
                now = asyncio.get_running_loop().time()
                if addresses != self._pending:
                    self._pending, self._since = addresses, now
                if now - self._since < self._settle:
                    tasks.create_task(self._wake_in(self._since + self._settle - now))
                    continue  # not stable yet
                await self._write(snapshot, addresses)

    async def _wake_in(self, delay: float) -> None:
        await asyncio.sleep(delay)
        self._wake.set()

    async def _write(self, snapshot: ClusterSnapshot, addresses: list[dict[str, str]]) -> None:
        for namespace, name in status_updates(status_owned(snapshot, self._options), addresses):
            path = f"/apis/networking.k8s.io/v1/namespaces/{namespace}/ingresses/{name}/status"
            body = {"status": {"loadBalancer": {"ingress": addresses}}}
            done = await patch_status(
                self._client, self._leadership, self._bucket, f"Ingress {namespace}/{name}", path, body
            )
            if done is None:
                return  # lost the lease meanwhile: stop at once
            self.writes += done
