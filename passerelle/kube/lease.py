"""Leader election on a coordination.k8s.io/v1 Lease: the decision (pure) and `Leadership`, its shell.

The rules are client-go's leaderelection: a candidate holds the Lease while it renews
`spec.renewTime` within `leaseDuration`; another candidate takes it over only once the record
(holder and renewTime) has not changed for `leaseDuration` *as measured on its own clock* since it
first saw that record, so clocks need not agree. Writes carry the Lease's resourceVersion: two
candidates racing for it get one success and one 409 Conflict. A leader that has not renewed for
`renew_deadline` (shorter than the lease) stops being leader by itself, before anyone else can
take over, so two replicas never both think they lead. On a clean stop the leader releases the
Lease (empty holder) so a successor need not wait. DNS sync and ACME reuse `Leadership`.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from passerelle.kube.client import ApiClient, ApiStatusError, KubeError

log = logging.getLogger("passerelle.leader")


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    """What a Lease says: who holds it, for how long, since when (None: no Lease yet)."""

    holder: str = ""
    duration: float = 0.0
    renewed: str = ""  # spec.renewTime as written (compared, never parsed: clocks may differ)
    acquired: str = ""
    transitions: int = 0
    resource_version: str = ""


def read_record(lease: Mapping[str, Any]) -> Record:
    spec = lease.get("spec") or {}
    return Record(
        holder=str(spec.get("holderIdentity") or ""),
        duration=float(spec.get("leaseDurationSeconds") or 0),
        renewed=str(spec.get("renewTime") or ""),
        acquired=str(spec.get("acquireTime") or ""),
        transitions=int(spec.get("leaseTransitions") or 0),
        resource_version=str((lease.get("metadata") or {}).get("resourceVersion") or ""),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """write: the Lease spec to write (None: only watch); leads: we hold it after a successful write."""

    write: dict[str, Any] | None
    leads: bool


def micro_time(now: datetime.datetime) -> str:
    """A MicroTime as the API writes it: RFC 3339 with microseconds, UTC."""
    return now.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def decide(
    record: Record | None, *, identity: str, duration: float, observed_for: float, wall: datetime.datetime
) -> Decision:
    """What a candidate does with the Lease it just read.

    observed_for: seconds (on our monotonic clock) since we first saw this exact record.
    wall: the time written into renewTime/acquireTime.
    """
    stamp = micro_time(wall)
    mine = {"holderIdentity": identity, "leaseDurationSeconds": max(1, round(duration)), "renewTime": stamp}
    if record is None:
        return Decision(write={**mine, "acquireTime": stamp, "leaseTransitions": 0}, leads=True)
    if record.holder == identity:
        return Decision(
            write={**mine, "acquireTime": record.acquired or stamp, "leaseTransitions": record.transitions},
            leads=True,
        )
    if record.holder and observed_for < (record.duration or duration):
        return Decision(write=None, leads=False)  # someone else's, and still fresh
    return Decision(
        write={**mine, "acquireTime": stamp, "leaseTransitions": record.transitions + 1}, leads=True
    )


class Leadership:
    """Campaign for one Lease until cancelled; `is_leader()` and `subscribe()` say how it goes.
    It is control/leadership.py's `Leadership` for a cluster.

    is_leader(): True only while the last successful renewal is younger than `renew_deadline`.
    subscribe(): an Event of the caller's own, set on every change of `is_leader()` (the caller
        clears it), so the status writer and ACME each wait on theirs; on_change(): a callback.
    """

    def __init__(
        self,
        client: ApiClient,
        *,
        namespace: str,
        name: str,
        identity: str,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not retry_period < renew_deadline < lease_duration:
            raise ValueError("leader election needs retryPeriod < renewDeadline < leaseDuration")
        self.identity = identity
        self._subscribers: list[asyncio.Event] = []
        self._callbacks: list[Callable[[], None]] = []
        self._client = client
        self._path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        self._name = name
        self._duration, self._deadline, self._retry = lease_duration, renew_deadline, retry_period
        self._clock = clock
        self._renewed_at: float | None = None  # monotonic time of our last successful write
        self._observed: tuple[Record | None, float] = (None, 0.0)
        self._was_leader = False
        self.holder = ""  # the holder we last saw

    def subscribe(self) -> asyncio.Event:
        event = asyncio.Event()
        self._subscribers.append(event)
        return event

    def on_change(self, callback: Callable[[], None]) -> None:
        """Call `callback` on every change of is_leader() (control/leadership.py's protocol:
        DNS sync reconciles at once when it becomes leader)."""
        self._callbacks.append(callback)

    def is_leader(self) -> bool:
        return self._renewed_at is not None and self._clock() - self._renewed_at < self._deadline

    def time_left(self) -> float:
        """Seconds until this replica stops leading unless it renews (0 when it does not lead):
        a write bounded by it cannot land after leadership is lost."""
        if self._renewed_at is None:
            return 0.0
        return max(0.0, self._deadline - (self._clock() - self._renewed_at))

    async def run(self) -> None:
        try:
            while True:
                await self.attempt()
                await asyncio.sleep(self.until_next())
        finally:
            await self.release()

    async def attempt(self) -> bool:
        """One round of the campaign (read the Lease, take or renew it if the rules allow):
        whether this replica leads now. ACME's per-certificate Leases are driven this way."""
        await self._try()
        self._notice()
        return self.is_leader()

    def until_next(self) -> float:
        """Seconds until the next round is due (retryPeriod, or the renew deadline if sooner)."""
        if self._renewed_at is None:
            return self._retry
        # wake up to drop leadership exactly when the deadline passes, if renewing keeps failing
        return max(0.0, min(self._retry, self._deadline - (self._clock() - self._renewed_at)))

    def _notice(self) -> None:
        leader = self.is_leader()
        if leader != self._was_leader:
            self._was_leader = leader
            log.info(
                "%s %s the leader (Lease %s)",
                self.identity,
                "is now" if leader else "is no longer",
                self._name,
            )
            for event in self._subscribers:
                event.set()
            for callback in self._callbacks:
                callback()

    async def _try(self) -> None:
        try:
            lease: dict[str, Any] | None = await self._client.get(f"{self._path}/{self._name}")
        except ApiStatusError as e:
            if e.code != 404:
                log.debug("reading Lease %s: %s", self._name, e)
                return
            lease = None
        except KubeError as e:
            log.debug("reading Lease %s: %s", self._name, e)
            return
        record = read_record(lease) if lease is not None else None
        now = self._clock()
        if record is None or self._observed[0] is None or _changed(self._observed[0], record):
            self._observed = (record, now)
        self.holder = record.holder if record else ""
        decision = decide(
            record,
            identity=self.identity,
            duration=self._duration,
            observed_for=now - self._observed[1],
            wall=datetime.datetime.now(datetime.UTC),
        )
        if decision.write is None:
            self._renewed_at = None
            return
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self._name,
                **({"resourceVersion": record.resource_version} if record else {}),
            },
            "spec": decision.write,
        }
        try:
            if lease is None:
                await self._client.request("POST", self._path, body=body)
            else:
                await self._client.request("PUT", f"{self._path}/{self._name}", body=body)
        except KubeError as e:  # 409: someone else wrote first; anything else: try again later
            log.debug("writing Lease %s: %s", self._name, e)
            return
        self._renewed_at = now
        self.holder = self.identity

    async def release(self) -> None:
        if not self.is_leader():
            return
        self._renewed_at = None
        self._notice()
        try:
            async with asyncio.timeout(2.0):  # stopping must not wait on an API that is gone
                lease = await self._client.get(f"{self._path}/{self._name}")
                if read_record(lease).holder != self.identity:
                    return
                spec = {**(lease.get("spec") or {}), "holderIdentity": "", "leaseDurationSeconds": 1}
                await self._client.request("PUT", f"{self._path}/{self._name}", body={**lease, "spec": spec})
        except (KubeError, TimeoutError) as e:
            log.debug("releasing Lease %s: %s", self._name, e)


def _changed(before: Record, after: Record) -> bool:
    return (before.holder, before.renewed, before.transitions) != (
        after.holder,
        after.renewed,
        after.transitions,
    )
