"""Storage: records round-trip, challenges any replica sees, one lock holder per certificate.

The tests of the interface take `replicas`, two handles on one shared storage, and wait with
`eventually` for what one wrote to reach the other: tests/integration/test_acme_secret_store.py
runs the same functions on the Secret store (a `replicas` fixture of its own, on the test API
server). The last tests are the file store's own (file modes, stale files)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme

from passerelle.acme.records import HTTP_01, TLS_ALPN_01, Account, Challenge, StoredCertificate
from passerelle.acme.store import CHALLENGE_MAX_AGE, FileStorage, Storage, StorageError, while_held

REPLICAS: dict[str, Callable[[Path], tuple[Storage, Storage]]] = {
    "file": lambda root: (FileStorage(root / "s"), FileStorage(root / "s")),
}


@pytest.fixture(params=sorted(REPLICAS))
def replicas(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Storage, Storage]:
    return REPLICAS[request.param](tmp_path)


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    """What one replica wrote reaches the other at once (files) or within the watch's latency."""
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


def certificate(*names: str, days: int = 90) -> StoredCertificate:
    now = datetime.datetime.now(datetime.UTC)
    leaf = trustme.CA().issue_cert(*names, not_before=now, not_after=now + datetime.timedelta(days=days))
    return StoredCertificate.from_pem(
        resolver="le",
        names=names,
        cert_pem=leaf.cert_chain_pems[0].bytes().decode(),
        key_pem=leaf.private_key_pem.bytes().decode(),
    )


async def test_records_round_trip(replicas: tuple[Storage, Storage]) -> None:
    one, two = replicas
    assert one.load_account("le") is None
    account = Account(ca_server="https://ca/dir", uri="https://ca/acct/1", key_json="{}", email="a@b")
    await one.save_account("le", account)
    assert one.load_account("le") == account  # a replica reads its own writes at once
    await eventually(lambda: two.load_account("le") == account)
    cert = certificate("a.example.com", "b.example.com")
    await one.save_certificate(cert)
    assert one.certificates("le") == [cert]
    await eventually(lambda: two.certificates("le") == [cert])
    assert two.certificates("other") == []
    assert cert.served().names == ("a.example.com", "b.example.com")
    await two.delete_certificate(cert)
    assert two.certificates("le") == []
    await eventually(lambda: one.certificates("le") == [])


async def test_a_stale_write_never_puts_an_older_certificate_back(replicas: tuple[Storage, Storage]) -> None:
    one, two = replicas
    older, newer, newest = (certificate("a.example.com", days=d) for d in (30, 60, 90))
    await one.save_certificate(newer)
    await eventually(lambda: two.certificates("le") == [newer])
    await two.save_certificate(older)  # a replica that ordered late: the later one stays
    assert two.certificates("le") == [newer]
    await two.save_certificate(newest)
    await eventually(lambda: one.certificates("le") == [newest])
    ari = dataclasses.replace(newest, renew_at=newest.not_after - datetime.timedelta(days=1))
    await one.save_certificate(ari)  # the same certificate, with the CA's renewal time: stored
    await eventually(lambda: two.certificates("le") == [ari])


async def test_challenges_are_seen_by_every_replica_until_withdrawn(
    replicas: tuple[Storage, Storage],
) -> None:
    one, two = replicas
    http = Challenge(type=HTTP_01, token="tok-1_A-z", key_authorization="tok-1_A-z.thumb")
    alpn = Challenge(type=TLS_ALPN_01, name="a.example.com", cert_pem="C", key_pem="K")
    await one.publish(http)
    await one.publish(alpn)
    await eventually(lambda: sorted(two.challenges()) == sorted([http, alpn]))
    await one.withdraw(http)
    assert one.challenges() == [alpn]
    await eventually(lambda: two.challenges() == [alpn])
    await one.withdraw(http)  # twice is fine


async def test_only_one_replica_holds_a_certificate_lock(replicas: tuple[Storage, Storage]) -> None:
    one, two = replicas
    held = await one.try_lock("le", "a-123")
    assert held is not None
    assert await two.try_lock("le", "a-123") is None
    other = await two.try_lock("le", "b-456")  # another certificate: free
    assert other is not None
    await held.release()
    again = await two.try_lock("le", "a-123")
    assert again is not None
    await again.release()
    await other.release()


async def test_work_runs_while_the_lock_is_held(replicas: tuple[Storage, Storage]) -> None:
    one, two = replicas
    lock = await one.try_lock("le", "a-123")
    assert lock is not None

    async def work() -> str:
        await asyncio.sleep(0.05)
        return "done"

    async def fails() -> str:
        raise ValueError("from the work")

    assert await while_held(lock, work()) == (True, "done")
    with pytest.raises(ValueError, match="from the work"):  # as it is, not in an ExceptionGroup
        await while_held(lock, fails())
    assert await two.try_lock("le", "a-123") is None  # still held after the work, failed or not
    await lock.release()
    again = await two.try_lock("le", "a-123")
    assert again is not None
    await again.release()


async def test_files_are_private(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path / "s")
    await storage.save_account("le", Account(ca_server="https://ca/dir", uri="u", key_json="{}"))
    await storage.publish(Challenge(type=HTTP_01, token="t", key_authorization="t.k"))
    for path in (tmp_path / "s").rglob("*.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "s").stat().st_mode) == 0o700


def test_an_unreadable_record_is_skipped(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    folder = tmp_path / "certificates" / "le"
    folder.mkdir()
    (folder / "half.json").write_text('{"resolver": "le", "na')
    assert storage.certificates("le") == []


async def test_a_challenge_left_by_a_replica_that_died_is_removed(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    fresh = Challenge(type=HTTP_01, token="fresh", key_authorization="fresh.k")
    stale = Challenge(type=HTTP_01, token="stale", key_authorization="stale.k")
    await storage.publish(fresh)
    await storage.publish(stale)
    old = time.time() - CHALLENGE_MAX_AGE - 60
    os.utime(tmp_path / "challenges" / HTTP_01 / "stale.json", (old, old))
    assert storage.challenges() == [fresh]
    assert not (tmp_path / "challenges" / HTTP_01 / "stale.json").exists()


async def test_deleting_an_expired_certificate_leaves_its_replacement(
    replicas: tuple[Storage, Storage],
) -> None:
    one, two = replicas
    old, new = certificate("a.example.com", days=1), certificate("a.example.com", days=90)
    await one.save_certificate(old)
    await eventually(lambda: two.certificates("le") == [old])
    await two.save_certificate(new)
    await eventually(lambda: one.certificates("le") == [new])
    await one.delete_certificate(old)  # what it planned to forget is not what is stored any more
    assert one.certificates("le") == [new]
    await eventually(lambda: two.certificates("le") == [new])


async def test_file_system_errors_are_storage_errors(tmp_path: Path) -> None:
    """What the controller handles (keep serving, retry), never an OSError that would end it."""
    storage = FileStorage(tmp_path)
    cert = certificate("a.test")
    (tmp_path / "locks").rmdir()
    for path in (tmp_path / "locks", tmp_path / "certificates" / "le"):  # a file where a folder should be
        path.write_text("")
    with pytest.raises(StorageError, match="locks"):
        await storage.try_lock("le", cert.id)
    with pytest.raises(StorageError, match="certificates"):
        await storage.save_certificate(cert)
