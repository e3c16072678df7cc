"""TLS: named options (Traefik's names and defaults) and the default certificate."""

from __future__ import annotations

from pathlib import Path

from pydantic import field_validator, model_validator

from passerelle.settings.base import StrictModel, namespaced
from passerelle.tls import options as tls_names
from passerelle.tls.options import TlsOptions


class ClientAuth(StrictModel):
    """clientAuthType "" (not given): tls/options.py effective_client_auth, Traefik's rule."""

    caFiles: list[str] = []
    caSecret: str = ""
    clientAuthType: str = ""

    _secret = field_validator("caSecret")(namespaced)

    @field_validator("clientAuthType")
    @classmethod
    def _type(cls, value: str) -> str:
        return tls_names.parse_client_auth_type(value) if value else value

    @property
    def effective_type(self) -> str:
        return tls_names.effective_client_auth(self.clientAuthType, bool(self.caFiles or self.caSecret))

    @model_validator(mode="after")
    def _needs_ca(self) -> ClientAuth:
        try:
            tls_names.effective_client_auth(self.clientAuthType, bool(self.caFiles or self.caSecret))
        except ValueError:
            raise ValueError(f"clientAuthType {self.clientAuthType} needs caFiles or caSecret") from None
        return self


class TlsOption(StrictModel):
    minVersion: str = "VersionTLS12"
    maxVersion: str = ""
    cipherSuites: list[str] = []
    alpnProtocols: list[str] = ["h2", "http/1.1"]
    clientAuth: ClientAuth = ClientAuth()
    sniStrict: bool = False
    curvePreferences: list[str] = []

    @field_validator("minVersion", "maxVersion")
    @classmethod
    def _version(cls, value: str) -> str:
        if value:
            tls_names.parse_version(value)
        return value

    @field_validator("cipherSuites")
    @classmethod
    def _suites(cls, value: list[str]) -> list[str]:
        tls_names.parse_cipher_suites(value)
        return value

    @field_validator("curvePreferences")
    @classmethod
    def _curves(cls, value: list[str]) -> list[str]:
        tls_names.parse_curves(value)
        return value

    def resolve(self, name: str, ca_pem: str) -> TlsOptions:
        return TlsOptions(
            name=name,
            min_version=tls_names.parse_version(self.minVersion),
            max_version=tls_names.parse_version(self.maxVersion) if self.maxVersion else None,
            ciphers=tls_names.parse_cipher_suites(self.cipherSuites),
            alpn=tuple(self.alpnProtocols),
            client_auth=self.clientAuth.effective_type,
            ca_pem=ca_pem,
            ca_secret=self.clientAuth.caSecret,
            sni_strict=self.sniStrict,
            curves=tls_names.parse_curves(self.curvePreferences),
        )


class DefaultCertificate(StrictModel):
    certFile: str = ""
    keyFile: str = ""
    secret: str = ""

    _secret = field_validator("secret")(namespaced)

    @model_validator(mode="after")
    def _one_source(self) -> DefaultCertificate:
        files = bool(self.certFile) + bool(self.keyFile)
        if files == 1 or (files == 2) == bool(self.secret):
            raise ValueError("set either certFile and keyFile, or secret")
        return self


class Tls(StrictModel):
    options: dict[str, TlsOption] = {}
    defaultCertificate: DefaultCertificate | None = None


def resolve_tls_paths(tls: Tls, base: Path) -> Tls:
    def resolve(path: str) -> str:
        return str((base / path).resolve()) if path and not Path(path).is_absolute() else path

    options = {
        name: o.model_copy(
            update={
                "clientAuth": o.clientAuth.model_copy(
                    update={"caFiles": [resolve(p) for p in o.clientAuth.caFiles]}
                )
            }
        )
        for name, o in tls.options.items()
    }
    default = tls.defaultCertificate
    if default is not None:
        default = default.model_copy(
            update={"certFile": resolve(default.certFile), "keyFile": resolve(default.keyFile)}
        )
    return tls.model_copy(update={"options": options, "defaultCertificate": default})
