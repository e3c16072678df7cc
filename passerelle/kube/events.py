"""Problems on Kubernetes objects -> core/v1 Events on them: the plan (pure) and the recorder.

A Problem on an object of the snapshot becomes one Event on that object (`involvedObject` with
its uid), type Warning, reason `NotServed` for errors and `ServedWithWarnings` for warnings. The
same problem seen again (every configuration version repeats it) is not a new Event: after
`repeat` seconds it bumps the Event's `count` and `lastTimestamp`, as the kubelet aggregates.
Writes are rate-limited (a token bucket: `burst`, then `rate` per second) so a bad rollout of
a thousand Ingresses cannot flood the API. An object without problems gets no Event at all.
An Event name is `<object name>.<digest>`, cut to stay a valid name (at most 253 characters).
A create answered 409 (an earlier leader left an Event of that name) reads that Event and bumps
its count instead. Each write is bounded by the time left before the Lease's renew deadline, so
none lands after this replica has stopped leading.
Problems on files, or on objects the snapshot does not hold, have no object to go on. Only the
leader records (kube/lease.py); a new leader starts fresh and re-sends what is still wrong.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from passerelle.kube.bucket import TokenBucket
from passerelle.kube.client import ApiClient, ApiStatusError, KubeError
from passerelle.kube.lease import Leadership
from passerelle.kube.snapshot import CLUSTER_SCOPED, ClusterSnapshot
from passerelle.model import Problem, Severity

log = logging.getLogger("passerelle.events")

COMPONENT = "passerelle"
NAME_MAX = 253  # a DNS subdomain, as every object name
Key = tuple[str, str, str, str]  # (kind, namespace, name, message)


@dataclass(frozen=True, slots=True, kw_only=True)
class Sent:
    namespace: str
    name: str  # the Event object's name
    count: int
    at: float  # monotonic time of the last write


@dataclass(frozen=True, slots=True, kw_only=True)
class Create:
    key: Key
    body: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Bump:
    key: Key
    namespace: str
    name: str
    count: int
    last: str


def _stamp(wall: datetime.datetime) -> str:
    return wall.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def plan(
    problems: Iterable[Problem],
    snapshot: ClusterSnapshot,
    sent: Mapping[Key, Sent],
    *,
    now: float,
    wall: datetime.datetime,
    repeat: float,
    budget: int,
    instance: str = "",
) -> tuple[list[Create | Bump], dict[Key, Sent]]:
    """The writes to make now (at most `budget`) and what is recorded afterwards. Entries of
    `sent` whose problem went away are forgotten, so a problem that comes back is a new Event."""
    actions: list[Create | Bump] = []
    kept: dict[Key, Sent] = {}
    for problem in sorted(set(problems)):
        ref = problem.ref
        obj = snapshot.get(ref.kind, ref.namespace, ref.name)
        if obj is None:
            continue
        key = (ref.kind, ref.namespace, ref.name, problem.message)
        before = sent.get(key)
        if before is not None and now - before.at < repeat:
            kept[key] = before
            continue
        if len(actions) >= budget:
            if before is not None:
                kept[key] = before
            continue
        stamp = _stamp(wall)
        if before is not None:
            actions.append(
                Bump(
                    key=key, namespace=before.namespace, name=before.name, count=before.count + 1, last=stamp
                )
            )
            kept[key] = replace(before, count=before.count + 1, at=now)
            continue
        meta = obj.get("metadata") or {}
        namespace = ref.namespace if ref.kind not in CLUSTER_SCOPED and ref.namespace else "default"
        digest = hashlib.sha256("\0".join(key).encode()).hexdigest()[:10]
        name = event_name(ref.name, digest)
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion", ""),
                "kind": obj.get("kind", ref.kind),
                "name": ref.name,
                **({"namespace": ref.namespace} if ref.namespace else {}),
                **({"uid": meta["uid"]} if meta.get("uid") else {}),
            },
            "type": "Warning",
            "reason": "NotServed" if problem.severity == Severity.ERROR else "ServedWithWarnings",
            "message": problem.message[:1024],
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": instance,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        actions.append(Create(key=key, body=body))
        kept[key] = Sent(namespace=namespace, name=name, count=1, at=now)
    return actions, kept


def event_name(object_name: str, digest: str) -> str:
    """`<object>.<digest>`, the object's name cut (and a trailing dot or dash dropped) so the
    whole stays at most NAME_MAX characters."""
    head = object_name[: NAME_MAX - len(digest) - 1].rstrip(".-")
    return f"{head}.{digest}"


class EventRecorder:
    """Turns the watcher's current problems into Events while `leadership` says we lead."""

    def __init__(
        self,
        client: ApiClient,
        *,
        problems: Callable[[], tuple[tuple[Problem, ...], ClusterSnapshot | None]],
        leadership: Leadership,
        interval: float = 1.0,
        repeat: float = 600.0,
        burst: int = 25,
        rate: float = 0.5,
    ) -> None:
        self._client = client
        self._problems = problems
        self._leadership = leadership
        self._interval, self._repeat = interval, repeat
        self._bucket = TokenBucket(burst, rate)
        self._sent: dict[Key, Sent] = {}
        self.written = 0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._interval)
            now = loop.time()
            if not self._leadership.is_leader():
                self._sent.clear()  # a leader to be starts over: the Events may be another's
                continue
            problems, snapshot = self._problems()
            if snapshot is None:
                continue
            actions, self._sent = plan(
                problems, snapshot, self._sent, now=now, wall=datetime.datetime.now(datetime.UTC),
                repeat=self._repeat, budget=self._bucket.available(), instance=self._leadership.identity,
            )  # fmt: skip
            for action in actions:
                if not self._leadership.is_leader():
                    break
                self._bucket.take()
                await self._write(action)

    async def _write(self, action: Create | Bump) -> None:
        try:
            async with asyncio.timeout(self._leadership.time_left()):  # never after the lease is lost
                if isinstance(action, Create):
                    await self._create(action)
                else:
                    await self._bump(action.namespace, action.name, action.count, action.last)
            self.written += 1
        except (KubeError, TimeoutError) as e:
            self._sent.pop(action.key, None)  # try again on the next round
            log.debug("Event not written: %s", e)

    async def _create(self, action: Create) -> None:
        namespace, name = action.body["metadata"]["namespace"], action.body["metadata"]["name"]
        try:
            await self._client.request("POST", f"/api/v1/namespaces/{namespace}/events", body=action.body)
        except ApiStatusError as e:
            if e.code != 409:
                raise
            # an earlier leader's Event of the same name (same object, same problem): bump it
            existing = await self._client.get(f"/api/v1/namespaces/{namespace}/events/{name}")
            count = int(existing.get("count") or 1) + 1
            if action.key in self._sent:
                self._sent[action.key] = replace(self._sent[action.key], count=count)
            await self._bump(namespace, name, count, action.body["lastTimestamp"])

    async def _bump(self, namespace: str, name: str, count: int, last: str) -> None:
        path = f"/api/v1/namespaces/{namespace}/events/{name}"
        patch = {"count": count, "lastTimestamp": last}
        await self._client.request("PATCH", path, body=patch, content_type="application/merge-patch+json")
