"""Objects and an in-process DNS sync for the BIND tests: Nodes, passerelle Pods, Ingresses."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml

from passerelle.control.leadership import AlwaysLeader, Leadership
from passerelle.dnssync.controller import Backoff, DnsSync, Outcome
from passerelle.dnssync.plan import Plan, plan
from passerelle.dnssync.rfc2136 import Rfc2136Provider
from passerelle.kube.ingress import translate
from passerelle.kube.manifests import ManifestsProvider
from passerelle.settings.dnssync import DnsSync as DnsSyncSettings
from tests.integration.bind import Bind
from tests.integration.harness import Router, ingress, rule


def node(name: str, address: str, *, ready: bool = True, cordoned: bool = False, role: str = "ingress") -> dict[str, Any]:  # fmt: skip
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"role": role}},
        "spec": {"unschedulable": True} if cordoned else {},
        "status": {
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "addresses": [{"type": "InternalIP", "address": address}, {"type": "Hostname", "address": name}],
        },
    }


def pod(node_name: str, *, ready: bool = True) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"passerelle-{node_name}",
            "namespace": "kube-system",
            "labels": {"app.kubernetes.io/name": "passerelle"},
        },
        "spec": {"nodeName": node_name},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def host_ingress(name: str, *hosts: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    obj = ingress(name, [rule(h, ("/", "Prefix", "web")) for h in hosts])
    if annotations:
        obj["metadata"]["annotations"] = annotations
    return obj


def dns_settings(bind: Bind, **overrides: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "zones": [bind.zone],
        "ownerId": "cluster-a",
        "ttl": 30,
        "settleTime": 0,  # nodes join at once; test_dnssync.py's settle test sets it
        "provider": bind.settings(),
    }
    settings.update(overrides)
    return settings


class Cluster:
    """A manifests directory and a DnsSync fed from it, in this process (always the leader)."""

    def __init__(
        self,
        workdir: Path,
        bind: Bind,
        *,
        leadership: Leadership | None = None,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.time,
        **settings: Any,
    ) -> None:
        self.dir = workdir / "manifests"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.settings = DnsSyncSettings.model_validate(dns_settings(bind, **settings))
        rfc2136 = self.settings.provider.rfc2136
        assert rfc2136 is not None
        self.sync = DnsSync(
            options=self.settings.plan_options(),
            provider=Rfc2136Provider(rfc2136.options()),
            leadership=leadership or AlwaysLeader(),
            interval=self.settings.interval,
            node_name="n1",
            settle=self.settings.settleTime,
            backoff=backoff or Backoff(),
            clock=clock,
        )
        self.provider = ManifestsProvider(self.dir, watch=False)

    def write(self, name: str, objects: list[dict[str, Any]]) -> None:
        (self.dir / name).write_text(yaml.safe_dump_all(objects))

    def remove(self, name: str) -> None:
        (self.dir / name).unlink()

    def load(self) -> None:
        loaded = self.provider.load()
        self.sync.observe(loaded.snapshot)
        self.sync.serve(translate(loaded.snapshot)[0])

    async def reconcile(self) -> Outcome:
        self.load()
        return await self.sync.reconcile()

    async def plan(self) -> Plan:
        """What a reconcile would change now, without applying it: the manifests as they are
        against the zones as read now."""
        states = {zone: await self.sync.provider.read(zone) for zone in self.sync.options.zones}
        loaded = self.provider.load()
        return plan(translate(loaded.snapshot)[0], loaded.snapshot, states, self.sync.options)


def slow_request(router: Router, host: str, into: list[int | str], *, timeout: float) -> threading.Thread:
    """A request to `host` that the backend answers in 3 s, started in a thread (started now);
    its status, or the error that ended it, goes to `into`. Sent while a drain refuses new
    connections (/ping 503), it must still be answered."""

    def send() -> None:
        try:
            with httpx.Client(base_url=router.base, timeout=timeout) as client:
                into.append(client.get("/?delay=3", headers={"Host": host}).status_code)
        except httpx.HTTPError as e:
            into.append(repr(e))

    thread = threading.Thread(target=send)
    thread.start()
    return thread
