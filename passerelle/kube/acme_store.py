"""ACME storage in Kubernetes Secrets (`storage: {secret: ...}`), ordering serialised by Leases.

The layout is acme_secrets.py's. One watch (label selector `passerelle.io/acme`, the storage
namespace only: never the cluster's other Secrets) keeps ACME's Secrets in memory, so reads cost
nothing and what another replica writes, a challenge token above all, reaches this one within the
watch's latency (milliseconds on a healthy API server); `run()` then tells the controller at once.
Writes carry the resourceVersion they were based on. A 409 re-reads the Secret, and writes again
only if ours loses nothing (`StoredCertificate.replaces`), so a replica with a stale view never
puts an older certificate back. What this replica wrote or read directly overlays the watch's copy
until the watch catches up (read-your-writes), so it never orders again what it has just stored.
Locks are Leases with client-go's rules (lease.py): one campaign per certificate, driven by
`try_lock`, renewed by `LeaseLock.keep()` while the order runs; an API that stops answering ends
the lock at the renew deadline, before any other replica can take the Lease over.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from passerelle.acme.records import Account, Challenge, StoredCertificate
from passerelle.acme.store import CHALLENGE_MAX_AGE, Storage, StorageError, file_storage
from passerelle.backoff import Backoff
from passerelle.kube import acme_secrets as layout
from passerelle.kube.client import ApiClient, ApiStatusError, KubeError, Obj
from passerelle.kube.kinds import SECRET, Kind
from passerelle.kube.lease import Leadership
from passerelle.kube.reflector import Health, Reflector
from passerelle.settings.acme import Storage as StorageSettings

log = logging.getLogger("passerelle.acme")

ACME_SECRETS = Kind(api_version="v1", plural="secrets", kind="Secret", labelled=True)
CONNECTIONS = 6  # ACME's own pool: its watch, two Lease renewals (certificate, account), writes
WRITES = 4  # attempts of one write through 409 Conflicts before it is a StorageError
OVERLAY_SECONDS = 30.0  # a direct read or write outlives the watch's copy at most this long
SWEEP = 60.0  # seconds between looks for challenge Secrets a dead replica left


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseTiming:
    """The certificate Leases' holder identity and client-go timings (the leaderElection keys)."""

    identity: str
    duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0


class LeaseLock:
    """A held certificate Lease: `keep()` renews it and returns once it is lost."""

    def __init__(self, campaign: Leadership) -> None:
        self._campaign = campaign

    async def keep(self) -> None:
        while self._campaign.is_leader():
            await asyncio.sleep(self._campaign.until_next())
            if not await self._campaign.attempt():
                return

    async def release(self) -> None:
        await self._campaign.release()


