"""TLS options as Traefik names them, resolved to what Python's `ssl` takes (pure).

`parse_*` turn Traefik's spellings (`VersionTLS12`, `TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`,
`RequireAndVerifyClientCert`) into values, raising `ValueError` with the known names; settings.py
maps that to a SettingsError at the key's line. TLS 1.3 suite names are accepted and ignored: like
Go's crypto/tls (hence Traefik), Python's ssl cannot restrict TLS 1.3 suites.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

DEFAULT = "default"  # the option used where nothing else is named, as in Traefik

VERSIONS: dict[str, ssl.TLSVersion] = {
    "VersionTLS10": ssl.TLSVersion.TLSv1,
    "VersionTLS11": ssl.TLSVersion.TLSv1_1,
    "VersionTLS12": ssl.TLSVersion.TLSv1_2,
    "VersionTLS13": ssl.TLSVersion.TLSv1_3,
}

# Go's crypto/tls names (Traefik's `cipherSuites`) -> OpenSSL names, TLS 1.0-1.2 suites.
CIPHER_SUITES: dict[str, str] = {
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA": "DES-CBC3-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256": "AES128-SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA": "ECDHE-RSA-DES-CBC3-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256": "ECDHE-ECDSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256": "ECDHE-RSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",  # Go's older alias
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
}
TLS13_SUITES = frozenset({"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"})

# Go's tls.CurveID names (Traefik's `curvePreferences`) -> OpenSSL's short names, which both
# SSLContext.set_ecdh_curve and SSL_CTX_set1_groups_list take.
CURVES: dict[str, str] = {
    "CurveP256": "prime256v1",
    "CurveP384": "secp384r1",
    "CurveP521": "secp521r1",
    "X25519": "X25519",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientAuth:
    """What a clientAuthType asks of the handshake (Go's tls.ClientAuthType, Traefik's names).

    request: send a CertificateRequest. require: fail the handshake without a certificate.
    verify: the certificate must chain to the option's CAs; without it any certificate is taken.
    """

    request: bool
    require: bool
    verify: bool


CLIENT_AUTH_TYPES: dict[str, ClientAuth] = {
    "NoClientCert": ClientAuth(request=False, require=False, verify=False),
    "RequestClientCert": ClientAuth(request=True, require=False, verify=False),
    "RequireAnyClientCert": ClientAuth(request=True, require=True, verify=False),
    "VerifyClientCertIfGiven": ClientAuth(request=True, require=False, verify=True),
    "RequireAndVerifyClientCert": ClientAuth(request=True, require=True, verify=True),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsOptions:
    """One named TLS option (static configuration `tls.options.<name>`), resolved.

    min_version: lowest protocol version accepted (default TLS 1.2, Traefik's default).
    max_version: highest, None for the highest OpenSSL supports.
    ciphers: OpenSSL names of the TLS <= 1.2 suites allowed, in order; empty for OpenSSL's defaults.
    alpn: protocols offered by ALPN, in order of preference (default h2 then http/1.1, Traefik's).
    client_auth: a key of CLIENT_AUTH_TYPES (default NoClientCert).
    ca_pem: CA certificates read from `clientAuth.caFiles` at start (PEM, possibly empty).
    ca_secret: `namespace/name` of a Secret whose `ca.crt` adds CAs (clientAuth.caSecret), or "".
    sni_strict: refuse a handshake whose SNI name no certificate covers (or that sends none),
        instead of serving the default certificate (Traefik's `sniStrict`).
    curves: OpenSSL group names for key exchange, in order of preference; empty for OpenSSL's.
    source: where a cluster-defined option came from ("TLSOption ns/name"); "" for static ones.
    """

    name: str
    min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    max_version: ssl.TLSVersion | None = None
    ciphers: tuple[str, ...] = ()
    alpn: tuple[str, ...] = ("h2", "http/1.1")
    client_auth: str = "NoClientCert"
    ca_pem: str = ""
    ca_secret: str = ""
    sni_strict: bool = False
    curves: tuple[str, ...] = ()
    source: str = ""

    @property
    def auth(self) -> ClientAuth:
        return CLIENT_AUTH_TYPES[self.client_auth]

    def accepts(self, version: int) -> bool:
        """Whether a negotiated protocol version (0x0303 for TLS 1.2) is in this option's range."""
        return self.min_version <= version and (self.max_version is None or version <= self.max_version)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "min_version": int(self.min_version),
            "max_version": None if self.max_version is None else int(self.max_version),
            "ciphers": list(self.ciphers),
            "alpn": list(self.alpn),
            "client_auth": self.client_auth,
            "ca_pem": self.ca_pem,
            "ca_secret": self.ca_secret,
            "sni_strict": self.sni_strict,
            "curves": list(self.curves),
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TlsOptions:
        top = data["max_version"]
        return cls(
            name=data["name"],
            min_version=ssl.TLSVersion(data["min_version"]),
            max_version=None if top is None else ssl.TLSVersion(top),
            ciphers=tuple(data["ciphers"]),
            alpn=tuple(data["alpn"]),
            client_auth=data["client_auth"],
            ca_pem=data["ca_pem"],
            ca_secret=data["ca_secret"],
            sni_strict=data["sni_strict"],
            curves=tuple(data["curves"]),
            source=data["source"],
        )


def parse_version(name: str) -> ssl.TLSVersion:
    try:
        return VERSIONS[name]
    except KeyError:
        raise ValueError(f"unknown TLS version {name!r}; use one of {', '.join(VERSIONS)}") from None


def parse_cipher_suites(names: list[str]) -> tuple[str, ...]:
    """OpenSSL names for Go's suite names; TLS 1.3 names are dropped (not configurable).

    Every name must be usable on its own: OpenSSL drops what it cannot use from a list silently,
    so `[A, 3DES]` would quietly mean `[A]` (Traefik refuses an unknown suite too)."""
    out = []
    check = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    for name in names:
        if name in TLS13_SUITES:
            continue
        if name not in CIPHER_SUITES:
            raise ValueError(
                f"unknown cipher suite {name!r}; known: {', '.join(sorted(CIPHER_SUITES))}, "
                f"and the TLS 1.3 suites (always enabled): {', '.join(sorted(TLS13_SUITES))}"
            )
        try:
            check.set_ciphers(CIPHER_SUITES[name])
        except ssl.SSLError:
            raise ValueError(
                f"cipher suite {name!r} ({CIPHER_SUITES[name]}) is not supported by {ssl.OPENSSL_VERSION}"
            ) from None
        out.append(CIPHER_SUITES[name])
    return tuple(out)


def parse_curves(names: list[str]) -> tuple[str, ...]:
    """OpenSSL group names for Go's curve names, checked against this OpenSSL one by one."""
    out = []
    check = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    for name in names:
        if name not in CURVES:
            raise ValueError(f"unknown curve {name!r}; use one of {', '.join(CURVES)}")
        try:
            check.set_ecdh_curve(CURVES[name])
        except (ssl.SSLError, ValueError):
            raise ValueError(f"curve {name!r} is not supported by {ssl.OPENSSL_VERSION}") from None
        out.append(CURVES[name])
    return tuple(dict.fromkeys(out))


def parse_client_auth_type(name: str) -> str:
    if name not in CLIENT_AUTH_TYPES:
        raise ValueError(f"unknown clientAuthType {name!r}; use one of {', '.join(CLIENT_AUTH_TYPES)}")
    return name


def effective_client_auth(name: str, has_ca: bool) -> str:
    """clientAuthType "" (not given): RequireAndVerifyClientCert when CAs are given, else
    NoClientCert — Traefik's rule (buildTLSConfig in pkg/tls/tlsmanager.go: CA files set
    RequireAndVerifyClientCert, an explicit clientAuthType overrides it). CAs given without a type
    must not mean that nobody is asked for a certificate. A verifying type needs CAs."""
    kind = (
        parse_client_auth_type(name) if name else ("RequireAndVerifyClientCert" if has_ca else "NoClientCert")
    )
    if CLIENT_AUTH_TYPES[kind].verify and not has_ca:
        raise ValueError(f"clientAuthType {kind} needs CA certificates to verify against")
    return kind


def options_reference(value: str) -> str:
    """An annotation's option name: `name` or Traefik's `name@file` (our static options are the file
    provider's analogue). Other `@provider` suffixes are kept, and are then unknown names."""
    name, _, provider = value.strip().partition("@")
    return name if provider in ("", "file") else value.strip()
