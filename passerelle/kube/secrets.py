"""The Secrets an Ingress or the static configuration names that are not TLS Secrets: read by GET.

`kubernetes.io/tls` Secrets are watched across the cluster (kinds.py). Any other named Secret
(an Opaque CA bundle, or one that does not exist yet) is read with a plain GET of that one
Secret, when it is first named and then every `period` seconds, instead of a watch of its own:
a watch holds a connection for as long as it runs, and one per missing Secret (times namespaces)
once filled the whole connection pool and starved the Lease renewals. A named Secret that is
later created as `kubernetes.io/tls` appears through the TLS watch at once; any other change to
these Secrets is seen within `period`. A 404 means "missing" (translation reports it); any other
failure keeps what was last read and is retried at the next round.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Iterable

from passerelle.backoff import Backoff
from passerelle.kube.client import ApiClient, ApiStatusError, KubeError, Obj
from passerelle.kube.kinds import SECRET
from passerelle.kube.reflector import Health

log = logging.getLogger("passerelle.kubernetes")

Key = tuple[str, str]  # (namespace, name)
CONCURRENCY = 4  # GETs in flight at once: the pool's room beside the watches


class SecretPoller:
    """objects: what the last GET of each wanted Secret returned (absent when 404).
    `want()` sets which Secrets to read; `synced()`: every wanted one has been read once."""

    def __init__(
        self,
        client: ApiClient,
        *,
        health: Health,
        on_change: Callable[[], None],
        period: float = 30.0,
        backoff: Backoff | None = None,
    ) -> None:
        self.objects: dict[Key, Obj] = {}
        self.gets = 0  # requests made, for tests and metrics
        self.version = 0  # bumped whenever `objects` changes
        self._client = client
        self._health = health
        self._on_change = on_change
        self._period = period
        self._backoff = backoff or Backoff()
        self._wanted: frozenset[Key] = frozenset()
        self._read: set[Key] = set()  # answered (200 or 404) at least once
        self._wake = asyncio.Event()

    def want(self, keys: Iterable[Key]) -> None:
        wanted = frozenset(keys)
        if wanted == self._wanted:
            return
        dropped = self._wanted - wanted
        self._wanted = wanted
        self._read -= dropped
        if any([self.objects.pop(k, None) is not None for k in dropped]):
            self.version += 1
            self._on_change()
        if wanted - self._read:
            self._wake.set()  # read the new ones now, not at the next round

    def synced(self) -> bool:
        return self._wanted <= self._read

    async def run(self) -> None:
        keys, attempt = self._wanted, 0
        while True:
            self._wake.clear()  # a want() during the round wakes the next one at once
            failed = await self._round(keys)
            attempt = attempt + 1 if failed else 0
            delay = self._backoff.delay(attempt - 1, random.random()) if failed else self._period
            try:
                async with asyncio.timeout(delay):
                    await self._wake.wait()
                keys = self._wanted - self._read  # newly named: only those
            except TimeoutError:
                keys = self._wanted  # the periodic round (or the retry): all of them

    async def _round(self, keys: Iterable[Key]) -> bool:
        """GET each of `keys`; True when some could not be read."""
        gate = asyncio.Semaphore(CONCURRENCY)
        results = []

        async def read(key: Key) -> None:
            async with gate:
                results.append(await self._get(key))

        async with asyncio.TaskGroup() as tasks:
            for key in sorted(keys):
                tasks.create_task(read(key))
        return not all(results)

    async def _get(self, key: Key) -> bool:
        namespace, name = key
        self.gets += 1
        try:
            obj: Obj | None = await self._client.get(f"{SECRET.path(namespace)}/{name}")
        except ApiStatusError as e:
            if e.code != 404:
                self._health.failed(f"Secret {namespace}/{name}", e, self._period)
                return False
            obj = None
        except KubeError as e:
            self._health.failed(f"Secret {namespace}/{name}", e, self._period)
            return False
        if key not in self._wanted:
            return True  # no longer named while we asked
        self._health.succeeded()
        first = key not in self._read
        self._read.add(key)
        previous = self.objects.get(key)
        if obj is None:
            changed = self.objects.pop(key, None) is not None
        else:
            obj["kind"], obj["apiVersion"] = SECRET.kind, SECRET.api_version
            changed = previous is None or _version(previous) != _version(obj)
            if changed:  # else keep the very same dict, for translation's memo
                self.objects[key] = obj
        self.version += changed
        if changed or first:
            self._on_change()
        return True


def _version(obj: Obj) -> object:
    return (obj.get("metadata") or {}).get("resourceVersion")
