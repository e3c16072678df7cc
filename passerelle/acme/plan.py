"""What to order now, and when to look again (pure: wanted + stored + failures + now -> Plan).

A wanted certificate (one `CertificateRequest`) is due when the storage holds none for exactly
its names, or when the one it holds reaches its renewal time: the CA's suggestion (ARI, RFC 9773)
when it gave one, else `renewBefore` before notAfter, by default one third of the certificate's own
lifetime (cert-manager's 2/3 rule; Let's Encrypt recommends it, and it stays right as lifetimes
shrink to 45 and 6 days). A due certificate whose last attempt failed waits for its backoff.
Due orders are sorted by urgency: expired first, then ones with no certificate yet, then renewals
by how soon they expire; the controller takes them one at a time. Served: every stored
certificate that has not expired, newest first — a failure or a vanished Ingress never takes a
working certificate away (ones nobody wants any more are not renewed, and are forgotten once
they have expired).
"""

from __future__ import annotations

import datetime
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from passerelle.acme.records import StoredCertificate
from passerelle.backoff import Backoff
from passerelle.model import CertificateRequest

Key = tuple[str, frozenset[str]]  # (resolver, names): one certificate


class Reason(StrEnum):
    NEW = "new"  # nothing stored for these names
    RENEWAL = "renewal"  # the stored one reached its renewal time
    EXPIRED = "expired"  # the stored one has expired: the hosts are served the default certificate


@dataclass(frozen=True, slots=True, kw_only=True)
class RenewPolicy:
    """`renewBefore`: a fraction of the lifetime, or a duration (seconds) before notAfter. A
    duration as long as the lifetime would renew at once, forever: the fraction is used then."""

    fraction: float = 1 / 3
    seconds: float | None = None

    def renewal_time(self, cert: StoredCertificate) -> datetime.datetime:
        if cert.renew_at is not None:
            return cert.renew_at
        lifetime = cert.not_after - cert.not_before
        before = datetime.timedelta(seconds=self.seconds) if self.seconds is not None else None
        if before is None or before >= lifetime:
            before = lifetime * self.fraction
        return cert.not_after - before


@dataclass(frozen=True, slots=True, kw_only=True)
class Failure:
    """The last failed attempt for a certificate: how many in a row, and not before when again."""

    count: int
    retry_at: datetime.datetime
    error: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Order:
    request: CertificateRequest
    reason: Reason
    expires: datetime.datetime | None  # the stored certificate's notAfter, if any


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    orders: tuple[Order, ...]  # due now, most urgent first
    served: tuple[StoredCertificate, ...]
    wake: datetime.datetime | None  # the next renewal time or end of a backoff; None: nothing ahead
    forget: tuple[StoredCertificate, ...] = ()  # expired, and nobody wants them: to delete


def key_of(request: CertificateRequest) -> Key:
    return (request.resolver, frozenset(request.names))


def newest(stored: Iterable[StoredCertificate]) -> dict[Key, StoredCertificate]:
    """The stored certificate that lasts longest for each key (the first of equals)."""
    out: dict[Key, StoredCertificate] = {}
    for one in stored:
        held = out.get(one.key)
        if held is None or one.not_after > held.not_after:
            out[one.key] = one
    return out


def plan(
    requests: Iterable[CertificateRequest],
    stored: Iterable[StoredCertificate],
    failures: Mapping[Key, Failure],
    now: datetime.datetime,
    policies: Mapping[str, RenewPolicy],
) -> Plan:
    latest = newest(stored)
    orders: list[tuple[tuple[int, datetime.datetime], Order]] = []
    wakes: list[datetime.datetime] = []
    wanted_once = tuple(dict.fromkeys(requests))
    for request in wanted_once:
        key = key_of(request)
        cert = latest.get(key)
        if cert is None:
            reason, urgency = Reason.NEW, (1, now)
        else:
            due = policies.get(request.resolver, RenewPolicy()).renewal_time(cert)
            if due > now:
                wakes.append(due)
                continue
            expired = cert.not_after <= now
            reason = Reason.EXPIRED if expired else Reason.RENEWAL
            urgency = (0 if expired else 2, cert.not_after)
        failure = failures.get(key)
        if failure is not None and failure.retry_at > now:
            wakes.append(failure.retry_at)
            continue
        order = Order(request=request, reason=reason, expires=cert.not_after if cert else None)
        orders.append((urgency, order))
    orders.sort(key=lambda item: item[0])
    wanted = {key_of(r) for r in wanted_once}
    forget = tuple(c for c in latest.values() if c.not_after <= now and c.key not in wanted)
    served = sorted(
        (c for c in latest.values() if c.not_after > now), key=lambda c: c.not_before, reverse=True
    )
    wakes += (c.not_after for c in served)  # an expiry changes what is served
    return Plan(
        orders=tuple(o for _, o in orders), served=tuple(served), wake=min(wakes, default=None), forget=forget
    )


def backoff(
    count: int, *, initial: float, maximum: float, retry_after: float = 0.0, rand: random.Random | None = None
) -> float:
    """Seconds to wait after the `count`-th failure in a row: passerelle's one retry policy
    (`backoff.Backoff`: initial doubling up to maximum, equal jitter), never less than the CA's
    Retry-After."""
    draw = (rand or random.Random()).random()
    return max(Backoff(base=initial, cap=maximum).delay(max(count - 1, 0), draw), retry_after)
