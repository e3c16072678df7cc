"""Gateway API status: the conditions a translation's outcomes call for (pure), and their writer.

Gateway: `Accepted` and `Programmed` (no listener served: Programmed False, `Invalid`), and per
listener `Accepted`, `Programmed`, `ResolvedRefs`, `supportedKinds` and `attachedRoutes`.
HTTPRoute: one `status.parents` entry per parentRef naming one of our Gateways, with `Accepted`
(or why not: NoMatchingParent, NotAllowedByListeners, NoMatchingListenerHostname) and
`ResolvedRefs` (RefNotPermitted, InvalidKind, BackendNotFound); entries of other controllers are
kept. Conditions carry `observedGeneration`; `lastTransitionTime` changes only with the status.
Only the leader writes (kube/lease.py), with a merge patch on `/status`, only what differs, taking
tokens from a bucket and never past the Lease's renew deadline, as kube/status.py for Ingresses.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Mapping
from typing import Any

from passerelle.kube.backends import Backends
from passerelle.kube.bucket import TokenBucket
from passerelle.kube.client import ApiClient
from passerelle.kube.gateway import GatewayOptions, translate_gateway
from passerelle.kube.gateway_attach import Outcome, Outcomes
from passerelle.kube.gateway_objects import GROUP
from passerelle.kube.lease import Leadership
from passerelle.kube.names import UniqueNames
from passerelle.kube.placement import EntryPointInfo
from passerelle.kube.snapshot import ClusterSnapshot, Object
from passerelle.kube.status import leading_snapshots, patch_status
from passerelle.model import Report

Patch = tuple[str, dict[str, Any]]  # (status path, merge patch body)


def _condition(kind: str, outcome: Outcome, generation: int, now: str, before: list[Any]) -> dict[str, Any]:
    status = "True" if outcome.ok else "False"
    old = next((c for c in before if isinstance(c, Mapping) and c.get("type") == kind), None)
    since = old.get("lastTransitionTime") if old is not None and old.get("status") == status else None
    return {
        "type": kind,
        "status": status,
        "reason": outcome.reason,
        "message": outcome.message,
        "observedGeneration": generation,
        "lastTransitionTime": since or now,
    }


def _generation(obj: Object) -> int:
    return int((obj.get("metadata") or {}).get("generation") or 0)


def gateway_status(obj: Object, outcomes: Outcomes, key: tuple[str, str], now: str) -> dict[str, Any]:
    generation = _generation(obj)
    current = obj.get("status") or {}
    before = {
        str(entry.get("name")): entry
        for entry in current.get("listeners") or []
        if isinstance(entry, Mapping)
    }
    listeners = []
    for listener, served, resolved in outcomes.listeners.get(key, []):
        old = (before.get(listener.name) or {}).get("conditions") or []
        accepted = served if not served.ok else Outcome(ok=True, reason="Accepted")
        listeners.append(
            {
                "name": listener.name,
                "supportedKinds": [{"group": GROUP, "kind": "HTTPRoute"}],
                "attachedRoutes": len(outcomes.attached.get((*key, listener.name), ())),
                "conditions": [
                    _condition("Accepted", accepted, generation, now, old),
                    _condition(
                        "Programmed",
                        served if served.ok else Outcome(ok=False, reason="Invalid", message=served.message),
                        generation,
                        now,
                        old,
                    ),
                    _condition("ResolvedRefs", resolved, generation, now, old),
                ],
            }
        )
    old = current.get("conditions") or []
    return {
        "conditions": [
            _condition("Accepted", Outcome(ok=True, reason="Accepted"), generation, now, old),
            _condition("Programmed", outcomes.gateways[key], generation, now, old),
        ],
        "listeners": listeners,
    }


def route_status(
    obj: Object, outcomes: Outcomes, key: tuple[str, str], controller: str, now: str
) -> dict[str, Any]:
    generation = _generation(obj)
    current = [p for p in (obj.get("status") or {}).get("parents") or [] if isinstance(p, Mapping)]
    resolved = outcomes.resolved.get(key, Outcome(ok=True, reason="ResolvedRefs"))
    ours = []
    for parent, accepted in outcomes.routes.get(key, []):
        ref: dict[str, Any] = {
            "group": GROUP,
            "kind": "Gateway",
            "namespace": parent.namespace,
            "name": parent.name,
        }
        if parent.section is not None:
            ref["sectionName"] = parent.section
        if parent.port is not None:
            ref["port"] = parent.port
        old = next((p.get("conditions") or [] for p in current if p.get("parentRef") == ref), [])
        ours.append(
            {
                "parentRef": ref,
                "controllerName": controller,
                "conditions": [
                    _condition("Accepted", accepted, generation, now, old),
                    _condition("ResolvedRefs", resolved, generation, now, old),
                ],
            }
        )
    others = [p for p in current if p.get("controllerName") != controller]
    return {"parents": others + ours}


def status_patches(
    snapshot: ClusterSnapshot,
    options: GatewayOptions,
    entrypoints: tuple[EntryPointInfo, ...],
    now: datetime.datetime | None = None,
) -> list[Patch]:
    """The status writes that would bring our Gateways and their HTTPRoutes up to date."""
    stamp = (now or datetime.datetime.now(datetime.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    outcomes = translate_gateway(
        snapshot, options, entrypoints, Backends(snapshot), Report([]), UniqueNames()
    ).outcomes
    out: list[Patch] = []
    base = f"/apis/{GROUP}/v1/namespaces"
    for namespace, name in outcomes.gateways:
        obj = snapshot.get("Gateway", namespace, name)
        if obj is not None:
            wanted = gateway_status(obj, outcomes, (namespace, name), stamp)
            if _differs(obj.get("status") or {}, wanted):
                out.append((f"{base}/{namespace}/gateways/{name}/status", {"status": wanted}))
    for namespace, name in outcomes.routes:
        obj = snapshot.get("HTTPRoute", namespace, name)
        if obj is not None:
            wanted = route_status(obj, outcomes, (namespace, name), options.controller, stamp)
            if _differs(obj.get("status") or {}, wanted):
                out.append((f"{base}/{namespace}/httproutes/{name}/status", {"status": wanted}))
    return out


def _differs(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    return any(current.get(k) != v for k, v in wanted.items())


class GatewayStatusWriter:
    """Keeps our Gateways' and HTTPRoutes' status up to date while `leadership` says this replica leads."""

    def __init__(
        self,
        client: ApiClient,
        *,
        snapshots: Any,  # has `.latest: ClusterSnapshot | None` and `.subscribe() -> asyncio.Event`
        leadership: Leadership,
        options: GatewayOptions,
        entrypoints: tuple[EntryPointInfo, ...],
        burst: int = 50,
        rate: float = 10.0,
    ) -> None:
        self._client = client
        self._snapshots = snapshots
        self._leadership = leadership
        self._options = options
        self._entrypoints = entrypoints
        self._bucket = TokenBucket(burst, rate)
        self._wake = asyncio.Event()
        self.writes = 0

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            async for snapshot in leading_snapshots(tasks, self._wake, self._snapshots, self._leadership):
                for path, body in status_patches(snapshot, self._options, self._entrypoints):
                    done = await patch_status(self._client, self._leadership, self._bucket, path, path, body)
                    if done is None:
                        break  # lost the lease meanwhile
                    self.writes += done
