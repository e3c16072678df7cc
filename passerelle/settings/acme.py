"""Certificate resolvers: `certificatesResolvers.<name>.acme`, Traefik's key names (docs/acme.md).

Keys Traefik has keep Traefik's meaning; passerelle's additions are `caCertificates` (trust for a
private or test CA's ACME endpoint), `renewBefore` (a duration or a fraction of the certificate's
own lifetime; Traefik derives its window from a configured duration), `retry` (the backoff after a
failure) and `storage` as a directory or Kubernetes Secrets that several replicas share (Traefik's
is one `acme.json`): a string is a directory, `{file: DIR}` the same, `{secret: {namespace: NS}}`
Secrets and Leases in NS (kube/acme_store.py).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from passerelle.settings.base import Duration, SettingsError, StrictModel

_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_LABEL_SAFE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$")
LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"


def _fraction_or_duration(value: object) -> object:
    """`renewBefore`: "1/3" or "33%" of the lifetime, or a duration ("720h", seconds)."""
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("%"):
            return {"fraction": float(text[:-1]) / 100}
        if "/" in text:
            top, _, bottom = text.partition("/")
            return {"fraction": float(top) / float(bottom)}
        return {"duration": value}
    if isinstance(value, int | float):
        return {"duration": value}
    return value


class RenewBefore(StrictModel):
    fraction: Annotated[float, Field(gt=0, lt=1)] | None = None
    duration: Duration | None = None


def _storage(value: object) -> object:
    """`storage: DIR` is `storage: {file: DIR}` (the form every release before Secrets took)."""
    return {"file": value} if isinstance(value, str) else value


class SecretStorage(StrictModel):
    """Secrets and Leases in `namespace`; "" for $POD_NAMESPACE, then the kubeconfig's namespace."""

    namespace: str = ""

    @field_validator("namespace")
    @classmethod
    def _label(cls, value: str) -> str:
        if value and not _NAMESPACE.match(value):
            raise ValueError(
                f"{value!r} is not a namespace name (lower-case letters, digits, '-', at most 63)"
            )
        return value


class Storage(StrictModel):
    """Exactly one of `file` (a directory, created 0700 if missing) or `secret`."""

    file: str | None = None
    secret: SecretStorage | None = None

    @model_validator(mode="after")
    def _one(self) -> Storage:
        if (self.file is None) == (self.secret is None):
            raise ValueError("storage needs exactly one of file (a directory) or secret ({namespace: ...})")
        return self


class Eab(StrictModel):
    """External Account Binding (RFC 8555 §7.3.4), for CAs that require it (ZeroSSL, Sectigo...)."""

    kid: str
    hmacEncoded: str  # base64url, as the CA gives it


class HttpChallenge(StrictModel):
    entryPoint: str
    # Between publishing a token in the shared storage and asking the CA to validate: every
    # replica must have read it by then (they poll the storage every `storage poll`, 1 s).
    delay: Duration = 2.0


class TlsChallenge(StrictModel):
    delay: Duration = 2.0


class Retry(StrictModel):
    """After a failed attempt: wait initialInterval, doubling up to maxInterval, with jitter.

    5 minutes first keeps a failing name within Let's Encrypt's 5 failed validations an hour (with
    the jitter, attempts come at least 2.5, 5, 10, 20 minutes apart)."""

    initialInterval: Annotated[Duration, Field(gt=0)] = 300.0
    maxInterval: Annotated[Duration, Field(gt=0)] = 86400.0


class Acme(StrictModel):
    email: str = ""
    caServer: str = LETS_ENCRYPT
    caCertificates: list[str] = []  # PEM files trusted for caServer's HTTPS, instead of the system's
    eab: Eab | None = None
    keyType: Literal["EC256", "EC384", "RSA2048", "RSA4096"] = "EC256"
    httpChallenge: HttpChallenge | None = None
    tlsChallenge: TlsChallenge | None = None
    storage: Annotated[Storage, BeforeValidator(_storage)] = Storage(file="acme")
    renewBefore: Annotated[RenewBefore, BeforeValidator(_fraction_or_duration)] = RenewBefore(fraction=1 / 3)
    preferredChain: str = ""  # the common name of the root (or top issuer) of the chain to serve
    retry: Retry = Retry()
    clientTimeout: Duration = 120.0  # one order, from newOrder to the certificate download

    @field_validator("caServer")
    @classmethod
    def _https(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError(f"{value!r} is not an http(s) URL of an ACME directory")
        return value


class CertificatesResolver(StrictModel):
    acme: Acme


def resolve_acme_paths(
    resolvers: dict[str, CertificatesResolver], base: Path
) -> dict[str, CertificatesResolver]:
    """A `storage` directory and `caCertificates` relative to the config file's directory."""
    out = {}
    for name, resolver in resolvers.items():
        acme = resolver.acme
        storage = acme.storage
        if storage.file is not None:
            storage = storage.model_copy(update={"file": str(base / storage.file)})
        update = {
            "storage": storage,
            "caCertificates": [str(base / path) for path in acme.caCertificates],
        }
        out[name] = resolver.model_copy(update={"acme": acme.model_copy(update=update)})
    return out


def check_secret_storage(name: str, where: str, *, kubernetes: bool) -> None:
    """Secret storage needs the Kubernetes provider's client, and a resolver name that can be a
    label value and part of Secret and Lease names (docs/acme.md, "Secrets and Leases")."""
    if not kubernetes:
        raise SettingsError(
            f"{where}.storage.secret: needs providers.kubernetes (use storage.file otherwise)"
        )
    if not _LABEL_SAFE.match(name):
        raise SettingsError(
            f"{where}.storage.secret: the resolver name {name!r} must be lower-case letters, digits and '-' "
            "(at most 40), as it names Secrets and Leases"
        )
