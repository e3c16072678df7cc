"""A configured resolver as the controller holds it: settings, storage, CA session, counters."""

from __future__ import annotations

import datetime
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from passerelle.acme import plan as planning
from passerelle.acme.protocol import ClientOptions, Session
from passerelle.acme.store import Storage
from passerelle.settings.acme import Acme


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
