"""TLS state of one configuration version: certificates, per-host TLS options, client CAs.

Everything here is data the control plane found in the cluster (Secrets, Ingress `spec.tls`, the
TLS-options annotations, Traefik TLSOption objects). Option definitions are static configuration
(`tls.options`) plus, per version, those of TLSOption objects (`TlsConfig.options`, named
`<namespace>-<name>@kubernetescrd`, or `default` to replace the implicit default). A worker
picks a certificate by the SNI name against `Certificate.names` (the certificate's own SANs), and
the TLS options by the SNI name against `HostOptions.host`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from passerelle.model.problem import ObjectRef
from passerelle.tls.options import TlsOptions


@dataclass(frozen=True, slots=True, kw_only=True)
class Certificate:
    """A validated certificate chain and its private key, both PEM (the key is left out of repr()).

    names: the DNS names the certificate is for: its subject CN (always, when it is a host name)
        and its subjectAltName DNS entries, lower-case, as Traefik indexes a certificate
        (pkg/tls/certificate.go); `*.example.com` entries are one-label wildcards.
    fingerprint: SHA-256 of the leaf, hex; identifies the certificate across versions.
    default: this is the configured default certificate (`tls.defaultCertificate.secret`).
    source: where it came from, for people ("Secret ns/name").
    """

    cert_pem: str
    key_pem: str = field(repr=False)  # never in a log line or a traceback's locals
    names: tuple[str, ...]
    fingerprint: str
    not_after: str = ""  # RFC 3339, for people
    default: bool = False
    source: str = ""


@dataclass(frozen=True, slots=True, kw_only=True, order=True)
class HostOptions:
    """Handshakes for SNI `host` (exact, or `*.example.com`) use the TLS option named `options`
    (static, or one of `TlsConfig.options`)."""

    host: str
    options: str
    source: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientCA:
    """CA certificates (PEM) that TLS option `options` verifies client certificates against.

    Only for options whose `clientAuth.caSecret` names a Secret; `caFiles` are static and read at start.
    """

    options: str
    pem: str
    source: str = ""


@dataclass(frozen=True, slots=True, kw_only=True, order=True)
class CertificateRequest:
    """One SAN certificate that Ingresses want from the ACME resolver `resolver` (acme/).

    names: lower-case DNS names, the first is the subject's CN; never wildcards.
    sources: the Ingresses asking, oldest first; failures are Problems on them.
    """

    resolver: str
    names: tuple[str, ...]
    sources: tuple[ObjectRef, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsConfig:
    """`requests` stay in the control plane: workers get certificates, not the wish for them.

    options: TLS options defined in the cluster (TLSOption objects), CAs included, by name; one
        named `default` replaces the static default option for this version."""

    certificates: tuple[Certificate, ...] = ()
    options: tuple[TlsOptions, ...] = ()
    hosts: tuple[HostOptions, ...] = ()
    client_cas: tuple[ClientCA, ...] = ()
    requests: tuple[CertificateRequest, ...] = ()
