"""plan(): what is due, in which order, what is served; backoff()."""

from __future__ import annotations

import datetime
import random

import pytest

from passerelle.acme.plan import Failure, Reason, RenewPolicy, backoff, key_of, newest, plan
from passerelle.acme.records import StoredCertificate
from passerelle.model import CertificateRequest

NOW = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.UTC)
DAY = datetime.timedelta(days=1)


def request(*names: str, resolver: str = "le") -> CertificateRequest:
    return CertificateRequest(resolver=resolver, names=names)


def stored(
    *names: str, issued: float, lifetime: float = 90, renew_at: datetime.datetime | None = None
) -> StoredCertificate:
    """A certificate issued `issued` days before NOW, valid `lifetime` days."""
    start = NOW - issued * DAY
    return StoredCertificate(
        resolver="le", names=names, cert_pem="", key_pem="", not_before=start, not_after=start + lifetime * DAY,
        renew_at=renew_at,
    )  # fmt: skip


CASES = [
    # (name, requests, stored, failures, policy, expected [(names, reason)], served names)
    ("nothing stored: a new order", [request("a")], [], {}, RenewPolicy(), [(("a",), Reason.NEW)], []),
    ("fresh: nothing due", [request("a")], [stored("a", issued=10)], {}, RenewPolicy(), [], [("a",)]),
    ("2/3 of 90 days is day 60: due", [request("a")], [stored("a", issued=61)], {}, RenewPolicy(),
     [(("a",), Reason.RENEWAL)], [("a",)]),
    ("day 59: not yet", [request("a")], [stored("a", issued=59)], {}, RenewPolicy(), [], [("a",)]),
    ("6-day certificate: one third is 2 days", [request("a")], [stored("a", issued=4.1, lifetime=6)], {},
     RenewPolicy(), [(("a",), Reason.RENEWAL)], [("a",)]),
    ("renewBefore 30 days", [request("a")], [stored("a", issued=59, lifetime=90)], {}, RenewPolicy(seconds=31 * 86400),
     [(("a",), Reason.RENEWAL)], [("a",)]),
    ("renewBefore longer than the lifetime falls back to the fraction", [request("a")],
     [stored("a", issued=1, lifetime=6)], {}, RenewPolicy(seconds=10 * 86400), [], [("a",)]),
    ("ARI says later", [request("a")], [stored("a", issued=70, renew_at=NOW + DAY)], {}, RenewPolicy(), [], [("a",)]),
    ("ARI says now", [request("a")], [stored("a", issued=5, renew_at=NOW - DAY)], {}, RenewPolicy(),
     [(("a",), Reason.RENEWAL)], [("a",)]),
    ("expired: ordered, not served", [request("a")], [stored("a", issued=91)], {}, RenewPolicy(),
     [(("a",), Reason.EXPIRED)], []),
    ("names changed: a new order, the old one still served", [request("a", "b")], [stored("a", issued=1)], {},
     RenewPolicy(), [(("a", "b"), Reason.NEW)], [("a",)]),
    ("same names in another order are the same certificate", [request("b", "a")], [stored("a", "b", issued=1)],
     {}, RenewPolicy(), [], [("a", "b")]),
    ("backing off", [request("a")], [], {key_of(request("a")): Failure(count=2, retry_at=NOW + DAY, error="x")},
     RenewPolicy(), [], []),
    ("backoff over", [request("a")], [], {key_of(request("a")): Failure(count=2, retry_at=NOW - DAY, error="x")},
     RenewPolicy(), [(("a",), Reason.NEW)], []),
    ("urgency: expired, then new, then renewals soonest expiry first",
     [request("renew-late"), request("new"), request("renew-soon"), request("expired")],
     [stored("renew-late", issued=61), stored("renew-soon", issued=80), stored("expired", issued=95)], {},
     RenewPolicy(),
     [(("expired",), Reason.EXPIRED), (("new",), Reason.NEW), (("renew-soon",), Reason.RENEWAL),
      (("renew-late",), Reason.RENEWAL)],
     [("renew-late",), ("renew-soon",)]),
    ("nobody wants it: served until it expires, never renewed", [], [stored("gone", issued=80)], {}, RenewPolicy(),
     [], [("gone",)]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("requests", "certs", "failures", "policy", "expected", "served"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_plan(
    requests: list[CertificateRequest],
    certs: list[StoredCertificate],
    failures: dict[tuple[str, frozenset[str]], Failure],
    policy: RenewPolicy,
    expected: list[tuple[tuple[str, ...], Reason]],
    served: list[tuple[str, ...]],
) -> None:
    result = plan(requests, certs, failures, NOW, {"le": policy})
    assert [(o.request.names, o.reason) for o in result.orders] == expected
    assert [c.names for c in result.served] == served


def test_the_newest_certificate_is_served_first_and_the_wake_is_the_next_renewal() -> None:
    old, new = stored("a", issued=30), stored("a", "b", issued=1)
    result = plan([request("a"), request("a", "b")], [old, new], {}, NOW, {})
    assert [c.names for c in result.served] == [("a", "b"), ("a",)]  # the newest wins a shared name
    assert result.wake == old.not_after - (old.not_after - old.not_before) / 3


def test_newest_keeps_the_longest_lasting_certificate_of_each_set_of_names() -> None:
    short, long, other = stored("a", issued=80), stored("a", issued=10), stored("b", issued=50)
    twin = stored("a", issued=10)
    assert newest([short, long, twin, other]) == {key_of(request("a")): long, key_of(request("b")): other}
    assert newest([long, short])[key_of(request("a"))] is long
    assert newest([twin, long])[key_of(request("a"))] is twin  # the first of equals
    assert newest([]) == {}


def test_backoff_doubles_with_jitter_up_to_the_maximum_and_honours_retry_after() -> None:
    rand = random.Random(7)
    waits = [backoff(n, initial=300, maximum=3600, rand=rand) for n in range(1, 8)]
    for n, wait in enumerate(waits, start=1):
        base = min(300 * 2 ** (n - 1), 3600)
        assert base / 2 <= wait <= base
    assert len(set(waits)) == len(waits)  # jittered
    assert backoff(1, initial=300, maximum=3600, retry_after=7200, rand=rand) == 7200


def test_expired_certificates_nobody_wants_are_forgotten() -> None:
    wanted_expired, unwanted_expired, unwanted_valid = (
        stored("a", issued=91),
        stored("b", issued=91),
        stored("c", issued=1),
    )
    result = plan([request("a")], [wanted_expired, unwanted_expired, unwanted_valid], {}, NOW, {})
    assert [c.names for c in result.forget] == [("b",)]  # "a" is renewed, "c" still serves
    assert [o.request.names for o in result.orders] == [("a",)]


def test_backoff_after_very_many_failures_stays_at_the_maximum() -> None:
    rand = random.Random(3)
    assert 1800 <= backoff(5000, initial=300, maximum=3600, rand=rand) <= 3600  # no OverflowError
