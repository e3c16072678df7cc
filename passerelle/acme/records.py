"""What the storage holds: an account, an issued certificate, a pending challenge (values)."""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from passerelle.model import Certificate
from passerelle.tls.store import parse_pair

HTTP_01 = "http-01"
TLS_ALPN_01 = "tls-alpn-01"


def certificate_id(names: tuple[str, ...]) -> str:
    """A file- and Secret-name-safe identity for a set of names: the first name and a digest."""
    digest = hashlib.sha256(",".join(sorted(names)).encode()).hexdigest()[:12]
    first = "".join(c if c.isalnum() or c in ".-" else "-" for c in names[0])[:60] if names else "none"
    return f"{first}-{digest}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Account:
    """An ACME account at `ca_server`: its URL and its key (a JWK, JSON text)."""

    ca_server: str
    uri: str
    key_json: str = field(repr=False)
    email: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"caServer": self.ca_server, "uri": self.uri, "key": self.key_json, "email": self.email}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Account:
        return cls(
            ca_server=data["caServer"], uri=data["uri"], key_json=data["key"], email=data.get("email", "")
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredCertificate:
    """An issued certificate as stored; `renew_at`/`ari_next` come from the CA's renewalInfo (ARI)."""

    resolver: str
    names: tuple[str, ...]
    cert_pem: str
    key_pem: str = field(repr=False)
    not_before: datetime.datetime
    not_after: datetime.datetime
    renew_at: datetime.datetime | None = None
    ari_next: datetime.datetime | None = None

    @property
    def key(self) -> tuple[str, frozenset[str]]:
        return (self.resolver, frozenset(self.names))

    @property
    def id(self) -> str:
        return certificate_id(self.names)

    def replaces(self, held: StoredCertificate) -> bool:
        """Whether storing this over `held` loses nothing: the same certificate (new ARI times),
        or one that lasts longer. A stale write never puts an older certificate back."""
        return self.cert_pem == held.cert_pem or self.not_after > held.not_after

    def served(self) -> Certificate:
        return parse_pair(self.cert_pem, self.key_pem, source=f"ACME resolver {self.resolver}").certificate

    def to_dict(self) -> dict[str, Any]:
        return {
            "resolver": self.resolver,
            "names": list(self.names),
            "certPem": self.cert_pem,
            "keyPem": self.key_pem,
            "renewAt": _time(self.renew_at),
            "ariNext": _time(self.ari_next),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StoredCertificate:
        return cls.from_pem(
            resolver=data["resolver"],
            names=tuple(data["names"]),
            cert_pem=data["certPem"],
            key_pem=data["keyPem"],
            renew_at=parse_time(data.get("renewAt")),
            ari_next=parse_time(data.get("ariNext")),
        )

    @classmethod
    def from_pem(
        cls,
        *,
        resolver: str,
        names: tuple[str, ...],
        cert_pem: str,
        key_pem: str,
        renew_at: datetime.datetime | None = None,
        ari_next: datetime.datetime | None = None,
    ) -> StoredCertificate:
        leaf = x509.load_pem_x509_certificate(cert_pem.encode())
        return cls(
            resolver=resolver,
            names=names,
            cert_pem=cert_pem,
            key_pem=key_pem,
            not_before=leaf.not_valid_before_utc,
            not_after=leaf.not_valid_after_utc,
            renew_at=renew_at,
            ari_next=ari_next,
        )


@dataclass(frozen=True, slots=True, kw_only=True, order=True)
class Challenge:
    """A challenge some replica is answering: HTTP-01 (`token` -> `key_authorization`) or
    TLS-ALPN-01 (`name` -> the acmeIdentifier certificate, RFC 8737 §3)."""

    type: str
    token: str = ""
    key_authorization: str = field(default="", repr=False)
    name: str = ""
    cert_pem: str = field(default="", repr=False)
    key_pem: str = field(default="", repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "token": self.token,
            "keyAuthorization": self.key_authorization,
            "name": self.name,
            "certPem": self.cert_pem,
            "keyPem": self.key_pem,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Challenge:
        return cls(
            type=data["type"],
            token=data.get("token", ""),
            key_authorization=data.get("keyAuthorization", ""),
            name=data.get("name", ""),
            cert_pem=data.get("certPem", ""),
            key_pem=data.get("keyPem", ""),
        )


def _time(value: datetime.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def parse_time(value: str | None) -> datetime.datetime | None:
    """An ISO 8601 / RFC 3339 time as stored (a file's, a Secret's annotation); None for none."""
    return None if not value else datetime.datetime.fromisoformat(value)
