"""Storage: records round-trip, challenges any replica sees, one lock holder per certificate.

The tests of the interface take `replicas`, two handles on one shared storage, so that a
Kubernetes store (Secrets and Leases) joins by adding itself to REPLICAS; the last tests are the
file store's own (file modes, stale files)."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme

from passerelle.acme.records import HTTP_01, TLS_ALPN_01, Account, Challenge, StoredCertificate
from passerelle.acme.store import CHALLENGE_MAX_AGE, FileStorage, Storage

REPLICAS: dict[str, Callable[[Path], tuple[Storage, Storage]]] = {
    "file": lambda root: (FileStorage(root / "s"), FileStorage(root / "s")),
}


@pytest.fixture(params=sorted(REPLICAS))
def replicas(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Storage, Storage]:
    return REPLICAS[request.param](tmp_path)


def test_records_round_trip(replicas: tuple[Storage, Storage]) -> None:
    one, two = replicas
    assert one.load_account("le") is None
    one.save_account(
        "le", Account(ca_server="https://ca/dir", uri="https://ca/acct/1", key_json="{}", email="a@b")
    )
    assert two.load_account("le") == Account(
        ca_server="https://ca/dir", uri="https://ca/acct/1", key_json="{}", email="a@b"
    )
    leaf = trustme.CA().issue_cert("a.example.com", "b.example.com")
    cert = StoredCertificate.from_pem(
        resolver="le",
        names=("a.example.com", "b.example.com"),
        cert_pem=leaf.cert_chain_pems[0].bytes().decode(),
        key_pem=leaf.private_key_pem.bytes().decode(),
    )
    one.save_certificate(cert)
    assert two.certificates("le") == [cert]
    assert two.certificates("other") == []
    assert cert.served().names == ("a.example.com", "b.example.com")
    two.delete_certificate(cert)
    assert one.certificates("le") == []


def test_challenges_are_seen_by_every_replica_until_withdrawn(replicas: tuple[Storage, Storage]) -> None:
    one, two = replicas
    http = Challenge(type=HTTP_01, token="tok-1", key_authorization="tok-1.thumb")
    alpn = Challenge(type=TLS_ALPN_01, name="a.example.com", cert_pem="C", key_pem="K")
    one.publish(http)
    one.publish(alpn)
    assert sorted(two.challenges()) == sorted([http, alpn])
    one.withdraw(http)
    assert two.challenges() == [alpn]
    one.withdraw(http)  # twice is fine


def test_only_one_replica_holds_a_certificate_lock(replicas: tuple[Storage, Storage]) -> None:
    one, two = replicas
    held = one.try_lock("le", "a-123")
    assert held is not None
    assert two.try_lock("le", "a-123") is None
    other = two.try_lock("le", "b-456")  # another certificate: free
    assert other is not None
    held.release()
    again = two.try_lock("le", "a-123")
    assert again is not None
    again.release()
    other.release()


def test_files_are_private(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path / "s")
    storage.save_account("le", Account(ca_server="https://ca/dir", uri="u", key_json="{}"))
    storage.publish(Challenge(type=HTTP_01, token="t", key_authorization="t.k"))
    for path in (tmp_path / "s").rglob("*.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "s").stat().st_mode) == 0o700


def test_an_unreadable_record_is_skipped(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    folder = tmp_path / "certificates" / "le"
    folder.mkdir()
    (folder / "half.json").write_text('{"resolver": "le", "na')
    assert storage.certificates("le") == []


def test_a_challenge_left_by_a_replica_that_died_is_removed(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    fresh = Challenge(type=HTTP_01, token="fresh", key_authorization="fresh.k")
    stale = Challenge(type=HTTP_01, token="stale", key_authorization="stale.k")
    storage.publish(fresh)
    storage.publish(stale)
    old = time.time() - CHALLENGE_MAX_AGE - 60
    os.utime(tmp_path / "challenges" / HTTP_01 / "stale.json", (old, old))
    assert storage.challenges() == [fresh]
    assert not (tmp_path / "challenges" / HTTP_01 / "stale.json").exists()
