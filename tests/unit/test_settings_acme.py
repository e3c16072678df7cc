"""certificatesResolvers: defaults, renewBefore forms, paths, and the mistakes refused at start."""

from __future__ import annotations

from pathlib import Path

import pytest

from passerelle.settings import SettingsError, parse_settings
from passerelle.settings.acme import LETS_ENCRYPT

BASE = """
entryPoints:
  web: {address: ":80"}
  websecure: {address: ":443", tls: {certResolver: le}}
certificatesResolvers:
  le:
    acme:
"""


def test_defaults_and_paths(tmp_path: Path) -> None:
    settings = parse_settings(BASE + "      httpChallenge: {entryPoint: web}\n", base=tmp_path)
    acme = settings.certificatesResolvers["le"].acme
    assert acme.caServer == LETS_ENCRYPT and acme.keyType == "EC256"
    assert acme.renewBefore.fraction == pytest.approx(1 / 3) and acme.renewBefore.duration is None
    assert acme.storage.file == str(tmp_path / "acme") and acme.storage.secret is None
    assert acme.httpChallenge is not None and acme.httpChallenge.delay == 2.0
    assert acme.retry.initialInterval == 300.0
    translation = settings.tls_translation().acme
    assert translation.resolvers == frozenset({"le"})
    assert translation.entrypoints == (("web", ""), ("websecure", "le"))


@pytest.mark.parametrize(("value", "fraction", "duration"), [('"50%"', 0.5, None), ('"1/4"', 0.25, None),
                                                             ("720h", None, 720 * 3600.0), ("3600", None, 3600.0)])  # fmt: skip
def test_renew_before(value: str, fraction: float | None, duration: float | None) -> None:
    text = BASE + f"      httpChallenge: {{entryPoint: web}}\n      renewBefore: {value}\n"
    renew = parse_settings(text).certificatesResolvers["le"].acme.renewBefore
    assert renew.fraction == fraction and renew.duration == duration


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("      email: a@b\n", "needs httpChallenge or tlsChallenge"),
        ("      httpChallenge: {entryPoint: nope}\n", "no entry point named 'nope'"),
        ("      httpChallenge: {entryPoint: websecure}\n", "terminates TLS"),
        ("      tlsChallenge: {}\n      keyType: RSA8192\n", "keyType"),
        ("      tlsChallenge: {}\n      caServer: ftp://x\n", r"is not an http\(s\) URL"),
        ("      tlsChallenge: {}\n      onHostRule: true\n", "unknown key"),
        (
            "      tlsChallenge: {}\n      storage: {secret: {}}\n",
            "storage.secret: needs providers.kubernetes",
        ),
        ("      tlsChallenge: {}\n      storage: {}\n", "exactly one of file"),
        ("      tlsChallenge: {}\n      storage: {file: a, secret: {}}\n", "exactly one of file"),
        ("      tlsChallenge: {}\n      storage: {secret: {name: x}}\n", "unknown key"),
        (
            "      tlsChallenge: {}\n      storage: {secret: {namespace: Kube_System}}\n",
            "not a namespace name",
        ),
    ],
)
def test_mistakes_are_refused(extra: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        parse_settings(BASE + extra)


def test_an_entry_point_must_name_a_defined_resolver() -> None:
    text = "entryPoints:\n  websecure: {address: ':443', tls: {certResolver: missing}}\n"
    with pytest.raises(SettingsError, match="no resolver named 'missing'"):
        parse_settings(text)


@pytest.mark.parametrize(
    ("value", "file", "namespace"),
    [("certs", "certs", None), ("{file: certs}", "certs", None), ("{secret: {}}", None, ""),
     ("{secret: {namespace: acme}}", None, "acme")],
)  # fmt: skip
def test_storage_forms(tmp_path: Path, value: str, file: str | None, namespace: str | None) -> None:
    text = "providers: {kubernetes: {}}\n" + BASE + f"      tlsChallenge: {{}}\n      storage: {value}\n"
    storage = parse_settings(text, base=tmp_path).certificatesResolvers["le"].acme.storage
    assert storage.file == (str(tmp_path / file) if file else None)
    assert (storage.secret.namespace if storage.secret else None) == namespace


def test_secret_storage_needs_a_resolver_name_that_can_name_secrets() -> None:
    text = "providers: {kubernetes: {}}\n" + BASE.replace("  le:", "  Let_Encrypt:").replace(
        "certResolver: le", "certResolver: Let_Encrypt"
    )
    with pytest.raises(SettingsError, match="lower-case letters"):
        parse_settings(text + "      tlsChallenge: {}\n      storage: {secret: {}}\n")
