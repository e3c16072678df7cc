"""Certificates as people read them: subject, issuer, SANs, validity, and the hosts that get each.

Read from the PEM chain of the model's `Certificate` (never its key). Which hosts use a
certificate is asked of the same SNI table the workers build (`tls/contexts.py` `SniTable`), once
for every host a router on a TLS entry point serves: what a handshake for that name would get.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Any

from cryptography import x509
from cryptography.x509.oid import ExtensionOID

from passerelle.model import Certificate, DynamicConfig
from passerelle.tls.contexts import SniTable, TlsStatic
from passerelle.tls.options import DEFAULT

EXPIRY_WARNING_DAYS = 21  # a certificate closer than this to its notAfter is "expiring"


def sni_table(static: TlsStatic, config: DynamicConfig) -> SniTable:
    """The SNI table a worker would compile for `config`, without building any SSLContext."""
    return SniTable(static, config.tls, {})


def summary(cert: Certificate, now: datetime.datetime) -> dict[str, Any]:
    """The public facts of a certificate's leaf; parsing failures leave the model's fields only."""
    out: dict[str, Any] = {
        "fingerprint": cert.fingerprint,
        "names": list(cert.names),
        "source": cert.source,
        "default": cert.default,
        "notAfter": cert.not_after,
    }
    try:
        leaf = x509.load_pem_x509_certificate(cert.cert_pem.encode())
    except ValueError:
        return out
    not_after = leaf.not_valid_after_utc
    out.update(
        subject=leaf.subject.rfc4514_string(),
        issuer=leaf.issuer.rfc4514_string(),
        sans=_sans(leaf),
        notBefore=_rfc3339(leaf.not_valid_before_utc),
        notAfter=_rfc3339(not_after),
        daysLeft=(not_after - now).days,
        status=_status(not_after, now),
        selfSigned=leaf.subject == leaf.issuer,
    )
    return out


def listing(
    static: TlsStatic,
    config: DynamicConfig,
    tls_entrypoints: Iterable[str],
    tls_entry_options: Iterable[str],
    now: datetime.datetime,
) -> list[dict[str, Any]]:
    """Every certificate the workers can serve (the default one included) and the hosts that get it:
    the hosts of routers on a TLS entry point (`tls_entrypoints`, by name), and of TLS options."""
    table = sni_table(static, config)
    options = list(tls_entry_options) or [DEFAULT]
    hosts: dict[str, set[str]] = {}
    tls_names = set(tls_entrypoints)
    names = {
        r.host
        for r in config.routers
        if r.host is not None and (not r.entrypoints or tls_names.intersection(r.entrypoints))
    } | {h.host for h in config.tls.hosts}
    for host in sorted(names):
        for entry in options:
            cert, _ = table.resolve(host.lower(), entry)
            hosts.setdefault(cert.fingerprint, set()).add(host)
    certificates = {c.fingerprint: c for c in config.tls.certificates if not c.default}
    certificates.setdefault(table.default.fingerprint, table.default)
    out = []
    for cert in certificates.values():
        item = summary(cert, now)
        item["default"] = cert is table.default
        item["usedBy"] = sorted(hosts.get(cert.fingerprint, ()))
        out.append(item)
    return out


def _sans(leaf: x509.Certificate) -> list[str]:
    try:
        san = leaf.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    except x509.ExtensionNotFound:
        return []
    assert isinstance(san, x509.SubjectAlternativeName)
    return [f"DNS:{n}" for n in san.get_values_for_type(x509.DNSName)] + [
        f"IP:{ip}" for ip in san.get_values_for_type(x509.IPAddress)
    ]


def _status(not_after: datetime.datetime, now: datetime.datetime) -> str:
    if not_after < now:
        return "expired"
    if not_after - now < datetime.timedelta(days=EXPIRY_WARNING_DAYS):
        return "expiring"
    return "valid"


def _rfc3339(when: datetime.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")
