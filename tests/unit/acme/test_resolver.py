"""resolver.py's views of a resolver: its metrics and /api/acme entries, and its challenge delay."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from passerelle.acme.plan import Failure, RenewPolicy
from passerelle.acme.records import HTTP_01, TLS_ALPN_01, Challenge, StoredCertificate
from passerelle.acme.resolver import Resolver, client_options, metrics_of, status_of
from passerelle.acme.store import FileStorage
from passerelle.settings.acme import Acme

NOW = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.UTC)
DAY = datetime.timedelta(days=1)


def resolver(tmp_path: Path, **settings: object) -> Resolver:
    acme = Acme.model_validate({"caServer": "https://ca.example.test/dir", **settings})
    return Resolver(
        name="le",
        settings=acme,
        storage=FileStorage(tmp_path / "s"),
        options=client_options(acme, True),
        policy=RenewPolicy(),
    )


def stored(*names: str, issued: float, lifetime: float = 90) -> StoredCertificate:
    start = NOW - issued * DAY
    return StoredCertificate(
        resolver="le", names=names, cert_pem=f"{names} {issued}", key_pem="", not_before=start,
        not_after=start + lifetime * DAY,
    )  # fmt: skip


def test_metrics_renewals_are_the_newest_unexpired_certificate_of_each_set_of_names(tmp_path: Path) -> None:
    r = resolver(tmp_path)
    r.health.orders, r.health.issued = 3, 2
    r.health.count_failure("unreachable")
    old, new, gone = stored("a", issued=60), stored("a", issued=10), stored("b", issued=100)
    out = metrics_of(r, [old, new, gone], NOW)
    renew = new.not_after - (new.not_after - new.not_before) / 3
    assert out == {
        "orders": 3,
        "issued": 2,
        "renewed": 0,
        "failures": {"unreachable": 1},
        "renewals": [(("a",), renew.timestamp())],
    }


def test_status_lists_unexpired_certificates_and_only_this_resolvers_failures(tmp_path: Path) -> None:
    r = resolver(tmp_path)
    failing = Failure(count=2, retry_at=NOW + DAY, error="the CA refused")
    failures = {("le", frozenset({"c", "b"})): failing, ("other", frozenset({"d"})): failing}
    out = status_of(r, [stored("a", issued=10), stored("b", issued=100)], failures, 1, NOW)
    assert out["caServer"] == "https://ca.example.test/dir" and out["pendingChallenges"] == 1
    assert [c["names"] for c in out["certificates"]] == [["a"]]
    assert out["failing"] == [
        {"names": ["b", "c"], "failures": 2, "retryAt": (NOW + DAY).isoformat(), "error": "the CA refused"}
    ]


@pytest.mark.parametrize(
    ("settings", "types", "delay"),
    [
        ({"httpChallenge": {"entryPoint": "web", "delay": "2s"}}, [HTTP_01], 2.0),
        ({"tlsChallenge": {"delay": "3s"}}, [TLS_ALPN_01], 3.0),
        (
            {"httpChallenge": {"entryPoint": "web", "delay": "2s"}, "tlsChallenge": {"delay": "3s"}},
            [TLS_ALPN_01],
            3.0,
        ),
        ({"httpChallenge": {"entryPoint": "web", "delay": "2s"}}, [], 0.0),
    ],
    ids=["http-01", "tls-alpn-01", "tls-alpn-01 beside http", "nothing published"],
)
def test_challenge_delay(tmp_path: Path, settings: dict[str, object], types: list[str], delay: float) -> None:
    challenges = tuple(Challenge(type=t, token="t", name="a.example.test") for t in types)
    assert resolver(tmp_path, **settings).challenge_delay(challenges) == delay
