"""contexts: which (certificate, option) a name gets, and contexts reused across reloads."""

from __future__ import annotations

import dataclasses
import logging
import ssl

import pytest
import trustme

from passerelle.model import HostOptions, TlsConfig
from passerelle.tls.contexts import SniTable, TlsStatic, compile_steps, compile_table, version_range
from passerelle.tls.options import TlsOptions
from passerelle.tls.store import generate_default, parse_pair

CA = trustme.CA()


def cert(*names: str):  # type: ignore[no-untyped-def]
    leaf = CA.issue_cert(*names)
    return parse_pair(leaf.cert_chain_pems[0].bytes(), leaf.private_key_pem.bytes()).certificate


STATIC = TlsStatic(
    options={
        "default": TlsOptions(name="default"),
        "modern": TlsOptions(name="modern", min_version=ssl.TLSVersion.TLSv1_3),
        "mtls": TlsOptions(name="mtls", client_auth="RequireAnyClientCert"),
    },
    default_certificate=generate_default(),
)
EXACT, WILD = cert("a.example.com"), cert("*.example.com")
TLS = TlsConfig(
    certificates=(EXACT, WILD),
    hosts=(
        HostOptions(host="a.example.com", options="mtls"),
        HostOptions(host="*.example.com", options="modern"),
        HostOptions(host="ghost.example.org", options="undefined"),
    ),
)


def test_names_resolve_to_certificate_and_option() -> None:
    table = compile_table(STATIC, TLS, ["default"])
    default = STATIC.default_certificate
    assert table.resolve("a.example.com", "default") == (EXACT, "mtls")
    assert table.resolve("b.example.com", "default") == (WILD, "modern")
    assert table.resolve("b.example.com", "other") == (WILD, "modern")  # the host's option wins
    assert table.resolve("x.b.example.com", "default") == (default, "default")
    assert table.resolve(None, "mtls") == (default, "mtls")
    assert table.resolve("ghost.example.org", "default") == (default, "default")  # unknown option


def test_every_reachable_pair_is_built_once_and_reused_on_reload() -> None:
    table = compile_table(STATIC, TLS, ["default", "mtls"])
    pairs = {(fingerprint, option) for fingerprint, option, _ in table.choices}
    default = STATIC.default_certificate.fingerprint
    assert pairs == {
        (default, "default"),
        (default, "mtls"),
        (EXACT.fingerprint, "mtls"),
        (WILD.fingerprint, "modern"),
    }
    assert table.choose("a.example.com", "default").options.client_auth == "RequireAnyClientCert"
    # a reload that adds one certificate builds one context and reuses the others
    added = TlsConfig(certificates=(*TLS.certificates, cert("new.example.org")), hosts=TLS.hosts)
    steps = compile_steps(STATIC, added, ["default", "mtls"], table)
    built = 0
    try:
        while True:
            next(steps)
            built += 1
    except StopIteration as done:
        new = done.value
    assert built == 2  # new.example.org with the default option, and with the mtls option
    for key, choice in table.choices.items():
        assert new.choices[key] is choice


def test_the_dispatcher_negotiates_the_widest_range() -> None:
    assert version_range(STATIC) == (0x0303, 0x0304)
    capped = TlsStatic(
        options={"default": TlsOptions(name="default", max_version=ssl.TLSVersion.TLSv1_2)},
        default_certificate=STATIC.default_certificate,
    )
    assert version_range(capped) == (0x0303, 0x0303)


def test_only_client_auth_or_a_narrower_version_range_needs_the_openssl_seam() -> None:
    default = STATIC.default_certificate

    def static(*options: TlsOptions) -> TlsStatic:
        return TlsStatic(options={o.name: o for o in options}, default_certificate=default)

    assert not static(TlsOptions(name="default")).needs_openssl
    both13 = [TlsOptions(name=n, min_version=ssl.TLSVersion.TLSv1_3) for n in ("default", "b")]
    assert not static(*both13).needs_openssl  # one range for all: nothing to check per host
    assert static(
        TlsOptions(name="default"), TlsOptions(name="b", min_version=ssl.TLSVersion.TLSv1_3)
    ).needs_openssl
    for kind in ("RequestClientCert", "VerifyClientCertIfGiven"):
        assert static(TlsOptions(name="default", client_auth=kind)).needs_openssl
    assert STATIC.needs_openssl


def test_a_failing_choice_is_logged_once_per_message(caplog: pytest.LogCaptureFixture) -> None:
    broken = dataclasses.replace(STATIC.default_certificate, key_pem="not a key")
    static = TlsStatic(options=STATIC.options, default_certificate=broken)
    table = SniTable(static, TlsConfig(), {}, version_range(static))
    caplog.set_level(logging.DEBUG, logger="passerelle.tls")
    for _ in range(3):
        with pytest.raises(ssl.SSLError):
            table.choose("x.example.com", "default")
    records = [r for r in caplog.records if "internal_error" in r.getMessage()]
    assert len(records) == 1 and records[0].levelno == logging.DEBUG
    assert "SSLError" in records[0].getMessage()
