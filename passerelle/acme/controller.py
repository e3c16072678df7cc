"""The ACME controller: wanted certificates in, stored certificates and challenges out.

It listens to configuration versions (their `tls.requests`) and runs two loops. `_watch` reads
the storage whenever it says it changed (Secrets: a watch event) and at least every POLL seconds:
stored certificates (any replica's) go to the watcher, which serves them in the next version;
pending challenges (any replica's) go to this replica's workers. `_order` plans (plan.py) and
takes the most urgent due order, one at a time, once the storage has been read: it locks the
certificate in the storage (another replica holding the lock orders it; this one reads the result
later), checks the storage again, orders, publishes the challenges, waits the challenge `delay`
so that every replica has read them, lets the CA validate, stores the certificate. The lock is
renewed meanwhile; once lost (a Lease nobody could renew), the order stops. A failure is a backoff
with jitter (at least the CA's Retry-After), a Problem on the Ingresses that want the certificate,
and a count in `status()`; the certificate already served, if any, stays. An issued certificate
the storage refuses is served from memory and stored again every round until it is.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
from collections.abc import Callable
from typing import Any

from passerelle.acme import plan as planning
from passerelle.acme.protocol import AcmeError
from passerelle.acme.records import HTTP_01, TLS_ALPN_01, Challenge, StoredCertificate, certificate_id
from passerelle.acme.resolver import Resolver, ca_bundle, client_options, metrics_of, session_of, status_of
from passerelle.acme.store import Storage, StorageError, file_storage, while_held
from passerelle.control.watcher import Version
from passerelle.model import Certificate, CertificateRequest, Problem, Severity
from passerelle.settings.acme import Acme
from passerelle.settings.acme import Storage as StorageSettings

log = logging.getLogger("passerelle.acme")
POLL = 1.0  # seconds between readings of the storage (challenges, other replicas' certificates)


class AcmeController:
    def __init__(
        self,
        resolvers: dict[str, Acme],
        *,
        contribute: Callable[[tuple[Certificate, ...], tuple[Problem, ...]], object],
        challenges: Callable[[dict[str, Any]], None],
        now: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
        alpn_seam: bool = True,
        storage: Callable[[StorageSettings], Storage] = file_storage,
    ) -> None:
        """alpn_seam: workers may use tls/openssl.py to see ALPN offers (the probe passed).
        storage: makes the Storage for a resolver's `storage` (one per distinct setting)."""
        self._alpn_seam = alpn_seam
        self._contribute = contribute
        self._send_challenges = challenges
        self._now = now
        self._storages: dict[StorageSettings, Storage] = {}
        self._resolvers: dict[str, Resolver] = {}
        for name, settings in resolvers.items():
            if settings.storage not in self._storages:
                self._storages[settings.storage] = storage(settings.storage)
            before = settings.renewBefore
            self._resolvers[name] = Resolver(
                name=name,
                settings=settings,
                storage=self._storages[settings.storage],
                options=client_options(settings, ca_bundle(settings)),
                policy=planning.RenewPolicy(fraction=before.fraction or 1 / 3, seconds=before.duration),
            )
        self._http_entrypoints = sorted(
            {s.httpChallenge.entryPoint for s in resolvers.values() if s.httpChallenge is not None}
        )
        self._requests: tuple[CertificateRequest, ...] = ()
        self._seen_version = False
        self._failures: dict[planning.Key, planning.Failure] = {}
        self._problems: dict[planning.Key, tuple[Problem, ...]] = {}
        self._held_elsewhere: dict[planning.Key, datetime.datetime] = {}
        self._served: dict[tuple[str, str, datetime.datetime], Certificate] = {}
        self._last_challenges: dict[str, Any] | None = None
        self._unsaved: dict[planning.Key, StoredCertificate] = {}  # issued, refused by the storage
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self.pending: tuple[Challenge, ...] = ()  # this replica's, being validated

    # -- inputs ------------------------------------------------------------------------------
    def on_version(self, version: Version) -> None:
        """The watcher's listener: what the cluster wants now."""
        requests = tuple(r for r in version.config.tls.requests if r.resolver in self._resolvers)
        self._seen_version = True
        if requests != self._requests:
            self._requests = requests
            self._wake.set()

    async def load(self) -> None:
        """Read the storage once (at start, before the first version: nothing is ordered then)."""
        for storage in self._storages.values():
            await storage.open()
        await self._refresh_certificates()
        self._refresh_challenges()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            for storage in self._storages.values():
                tasks.create_task(storage.run(self._changed.set))
            tasks.create_task(self._watch())
            tasks.create_task(self._order_loop())

    def metrics(self) -> dict[str, dict[str, Any]]:
        """Per resolver, what observability/metrics.py exports (resolver.metrics_of)."""
        now = self._now()
        return {name: metrics_of(r, self._stored(r), now) for name, r in self._resolvers.items()}

    def status(self) -> dict[str, Any]:
        now = self._now()
        pending = len(self.pending)
        return {
            name: status_of(r, self._stored(r), self._failures, pending, now)
            for name, r in self._resolvers.items()
        }

    # -- reading the storage -------------------------------------------------------------------
    async def _watch(self) -> None:
        while True:
            try:
                async with asyncio.timeout(POLL):
                    await self._changed.wait()
            except TimeoutError:
                pass
            self._changed.clear()
            try:
                await self._store_unsaved()
                await self._refresh_certificates()
                self._refresh_challenges()
            except StorageError as e:
                log.error("%s", e)

    def _stored(self, resolver: Resolver) -> list[StoredCertificate]:
        unsaved = [c for c in self._unsaved.values() if c.resolver == resolver.name]
        try:
            return resolver.storage.certificates(resolver.name) + unsaved
        except StorageError as e:
            log.error("%s", e)
            return unsaved

    async def _save(self, resolver: Resolver, cert: StoredCertificate) -> None:
        """Store `cert`; if the storage refuses, serve it from memory and try again every round."""
        try:
            await resolver.storage.save_certificate(cert)
        except StorageError as e:
            if cert.key not in self._unsaved:
                log.error(
                    "%s: the certificate for %s could not be stored (%s); it is served from memory and "
                    "stored as soon as the storage takes it",
                    resolver.name,
                    ", ".join(cert.names),
                    e,
                )
            self._unsaved[cert.key] = cert
        else:
            self._unsaved.pop(cert.key, None)

    async def _store_unsaved(self) -> None:
        for cert in list(self._unsaved.values()):
            await self._save(self._resolvers[cert.resolver], cert)

    def _plan(self) -> planning.Plan:
        stored = [c for r in self._resolvers.values() for c in self._stored(r)]
        policies = {name: r.policy for name, r in self._resolvers.items()}
        failures = dict(self._failures)
        for key, until in self._held_elsewhere.items():  # another replica orders it: look later
            failure = failures.get(key)
            if failure is None or failure.retry_at < until:
                failures[key] = planning.Failure(count=0, retry_at=until, error="")
        return planning.plan(self._requests, stored, failures, self._now(), policies)

    async def _refresh_certificates(self) -> None:
        served = []
        current: dict[tuple[str, str, datetime.datetime], Certificate] = {}
        plan = self._plan()
        if self._seen_version:  # before the first version, every certificate looks unwanted
            for gone in plan.forget:
                log.info("%s: forgetting expired certificate %s, which nobody wants", gone.resolver, gone.id)
                self._unsaved.pop(gone.key, None)
                await self._resolvers[gone.resolver].storage.delete_certificate(gone)
        for cert in plan.served:
            key = (cert.resolver, cert.id, cert.not_after)
            certificate = self._served.get(key)
            if certificate is None:
                try:
                    certificate = cert.served()
                except ValueError as e:
                    log.error(
                        "stored certificate %s of resolver %s is unusable: %s", cert.id, cert.resolver, e
                    )
                    continue
            current[key] = certificate
            served.append(certificate)
        self._served = current
        wanted = {planning.key_of(r) for r in self._requests}
        for stale in [k for k in self._problems if k not in wanted]:  # its Ingress went, or changed names
            del self._problems[stale]
            self._failures.pop(stale, None)
        for stale in [k for k in self._held_elsewhere if k not in wanted]:
            del self._held_elsewhere[stale]
        problems = tuple(p for ps in self._problems.values() for p in ps)
        self._contribute(tuple(served), problems)

    def _refresh_challenges(self) -> None:
        found: dict[str, Challenge] = {}
        for resolver in self._resolvers.values():
            for c in resolver.storage.challenges():
                found[f"{c.type}/{c.token or c.name}"] = c
        message: dict[str, Any] = {
            "type": "challenges",
            "alpnSeam": self._alpn_seam,
            "entrypoints": self._http_entrypoints,
            "http": {c.token: c.key_authorization for c in found.values() if c.type == HTTP_01},
            "tlsAlpn": [
                {"name": c.name, "certPem": c.cert_pem, "keyPem": c.key_pem}
                for c in found.values()
                if c.type == TLS_ALPN_01
            ],
        }
        if message != self._last_challenges:
            self._last_challenges = message
            self._send_challenges(message)

    # -- ordering ----------------------------------------------------------------------------
    async def _order_loop(self) -> None:
        while not all(s.ready() for s in self._storages.values()):
            await asyncio.sleep(POLL / 4)  # unread storage: every certificate would look missing
        while True:
            plan = self._plan()
            if plan.orders:
                await self._order(plan.orders[0])
                await asyncio.sleep(0)  # whatever happened, let the watch loop and the API run
                continue
            if await self._renewal_info():
                await self._refresh_certificates()
                continue
            timeout = POLL * 5
            if plan.wake is not None:
                timeout = min(timeout, max(0.05, (plan.wake - self._now()).total_seconds()))
            self._wake.clear()
            try:
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _order(self, order: planning.Order) -> None:
        request = order.request
        resolver = self._resolvers[request.resolver]
        key = planning.key_of(request)
        names = ", ".join(request.names)
        try:
            lock = await resolver.storage.try_lock(resolver.name, certificate_id(request.names))
        except StorageError as e:
            self._failed(resolver, request, e)
            return
        if lock is None:
            log.info("%s: another replica is ordering %s; reading its result", resolver.name, names)
            self._held_elsewhere[key] = self._now() + datetime.timedelta(seconds=POLL * 2)
            return
        self._held_elsewhere.pop(key, None)
        challenges: list[Challenge] = []
        try:
            if order not in self._plan().orders:  # it was stored meanwhile, by a replica that held the lock
                return
            resolver.health.orders += 1
            log.info("%s: ordering a certificate for %s (%s)", resolver.name, names, order.reason)
            held, issued = await while_held(lock, self._issue(resolver, request, challenges))
            if not held or issued is None:
                resolver.health.count_failure("leaseLost")
                log.warning("%s: lost the lock on %s while ordering it; stopped", resolver.name, names)
                self._held_elsewhere[key] = self._now() + datetime.timedelta(seconds=POLL * 2)
                return
            await self._save(resolver, issued)  # with or without the lock: a save never loses a later one
        except (AcmeError, StorageError) as e:
            self._failed(resolver, request, e)
        except Exception as e:  # a bug or a library surprise must cost this order, not the controller
            log.exception("%s: ordering %s failed", resolver.name, names)
            self._failed(resolver, request, AcmeError("ca", f"{type(e).__name__}: {e}"))
        else:
            self._failures.pop(key, None)
            self._problems.pop(key, None)
            resolver.health.issued += 1
            if order.reason is not planning.Reason.NEW:
                resolver.health.renewed += 1
            log.info("%s: certificate for %s issued, valid until %s", resolver.name, names, issued.not_after)
        finally:
            for challenge in challenges:
                try:
                    await resolver.storage.withdraw(challenge)
                except StorageError as e:  # left behind: ignored after CHALLENGE_MAX_AGE, then deleted
                    log.warning("%s", e)
            self.pending = tuple(c for c in self.pending if c not in challenges)
            await lock.release()
            await self._refresh_certificates()
            self._refresh_challenges()

    async def _issue(
        self, resolver: Resolver, request: CertificateRequest, challenges: list[Challenge]
    ) -> StoredCertificate:
        """Order, answer and download one certificate (`challenges`: what was published, to withdraw)."""
        session = await session_of(resolver, retry=POLL / 4)
        pending = await asyncio.to_thread(session.begin, request.names)
        for challenge in pending.challenges:
            await resolver.storage.publish(challenge)
            challenges.append(challenge)
        self.pending = self.pending + pending.challenges
        self._refresh_challenges()
        if pending.challenges:
            await asyncio.sleep(resolver.challenge_delay(pending.challenges))
        chain, key_pem = await asyncio.to_thread(session.complete, pending)
        return StoredCertificate.from_pem(
            resolver=resolver.name, names=request.names, cert_pem=chain, key_pem=key_pem
        )

    async def _renewal_info(self) -> bool:
        """Ask the CA's renewalInfo (ARI, RFC 9773) about one wanted certificate whose answer is
        due; True if one was asked. Without ARI, look again in 6 hours (ari.DEFAULT_RETRY)."""
        now = self._now()
        wanted = {planning.key_of(r) for r in self._requests}
        for resolver in self._resolvers.values():
            if resolver.ari_retry_at > now:
                continue
            for cert in self._stored(resolver):
                if cert.key not in wanted or cert.not_after <= now or (cert.ari_next and cert.ari_next > now):
                    continue
                try:
                    session = await session_of(resolver, retry=POLL / 4)
                    renew_at, again = await asyncio.to_thread(session.renewal_info, cert.cert_pem)
                    await self._save(resolver, dataclasses.replace(cert, renew_at=renew_at, ari_next=again))
                except (AcmeError, StorageError) as e:
                    log.warning("%s: renewal information for %s: %s", resolver.name, ", ".join(cert.names), e)
                    resolver.ari_retry_at = now + datetime.timedelta(
                        seconds=resolver.settings.retry.initialInterval
                    )
                    if isinstance(e, AcmeError) and e.kind == "unreachable":
                        resolver.session = None
                return True
        return False

    def _failed(self, resolver: Resolver, request: CertificateRequest, error: Exception) -> None:
        key = planning.key_of(request)
        if isinstance(error, AcmeError) and error.kind == "unreachable":
            resolver.session = None  # connect again (and find the account again) next time
        before = self._failures.get(key)
        count = (before.count if before else 0) + 1
        retry = resolver.settings.retry
        wait = planning.backoff(
            count,
            initial=retry.initialInterval,
            maximum=retry.maxInterval,
            retry_after=error.retry_after if isinstance(error, AcmeError) else 0.0,
        )
        retry_at = self._now() + datetime.timedelta(seconds=wait)
        self._failures[key] = planning.Failure(count=count, retry_at=retry_at, error=str(error))
        resolver.health.count_failure(error.kind if isinstance(error, AcmeError) else "storage")
        resolver.health.last_error = str(error)
        names = ", ".join(request.names)
        message = (
            f"certificate for {names} from resolver {resolver.name} failed ({count} in a row): {error}; "
            f"retrying in {wait:.0f}s"
        )
        log.warning("%s", message)
        severity = Severity.ERROR if not self._has_certificate(resolver, key) else Severity.WARNING
        self._problems[key] = tuple(
            Problem(ref=ref, message=message, severity=severity) for ref in request.sources
        )

    def _has_certificate(self, resolver: Resolver, key: planning.Key) -> bool:
        now = self._now()
        return any(c.key == key and c.not_after > now for c in self._stored(resolver))
