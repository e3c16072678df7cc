"""The live Kubernetes provider: reflectors for every watched kind -> throttled snapshots -> Loaded.

At start (and every `rediscover` seconds) the provider asks discovery (`/apis`) which CRD groups
the cluster serves, then runs one `Reflector` per kind (per namespace when `namespaces` is set)
and a `SecretPoller` (secrets.py) that GETs, now and every `secret_period` seconds, each Secret an
Ingress or the static configuration names that is not a `kubernetes.io/tls` Secret already
watched: no watch per Secret, so the reflectors hold a bounded number of connections
(`connections_needed`), which the router's pool for them is sized to. Any change marks the
state dirty; `throttle` seconds later the snapshot is built from one part per reflector, only
the parts whose reflector changed being indexed again (unchanged objects are the same dicts,
which translation's memo relies on) and published as the same `Loaded` the manifests provider sends. A burst of changes
is one snapshot. Nothing is published until every reflector, referenced Secrets included, has
listed once; after that an API that fails leaves the last snapshot in place (the reflectors
retry with backoff, `health` says what is wrong). A bad kubeconfig fails at start.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from passerelle.backoff import Backoff
from passerelle.kube.client import ApiClient, KubeError
from passerelle.kube.kinds import POD, WATCHED, Kind, secret_references, served_group_versions, watched
from passerelle.kube.manifests import Loaded
from passerelle.kube.reflector import Health, Reflector
from passerelle.kube.secrets import CONCURRENCY, SecretPoller
from passerelle.kube.snapshot import ClusterSnapshot

log = logging.getLogger("passerelle.kubernetes")


@dataclass(frozen=True, slots=True, kw_only=True)
class WatchOptions:
    """What to watch. namespaces: empty for all; label_selector: for Ingresses only (as Traefik);
    throttle: seconds a change waits for more before a snapshot is published; secrets:
    `namespace/name` Secrets the static configuration names (CA secrets, default certificate)."""

    namespaces: tuple[str, ...] = ()
    label_selector: str = ""
    throttle: float = 0.5
    secrets: tuple[str, ...] = ()
    backoff: Backoff = Backoff()
    watch_seconds: tuple[int, int] = (300, 600)
    rediscover: float = 60.0  # seconds between discovery calls (CRDs installed later)
    pods: tuple[
        tuple[str, str], ...
    ] = ()  # (namespace or "" for the client's, label selector) of the router's pods
    secret_period: float = 30.0  # seconds between GETs of the named non-TLS Secrets


def connections_needed(options: WatchOptions) -> int:
    """The connections the reflectors can hold at once: a watch per kind (per namespace for
    namespaced kinds when `namespaces` is set) and per pod selector, the Secret GETs, discovery."""
    spaces = max(1, len(options.namespaces))
    watches = sum(spaces if k.namespaced else 1 for k in WATCHED) + len(set(options.pods))
    return watches + CONCURRENCY + 1


class KubernetesProvider:
    def __init__(self, client: ApiClient, options: WatchOptions = WatchOptions()) -> None:
        self.client = client
        self.options = options
        self.health = Health(server=client.server)
        self.published = 0  # snapshots handed to the watcher
        self.latest: ClusterSnapshot | None = None  # the last one, for the status writer
        self._subscribers: list[asyncio.Event] = []
        self._kinds: dict[Kind, list[tuple[Reflector, asyncio.Task[None]]]] = {}
        self._dirty = asyncio.Event()
        self._parts: dict[Reflector | SecretPoller, tuple[int, ClusterSnapshot]] = {}  # -> (version, part)
        self.secrets = SecretPoller(
            client,
            health=self.health,
            on_change=self._dirty.set,
            period=options.secret_period,
            backoff=options.backoff,
        )
        self._pods: list[Reflector] = []
        self._tasks: asyncio.TaskGroup | None = None

    def subscribe(self) -> asyncio.Event:
        """An Event of the caller's own, set with each new `latest` snapshot (the caller clears it)."""
        event = asyncio.Event()
        self._subscribers.append(event)
        return event

    @property
    def _reflectors(self) -> list[Reflector]:
        return [r for running in self._kinds.values() for r, _ in running] + self._pods

    async def run(self, publish: Callable[[Loaded], Awaitable[None]]) -> None:
        try:
            kinds = await self._discover()
            async with asyncio.TaskGroup() as tasks:
                self._tasks = tasks
                self._watch_kinds(kinds)
                own = self.client.namespace  # "" in `pods`: the kubeconfig's (service account's)
                for namespace, selector in dict.fromkeys((n or own, s) for n, s in self.options.pods):
                    self._pods.append(self._reflector(POD, namespace=namespace, label_selector=selector))
                    tasks.create_task(self._pods[-1].run())
                tasks.create_task(self._rediscover())
                tasks.create_task(self.secrets.run())
                await self._publish_changes(publish)
        finally:
            self._tasks = None  # the client is the caller's to close: status and Events share it

    def _watch_kinds(self, kinds: Sequence[Kind]) -> None:
        """Start reflectors for kinds not watched yet, stop those of kinds no longer served."""
        assert self._tasks is not None
        for gone in set(self._kinds) - set(kinds):
            log.info("%s.%s is no longer served; its objects are dropped", gone.kind, gone.group)
            for _, task in self._kinds.pop(gone):
                task.cancel()
            self._dirty.set()
        new = [k for k in kinds if k not in self._kinds]
        for kind in new:
            spaces = self.options.namespaces if kind.namespaced and self.options.namespaces else ("",)
            running = []
            for namespace in spaces:
                reflector = self._reflector(
                    kind, namespace=namespace, label_selector=self.options.label_selector
                )
                running.append((reflector, self._tasks.create_task(reflector.run())))
            self._kinds[kind] = running
        if new:
            names = sorted({f"{k.kind}.{k.group}".rstrip(".") for k in new})
            log.info("watching %s on %s", ", ".join(names), self.client.server)

    async def _rediscover(self) -> None:
        """CRDs installed (or removed) after start are watched (or dropped) within a minute."""
        while True:
            await asyncio.sleep(self.options.rediscover)
            try:
                served = served_group_versions(await self.client.get("/apis"))
            except KubeError:
                continue  # the reflectors report the API's health
            self._watch_kinds(watched(served))

    def _reflector(
        self, kind: Kind, *, namespace: str = "", name: str = "", label_selector: str = ""
    ) -> Reflector:
        return Reflector(
            self.client,
            kind,
            health=self.health,
            on_change=self._dirty.set,
            namespace=namespace,
            name=name,
            label_selector=label_selector,
            backoff=self.options.backoff,
            watch_seconds=self.options.watch_seconds,
        )

    async def _discover(self) -> Sequence[Kind]:
        attempt = 0
        while True:
            try:
                served = served_group_versions(await self.client.get("/apis"))
                self.health.succeeded()
                return watched(served)
            except KubeError as e:
                delay = self.options.backoff.delay(attempt, random.random())
                self.health.failed("discovery (/apis)", e, delay)
                attempt += 1
                await asyncio.sleep(delay)

    async def _publish_changes(self, publish: Callable[[Loaded], Awaitable[None]]) -> None:
        while True:
            await self._dirty.wait()
            await asyncio.sleep(self.options.throttle)
            self._dirty.clear()
            self._follow_secret_references()
            everything = self._reflectors
            if not all(r.synced.is_set() for r in everything) or not self.secrets.synced():
                continue  # their first list (or GET) sets dirty again
            snapshot = self._snapshot([*everything, self.secrets])
            if not self.health.synced:
                log.info("every kind listed: %d objects", len(snapshot))
            self.health.synced = True
            self.published += 1
            self.latest = snapshot
            for event in self._subscribers:
                event.set()
            await publish(Loaded(snapshot, []))

    def _snapshot(self, sources: Sequence[Reflector | SecretPoller]) -> ClusterSnapshot:
        """Everything the sources hold; only the sources that changed since the last one are
        indexed again (a part per source, cached by its version)."""
        parts, kept = [], {}
        for source in sources:
            cached = self._parts.get(source)
            if cached is None or cached[0] != source.version:
                cached = (source.version, ClusterSnapshot.of(source.objects.values()))
            kept[source] = cached
            parts.append(cached[1])
        self._parts = kept  # stopped sources are forgotten
        return ClusterSnapshot.merged(parts)

    def _follow_secret_references(self) -> None:
        """Have the poller read each named Secret that is not a TLS Secret we already hold."""
        sources = [r for r in self._reflectors if r.kind.kind in ("Ingress", "Secret", "TLSOption")]
        if not all(r.synced.is_set() for r in sources):
            return  # before the TLS Secrets are listed every reference would look like it needs a GET
        ingresses = [o for r in self._reflectors if r.kind.kind == "Ingress" for o in r.objects.values()]
        options = [o for r in self._reflectors if r.kind.kind == "TLSOption" for o in r.objects.values()]
        tls = {key for r in self._reflectors if r.kind.kind == "Secret" for key in r.objects}
        wanted = secret_references(ingresses, self.options.secrets, options)
        self.secrets.want(ref for ref in wanted if ref not in tls)
