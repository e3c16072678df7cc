"""Where ACME state lives so that every replica sees it: the Storage interface, and a directory.

`Storage` is what the controller needs: reads answer from what the storage last read (no I/O, so
the controller may read every plan), writes and locks are coroutines. `FileStorage` implements it
on a directory that replicas share (a volume, NFS with working flock, or one host's processes):

    <storage>/accounts/<resolver>.json               account URL, key (JWK), CA, e-mail
    <storage>/certificates/<resolver>/<id>.json      names, chain, key, ARI renewal time
    <storage>/challenges/http-01/<token>.json        pending HTTP-01 tokens, any replica's
    <storage>/challenges/tls-alpn-01/<name>.json     pending TLS-ALPN-01 certificates
    <storage>/locks/<resolver>-<id>.lock             flock()ed by the replica ordering <id>

Files are written whole (temporary file, fsync, rename) with mode 0600 in 0700 directories.
Reads are cached by (mtime, size), so polling every second costs a directory listing.
kube/acme_store.py keeps the same records in Secrets (layout: kube/acme_secrets.py), followed by
a watch, and replaces flock with a coordination.k8s.io Lease per certificate.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar

from passerelle.acme.records import HTTP_01, TLS_ALPN_01, Account, Challenge, StoredCertificate
from passerelle.settings.acme import Storage as StorageSettings

T = TypeVar("T")
CHALLENGE_MAX_AGE = 3600.0  # seconds; an order takes at most acme.clientTimeout (2 min by default)


class StorageError(Exception):
    """The storage cannot be read or written; the message names the path and why."""


class Lock(Protocol):
    async def keep(self) -> None:
        """Renew the lock; return only once it is lost (a file lock never is)."""
        ...

    async def release(self) -> None: ...


class Storage(Protocol):
    def ready(self) -> bool:
        """Read at least once: before that, every certificate looks missing and nothing is ordered."""
        ...

    async def open(self) -> None:
        """Read the storage once, at start (before the first configuration is served)."""
        ...

    async def run(self, changed: Callable[[], None]) -> None:
        """Follow the storage until cancelled, calling `changed` when another replica wrote
        (a storage that cannot tell returns at once; the controller reads it every POLL)."""
        ...

    def load_account(self, resolver: str) -> Account | None: ...
    async def save_account(self, resolver: str, account: Account) -> None: ...
    def certificates(self, resolver: str) -> list[StoredCertificate]: ...
    async def save_certificate(self, cert: StoredCertificate) -> None:
        """Store `cert`, unless the storage already holds a later one for the same names."""
        ...

    async def delete_certificate(self, cert: StoredCertificate) -> None:
        """Delete `cert`, only if it is still the one stored (a replacement stays)."""
        ...

    def challenges(self) -> list[Challenge]: ...
    async def publish(self, challenge: Challenge) -> None: ...
    async def withdraw(self, challenge: Challenge) -> None: ...
    async def try_lock(self, resolver: str, cert_id: str) -> Lock | None:
        """The right to order `cert_id` until released or lost, or None while another replica has it."""
        ...


async def while_held(lock: Lock, work: Coroutine[Any, Any, T]) -> tuple[bool, T | None]:
    """Run `work` while `lock.keep()` renews the lock: (True, its result), or (False, None) when
    the lock was lost first and `work` was cancelled. `work`'s exceptions are raised as they are."""
    done: list[T] = []
    failed: list[Exception] = []

    async def job() -> None:
        try:
            done.append(await work)
        except Exception as e:  # raised below, outside the task group (not as an ExceptionGroup)
            failed.append(e)

    async with asyncio.TaskGroup() as tasks:
        keeper, worker = tasks.create_task(lock.keep()), tasks.create_task(job())
        await asyncio.wait({keeper, worker}, return_when=asyncio.FIRST_COMPLETED)
        (keeper if worker.done() else worker).cancel()
    if failed:
        raise failed[0]
    return (True, done[0]) if done else (False, None)


class _FileLock:
    __slots__ = ("_fd",)

    def __init__(self, fd: int) -> None:
        self._fd = fd

    async def keep(self) -> None:
        await asyncio.Event().wait()  # flock() is held until released or the process ends

    async def release(self) -> None:
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1


