"""Certificates: validating PEM pairs, the generated default, and choosing one by SNI name (pure).

Selection follows Traefik (`pkg/tls/certificate_store.go`, GetBestCertificate): by the
certificate's own names (subject CN and DNS subjectAltNames) — an exact name first, then a
one-label wildcard (`*.example.com` covers `a.example.com`, not `example.com` nor
`a.b.example.com`) — and otherwise the default certificate. Which Ingress `spec.tls.hosts` listed a
Secret does not matter (ingress-nginx matches on those hosts instead). Among certificates for the
same name, the first in the configuration (the oldest Ingress's) wins, where Traefik's choice
depends on map order.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from passerelle.model import Certificate

DEFAULT_SUBJECT = "PASSERELLE DEFAULT CERT"  # Traefik's is "TRAEFIK DEFAULT CERT"
_PEM = serialization.Encoding.PEM
_SPKI = serialization.PublicFormat.SubjectPublicKeyInfo
T = TypeVar("T")


class CertificateError(ValueError):
    """A certificate or key cannot be used; the message says why, for the Secret's owner."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Parsed:
    certificate: Certificate
    expired: bool


def parse_pair(
    cert_pem: str | bytes, key_pem: str | bytes, *, source: str = "", now: datetime.datetime | None = None
) -> Parsed:
    """Validate a chain and its key: PEM, the key matches the leaf. Expiry is reported, not refused."""
    cert_bytes = cert_pem.encode() if isinstance(cert_pem, str) else cert_pem
    key_bytes = key_pem.encode() if isinstance(key_pem, str) else key_pem
    try:
        chain = x509.load_pem_x509_certificates(cert_bytes)
    except ValueError:
        raise CertificateError("tls.crt is not a PEM certificate") from None
    try:
        # The RSA consistency check costs ~35 ms a key (measured, 2048 bits); OpenSSL checks the key
        # against the certificate again when a worker loads it, and the public halves match below.
        key = serialization.load_pem_private_key(
            key_bytes, password=None, unsafe_skip_rsa_key_validation=True
        )
    except (ValueError, TypeError):
        raise CertificateError("tls.key is not an unencrypted PEM private key") from None
    except Exception as e:  # cryptography raises UnsupportedAlgorithm for exotic keys
        raise CertificateError(f"tls.key cannot be used: {e}") from None
    leaf = chain[0]
    if key.public_key().public_bytes(_PEM, _SPKI) != leaf.public_key().public_bytes(_PEM, _SPKI):
        raise CertificateError("tls.key does not match the certificate in tls.crt")
    names = dns_names(leaf)
    not_after = leaf.not_valid_after_utc
    key_text = key.private_bytes(_PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    certificate = Certificate(
        cert_pem="".join(c.public_bytes(_PEM).decode() for c in chain),
        key_pem=key_text.decode(),
        names=names,
        fingerprint=leaf.fingerprint(hashes.SHA256()).hex(),
        not_after=not_after.strftime("%Y-%m-%dT%H:%M:%SZ"),
        source=source,
    )
    return Parsed(certificate=certificate, expired=not_after < (now or datetime.datetime.now(datetime.UTC)))


def parse_ca_bundle(pem: str | bytes) -> str:
    """CA certificates for client authentication, normalised; CertificateError if none parse."""
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise CertificateError("ca.crt is not a PEM certificate bundle") from None
    return "".join(c.public_bytes(_PEM).decode() for c in certs)


def dns_names(cert: x509.Certificate) -> tuple[str, ...]:
    """The subject CN (when it looks like a host name) and the DNS subjectAltNames, as Traefik
    indexes a certificate (`parseCertificate` in pkg/tls/certificate_store.go)."""
    names = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    names = [n for n in names if n and " " not in n]
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names += san.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        pass
    return tuple(dict.fromkeys(n.lower().rstrip(".") for n in names if n))


def self_signed(
    common_name: str,
    *,
    days: int,
    extensions: tuple[tuple[x509.ExtensionType, bool], ...] = (),
    now: datetime.datetime | None = None,
) -> tuple[x509.Certificate, str]:
    """A self-signed P-256 certificate (valid from 5 minutes ago, for `days`) with `extensions`
    ((extension, critical) pairs), and its key as PKCS#8 PEM."""
    now = now or datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    key_pem = key.private_bytes(_PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return builder.sign(key, hashes.SHA256()), key_pem.decode()


def generate_default(*, days: int = 365, now: datetime.datetime | None = None) -> Certificate:
    """A self-signed certificate saying it is passerelle's default (served when nothing matches)."""
    not_a_ca = (x509.BasicConstraints(ca=False, path_length=None), True)
    cert, key_pem = self_signed(DEFAULT_SUBJECT, days=days, extensions=(not_a_ca,), now=now)
    return Certificate(
        cert_pem=cert.public_bytes(_PEM).decode(),
        key_pem=key_pem,
        names=(),
        fingerprint=cert.fingerprint(hashes.SHA256()).hex(),
        not_after=cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        default=True,
        source="generated",
    )


def fingerprint_of(pem: str) -> str:
    """A stable identity for PEM text that is not a leaf certificate (a CA bundle)."""
    return hashlib.sha256(pem.encode()).hexdigest()


class NameIndex(Generic[T]):
    """Exact names and one-label wildcards -> a value; the first value given for a name wins."""

    __slots__ = ("exact", "wildcard")

    def __init__(self, entries: Iterable[tuple[str, T]] = ()) -> None:
        self.exact: dict[str, T] = {}
        self.wildcard: dict[str, T] = {}  # "example.com" for "*.example.com"
        for name, value in entries:
            if name.startswith("*."):
                self.wildcard.setdefault(name[2:], value)
            else:
                self.exact.setdefault(name, value)

    def get(self, server_name: str) -> T | None:
        """The value for an SNI name (already lower-case): exact, then `*.` of its parent."""
        value = self.exact.get(server_name)
        if value is None:
            _, dot, parent = server_name.partition(".")
            if dot:
                value = self.wildcard.get(parent)
        return value


def certificate_index(certificates: Iterable[Certificate]) -> NameIndex[Certificate]:
    return NameIndex((name, c) for c in certificates if not c.default for name in c.names)