class SecretStorage:
    def __init__(
        self, client: ApiClient, *, namespace: str, lease: LeaseTiming, backoff: Backoff = Backoff()
    ) -> None:
        self.namespace = namespace
        self.health = Health(server=client.server)
        self._client = client
        self._path = SECRET.path(namespace)
        self._lease = lease
        self._changed: Callable[[], None] = lambda: None
        self._reflector = Reflector(
            client,
            ACME_SECRETS,
            health=self.health,
            on_change=self._watched,
            namespace=namespace,
            label_selector=layout.KIND,
            backoff=backoff,
        )
        self._overlay: dict[str, tuple[int, Obj | None, float]] = {}  # name -> (rv, object or deleted, when)
        self._parsed: dict[str, tuple[str, Any]] = {}  # name -> (resourceVersion, record or None)
        self._campaigns: dict[str, Leadership] = {}

    def ready(self) -> bool:
        return self._reflector.synced.is_set()

    async def open(self) -> None:
        try:
            await self._reflector.prime()
        except KubeError as e:
            log.warning(
                "ACME storage: cannot list the Secrets in namespace %s yet (%s); nothing is ordered "
                "until they are read",
                self.namespace,
                e,
            )

    async def run(self, changed: Callable[[], None]) -> None:
        self._changed = changed
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._reflector.run())
            tasks.create_task(self._sweep())

    # -- reads -------------------------------------------------------------------------------------
    def _objects(self) -> dict[str, Obj]:
        """The watch's Secrets, with this replica's own reads and writes over them until it catches up."""
        current = {name: obj for (_, name), obj in self._reflector.objects.items()}
        self._settle(current)
        for name, (_, obj, _) in self._overlay.items():
            if obj is None:
                current.pop(name, None)
            else:
                current[name] = obj
        return current

    def _settle(self, current: dict[str, Obj] | None = None) -> None:
        """Drop what the watch has caught up with. Run on every watch event too: an overlay entry
        kept past the event that matched it would hide a later deletion by another replica."""
        if current is None:
            current = {name: obj for (_, name), obj in self._reflector.objects.items()}
        now = time.monotonic()
        for name, (rv, obj, when) in list(self._overlay.items()):
            seen = current.get(name)
            if obj is not None:
                caught_up = seen is not None and _rv(seen) >= rv
            else:
                caught_up = seen is None or _rv(seen) > rv
            if caught_up or now - when > OVERLAY_SECONDS:
                del self._overlay[name]

    def _watched(self) -> None:
        if self._overlay:
            self._settle()
        self._changed()

    def _records(self, kind: str, parse: Callable[[Obj], Any]) -> list[tuple[Obj, Any]]:
        """(Secret, record) for each readable Secret of `kind`; parsed once per resourceVersion."""
        objects = self._objects()
        for gone in self._parsed.keys() - objects.keys():
            del self._parsed[gone]
        out = []
        for name, obj in sorted(objects.items()):
            if layout.kind_of(obj) != kind:
                continue
            version = str((obj.get("metadata") or {}).get("resourceVersion"))
            cached = self._parsed.get(name)
            if cached is not None and cached[0] == version:
                record = cached[1]
            else:
                try:
                    record = parse(obj)
                except (ValueError, KeyError, TypeError) as e:
                    log.warning(
                        "ACME storage: Secret %s/%s is unreadable, skipped: %s", self.namespace, name, e
                    )
                    record = None
                self._parsed[name] = (version, record)
            if record is not None:
                out.append((obj, record))
        return out

    def load_account(self, resolver: str) -> Account | None:
        name = layout.account_secret(resolver)
        return next(
            (a for o, a in self._records(layout.ACCOUNT, layout.account_of) if _name(o) == name), None
        )

    def certificates(self, resolver: str) -> list[StoredCertificate]:
        found = self._records(layout.CERTIFICATE, layout.certificate_of)
        return [c for o, c in found if layout.resolver_of(o) == resolver]

    def challenges(self) -> list[Challenge]:
        """Every replica's pending challenges; one older than CHALLENGE_MAX_AGE was left by a
        replica that died mid-order (its Lease expired): ignored, and deleted by `run()`."""
        oldest = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=CHALLENGE_MAX_AGE)
        return [c for o, c in self._records(layout.CHALLENGE, layout.challenge_of) if not _older(o, oldest)]

    # -- writes ------------------------------------------------------------------------------------
    async def save_account(self, resolver: str, account: Account) -> None:
        # written under the account Lease only: the registration just made is the one to keep
        await self._write(layout.account_to_secret(resolver, account), lambda current: False)

    async def save_certificate(self, cert: StoredCertificate) -> None:
        def theirs_wins(current: Obj) -> bool:
            return not cert.replaces(layout.certificate_of(current))

        await self._write(layout.certificate_to_secret(cert), theirs_wins)

    async def delete_certificate(self, cert: StoredCertificate) -> None:
        """Only the Secret as this replica last saw it (a precondition): a replacement stays."""
        name = layout.certificate_secret(cert.resolver, cert.id)
        seen = self._objects().get(name)
        try:
            same = seen is not None and layout.certificate_of(seen).cert_pem == cert.cert_pem
        except (ValueError, KeyError, TypeError):
            same = False
        if seen is not None and same:
            await self._delete(name, seen)

    async def publish(self, challenge: Challenge) -> None:
        await self._write(layout.challenge_to_secret(challenge), lambda current: False)

    async def withdraw(self, challenge: Challenge) -> None:
        await self._delete(layout.challenge_secret(challenge), None)

    async def _write(self, body: Obj, theirs_wins: Callable[[Obj], bool]) -> None:
        """Create or replace the Secret from the version this replica holds, unless
        `theirs_wins(stored)`; on a conflict read the stored one and decide again."""
        name = _name(body)
        current = self._objects().get(name)
        for _ in range(WRITES):
            if current is not None and _wins(theirs_wins, current):
                log.debug("ACME storage: Secret %s/%s holds a later record; kept", self.namespace, name)
                return
            try:
                if current is None:
                    written = await self._client.request("POST", self._path, body=body)
                else:
                    meta = {**body["metadata"], "resourceVersion": current["metadata"]["resourceVersion"]}
                    written = await self._client.request(
                        "PUT", f"{self._path}/{name}", body={**body, "metadata": meta}
                    )
                self._remember(name, written)
                return
            except ApiStatusError as e:
                if e.code not in (404, 409):
                    raise StorageError(f"ACME storage: writing Secret {self.namespace}/{name}: {e}") from None
            except KubeError as e:
                raise StorageError(f"ACME storage: writing Secret {self.namespace}/{name}: {e}") from None
            current = await self._get(name)  # 409: changed or created meanwhile; 404: deleted meanwhile
        raise StorageError(
            f"ACME storage: Secret {self.namespace}/{name} kept changing under {WRITES} writes"
        )

    async def _get(self, name: str) -> Obj | None:
        try:
            obj: Obj | None = await self._client.get(f"{self._path}/{name}")
        except ApiStatusError as e:
            if e.code != 404:
                raise StorageError(f"ACME storage: reading Secret {self.namespace}/{name}: {e}") from None
            obj = None
        except KubeError as e:
            raise StorageError(f"ACME storage: reading Secret {self.namespace}/{name}: {e}") from None
        if obj is None:
            seen = self._objects().get(name)
            if seen is not None:
                self._overlay[name] = (_rv(seen), None, time.monotonic())
        else:
            self._remember(name, obj)
        return obj

    async def _delete(self, name: str, seen: Obj | None) -> None:
        """Delete Secret `name`; with `seen`, only while it is still that version."""
        body = None
        if seen is not None:
            body = {"apiVersion": "v1", "kind": "DeleteOptions",
                    "preconditions": {"resourceVersion": seen["metadata"]["resourceVersion"]}}  # fmt: skip
        try:
            await self._client.request("DELETE", f"{self._path}/{name}", body=body)
        except ApiStatusError as e:
            if e.code == 409:
                return  # replaced meanwhile: the replacement stays
            if e.code != 404:
                raise StorageError(f"ACME storage: deleting Secret {self.namespace}/{name}: {e}") from None
        except KubeError as e:
            raise StorageError(f"ACME storage: deleting Secret {self.namespace}/{name}: {e}") from None
        held = seen or self._objects().get(name)
        self._overlay[name] = (_rv(held) if held else -1, None, time.monotonic())

    def _remember(self, name: str, obj: Obj) -> None:
        obj.setdefault("kind", "Secret")
        obj.setdefault("apiVersion", "v1")
        self._overlay[name] = (_rv(obj), obj, time.monotonic())

    # -- locks -------------------------------------------------------------------------------------
    async def try_lock(self, resolver: str, cert_id: str) -> LeaseLock | None:
        name = layout.lease_name(resolver, cert_id)
        campaign = self._campaigns.get(name)
        if campaign is None:
            campaign = self._campaigns[name] = Leadership(
                self._client,
                namespace=self.namespace,
                name=name,
                identity=self._lease.identity,
                lease_duration=self._lease.duration,
                renew_deadline=self._lease.renew_deadline,
                retry_period=self._lease.retry_period,
            )
        if not await campaign.attempt():
            return None
        lock = LeaseLock(campaign)
        if cert_id != "account":
            try:  # the certificate as stored now: the watch may lag behind the replica that held the Lease
                await self._get(layout.certificate_secret(resolver, cert_id))
            except StorageError:
                await lock.release()
                raise
        return lock

    async def _sweep(self) -> None:
        """Delete challenge Secrets older than CHALLENGE_MAX_AGE (their replica died mid-order)."""
        while True:
            await asyncio.sleep(SWEEP)
            oldest = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=CHALLENGE_MAX_AGE)
            for name, obj in self._objects().items():
                if layout.kind_of(obj) == layout.CHALLENGE and _older(obj, oldest):
                    try:
                        await self._delete(name, obj)
                    except StorageError as e:
                        log.debug("%s", e)


def _wins(theirs_wins: Callable[[Obj], bool], stored: Obj) -> bool:
    try:
        return theirs_wins(stored)
    except (ValueError, KeyError, TypeError):
        return False  # unreadable: ours replaces it


def _name(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _rv(obj: Obj) -> int:
    """resourceVersion as a number: it is etcd's revision on every API server in use, though the API
    calls it opaque; with one that is not a number the watch's copy counts as caught up at once."""
    text = str((obj.get("metadata") or {}).get("resourceVersion") or "")
    return int(text) if text.isdigit() else 2**62


def _older(obj: Obj, oldest: datetime.datetime) -> bool:
    when = layout.created(obj)
    return when is not None and when < oldest


def storage_factory(
    client: ApiClient | None, *, namespace: str, lease: LeaseTiming
) -> Callable[[StorageSettings], Storage]:
    """What the controller makes each resolver's storage with: Secrets in `storage.secret.namespace`
    ("" for `namespace`) through `client`, or a directory."""

    def make(settings: StorageSettings) -> Storage:
        if settings.secret is None or client is None:
            return file_storage(settings)
        return SecretStorage(client, namespace=settings.secret.namespace or namespace, lease=lease)

    return make