class FileStorage:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._cache: dict[Path, tuple[tuple[int, int], Any]] = {}
        try:
            for sub in (
                "accounts",
                "certificates",
                f"challenges/{HTTP_01}",
                f"challenges/{TLS_ALPN_01}",
                "locks",
            ):
                (root / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
            root.chmod(0o700)
        except OSError as e:
            raise StorageError(f"ACME storage {root}: {e.strerror}") from None

    def ready(self) -> bool:
        return True

    async def open(self) -> None:
        return None

    async def run(self, changed: Callable[[], None]) -> None:
        return None  # files say nothing when they change: the controller reads them every POLL

    # -- accounts ------------------------------------------------------------------------------
    def load_account(self, resolver: str) -> Account | None:
        data = self._read(self.root / "accounts" / f"{resolver}.json")
        return None if data is None else Account.from_dict(data)

    async def save_account(self, resolver: str, account: Account) -> None:
        self._write(self.root / "accounts" / f"{resolver}.json", account.to_dict())

    # -- certificates --------------------------------------------------------------------------
    def certificates(self, resolver: str) -> list[StoredCertificate]:
        folder = self.root / "certificates" / resolver
        out = []
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
            cert = self._read(path, StoredCertificate.from_dict)
            if cert is not None:
                out.append(cert)
        return out

    async def save_certificate(self, cert: StoredCertificate) -> None:
        folder = self.root / "certificates" / cert.resolver
        with _storage_errors(folder):
            folder.mkdir(exist_ok=True, mode=0o700)
        held = self._read(folder / f"{cert.id}.json", StoredCertificate.from_dict)
        if held is not None and not cert.replaces(held):
            return  # another replica stored a later one meanwhile (only possible without the lock)
        self._write(folder / f"{cert.id}.json", cert.to_dict())

    async def delete_certificate(self, cert: StoredCertificate) -> None:
        path = self.root / "certificates" / cert.resolver / f"{cert.id}.json"
        held = self._read(path, StoredCertificate.from_dict)
        if held is None or held.cert_pem != cert.cert_pem:
            return  # gone already, or replaced by a later one: that one stays
        with _storage_errors(path), contextlib.suppress(FileNotFoundError):
            path.unlink()

    # -- challenges ----------------------------------------------------------------------------
    def challenges(self) -> list[Challenge]:
        """Every replica's pending challenges. One older than CHALLENGE_MAX_AGE was left by a
        replica that died mid-order (its lock went with it): whoever reads it removes it."""
        out = []
        now = time.time()
        for kind in (HTTP_01, TLS_ALPN_01):
            folder = self.root / "challenges" / kind
            seen = set()
            for path in sorted(folder.glob("*.json")):
                try:
                    if now - path.stat().st_mtime > CHALLENGE_MAX_AGE:
                        path.unlink()
                        continue
                except FileNotFoundError:
                    continue
                seen.add(path)
                challenge = self._read(path, Challenge.from_dict)
                if challenge is not None:
                    out.append(challenge)
            for gone in [p for p in self._cache if p.parent == folder and p not in seen]:
                del self._cache[gone]
        return out

    async def publish(self, challenge: Challenge) -> None:
        self._write(self._challenge_path(challenge), challenge.to_dict())

    async def withdraw(self, challenge: Challenge) -> None:
        path = self._challenge_path(challenge)
        with _storage_errors(path), contextlib.suppress(FileNotFoundError):
            path.unlink()

    def _challenge_path(self, challenge: Challenge) -> Path:
        name = challenge.token if challenge.type == HTTP_01 else challenge.name
        if not name or "/" in name or name.startswith("."):
            raise StorageError(f"unsafe challenge file name {name!r}")
        return self.root / "challenges" / challenge.type / f"{name}.json"

    # -- locks ---------------------------------------------------------------------------------
    async def try_lock(self, resolver: str, cert_id: str) -> _FileLock | None:
        path = self.root / "locks" / f"{resolver}-{cert_id}.lock"
        with _storage_errors(path):
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return None
            except OSError:
                os.close(fd)
                raise
        return _FileLock(fd)

    # -- files ---------------------------------------------------------------------------------
    def _read(self, path: Path, parse: Any = None) -> Any:
        """The parsed file (cached while unchanged); None when missing or unreadable (a half-copied
        file from an operator, a record of an older layout: skipped, the rest still served)."""
        try:
            st = path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
            cached = self._cache.get(path)
            if cached is not None and cached[0] == stamp:
                return cached[1]
            data = json.loads(path.read_text())
            value = parse(data) if parse is not None else data
        except FileNotFoundError:
            self._cache.pop(path, None)
            return None
        except (OSError, ValueError, KeyError, TypeError):
            return None
        self._cache[path] = (stamp, value)
        return value

    def _write(self, path: Path, data: dict[str, Any]) -> None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with _storage_errors(path):
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(data, f)
                f.flush()
                os.fsync(f.fileno())
            tmp.rename(path)


@contextlib.contextmanager
def _storage_errors(path: Path) -> Iterator[None]:
    """An OSError of the file system (read-only, full, stale NFS, a file where a folder should be)
    as the StorageError the controller handles: the certificate served stays, the step is retried."""
    try:
        yield
    except OSError as e:
        raise StorageError(f"ACME storage {path}: {e.strerror or e}") from None


def file_storage(settings: StorageSettings) -> Storage:
    """The Storage of a `storage.file` setting (the default outside Kubernetes)."""
    if settings.file is None:
        raise StorageError("storage.secret needs the Kubernetes provider")
    return FileStorage(Path(settings.file))
