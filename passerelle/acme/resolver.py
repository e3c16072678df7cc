"""A configured resolver as the controller holds it: settings, storage, CA session, counters;
its session with the CA (the account registered once for every replica), and what the API and
the metrics show of it."""

from __future__ import annotations

import asyncio
import datetime
import logging
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from passerelle.acme import plan as planning
from passerelle.acme.protocol import ClientOptions, Session
from passerelle.acme.records import HTTP_01, Challenge, StoredCertificate
from passerelle.acme.store import Storage, StorageError, while_held
from passerelle.settings.acme import Acme

log = logging.getLogger("passerelle.acme")


@dataclass(slots=True, kw_only=True)
class Health:
    """Counters for the API and metrics: monotonic, per resolver. failures_by: by reason, an
    AcmeError kind (unreachable, rateLimited, challenge, ca), "storage", or "leaseLost"."""

    orders: int = 0
    issued: int = 0
    renewed: int = 0
    failures: int = 0
    failures_by: dict[str, int] = field(default_factory=dict)
    last_error: str = ""

    def count_failure(self, reason: str) -> None:
        self.failures += 1
        self.failures_by[reason] = self.failures_by.get(reason, 0) + 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "orders": self.orders,
            "issued": self.issued,
            "renewed": self.renewed,
            "failures": self.failures,
            "failuresByReason": dict(sorted(self.failures_by.items())),
            "lastError": self.last_error,
        }


@dataclass(slots=True, kw_only=True)
class Resolver:
    name: str
    settings: Acme
    storage: Storage
    options: ClientOptions
    policy: planning.RenewPolicy
    session: Session | None = None
    health: Health = field(default_factory=Health)
    ari_retry_at: datetime.datetime = datetime.datetime.min.replace(tzinfo=datetime.UTC)

    def challenge_delay(self, challenges: tuple[Challenge, ...]) -> float:
        """Seconds to wait after publishing `challenges`, so that every replica has read them."""
        http, tls = self.settings.httpChallenge, self.settings.tlsChallenge
        if any(c.type == HTTP_01 for c in challenges) and http is not None:
            return http.delay
        return tls.delay if tls is not None else 0.0


async def session_of(resolver: Resolver, *, retry: float) -> Session:
    """Connected to the CA with the resolver's account, registered once for all replicas: the
    account lock makes a second replica wait (`retry` seconds between tries) and then find the
    first one's account."""
    if resolver.session is None:
        lock = await resolver.storage.try_lock(resolver.name, "account")
        while lock is None:
            await asyncio.sleep(retry)
            lock = await resolver.storage.try_lock(resolver.name, "account")
        try:
            held, session = await while_held(lock, _connect(resolver))
        finally:
            await lock.release()
        if not held or session is None:
            raise StorageError(f"{resolver.name}: lost the account lock while connecting to the CA")
        resolver.session = session
    return resolver.session


async def _connect(resolver: Resolver) -> Session:
    stored = resolver.storage.load_account(resolver.name)
    session = Session(resolver.options, stored)
    account = await asyncio.to_thread(session.connect)
    if account != stored:
        await resolver.storage.save_account(resolver.name, account)
        log.info("%s: ACME account %s registered at %s", resolver.name, account.uri, account.ca_server)
    return session


def metrics_of(
    resolver: Resolver, stored: Sequence[StoredCertificate], now: datetime.datetime
) -> dict[str, Any]:
    """What observability/metrics.py exports: the counters, failures by reason, and (names, unix
    time) of the next renewal of each certificate it holds."""
    held = [c for c in planning.newest(stored).values() if c.not_after > now]
    return {
        "orders": resolver.health.orders,
        "issued": resolver.health.issued,
        "renewed": resolver.health.renewed,
        "failures": dict(resolver.health.failures_by),
        "renewals": [(c.names, resolver.policy.renewal_time(c).timestamp()) for c in held],
    }


def status_of(
    resolver: Resolver,
    stored: Sequence[StoredCertificate],
    failures: Mapping[planning.Key, planning.Failure],
    pending: int,
    now: datetime.datetime,
) -> dict[str, Any]:
    """/api/acme's entry for the resolver: counters, CA, this replica's pending challenges, the
    certificates it holds and the ones failing."""
    return {
        **resolver.health.to_dict(),
        "caServer": resolver.settings.caServer,
        "pendingChallenges": pending,
        "certificates": [
            {
                "names": list(c.names),
                "notAfter": c.not_after.isoformat(),
                "renewAt": resolver.policy.renewal_time(c).isoformat(),
            }
            for c in stored
            if c.not_after > now
        ],
        "failing": [
            {
                "names": sorted(key[1]),
                "failures": f.count,
                "retryAt": f.retry_at.isoformat(),
                "error": f.error,
            }
            for key, f in failures.items()
            if key[0] == resolver.name
        ],
    }


def client_options(settings: Acme, bundle: str | bool) -> ClientOptions:
    return ClientOptions(
        ca_server=settings.caServer,
        email=settings.email,
        ca_bundle=bundle,
        eab_kid=settings.eab.kid if settings.eab else "",
        eab_hmac=settings.eab.hmacEncoded if settings.eab else "",
        key_type=settings.keyType,
        preferred_chain=settings.preferredChain,
        timeout=settings.clientTimeout,
        http01=settings.httpChallenge is not None,
        tlsalpn01=settings.tlsChallenge is not None,
    )


def ca_bundle(settings: Acme) -> str | bool:
    """caCertificates as one file (requests takes one path): the file itself when there is one,
    else them concatenated in the storage directory (a private temporary one for Secrets)."""
    if not settings.caCertificates:
        return True
    if len(settings.caCertificates) == 1:
        return settings.caCertificates[0]
    text = "".join(Path(p).read_text() for p in settings.caCertificates)
    folder = settings.storage.file or tempfile.mkdtemp(prefix="passerelle-acme-")
    path = Path(folder) / "ca-bundle.pem"
    path.write_text(text)
    return str(path)
