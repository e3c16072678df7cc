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


def test_a_choice_that_cannot_be_built_is_refused_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    broken = dataclasses.replace(STATIC.default_certificate, key_pem="not a key")
    static = TlsStatic(options=STATIC.options, default_certificate=broken)
    table = SniTable(static, TlsConfig(), {})
    caplog.set_level(logging.DEBUG, logger="passerelle.tls")
    for _ in range(3):
        assert (
            table.choose("x.example.com", "default") == ssl.AlertDescription.ALERT_DESCRIPTION_INTERNAL_ERROR
        )
    records = [r for r in caplog.records if "cannot be used" in r.getMessage()]
    assert len(records) == 1 and records[0].levelno == logging.ERROR


def test_a_failing_choice_is_logged_once_per_message(caplog: pytest.LogCaptureFixture) -> None:
    table = SniTable(STATIC, TlsConfig(hosts=(HostOptions(host="x.example.com", options="default"),)), {})
    table.certificates = None  # type: ignore[assignment]  # any unexpected failure in choose()
    caplog.set_level(logging.DEBUG, logger="passerelle.tls")
    for _ in range(3):
        with pytest.raises(AttributeError):
            table.choose("x.example.com", "default")
    records = [r for r in caplog.records if "internal_error" in r.getMessage()]
    assert len(records) == 1 and records[0].levelno == logging.DEBUG
    assert "AttributeError" in records[0].getMessage()


PLAIN = TlsStatic(options={"default": TlsOptions(name="default")}, default_certificate=generate_default())
CRD = "team-mtls@kubernetescrd"


def _cluster(**fields: object) -> TlsConfig:
    option = TlsOptions(name=CRD, source="TLSOption team/mtls", **fields)  # type: ignore[arg-type]
    return TlsConfig(
        certificates=(EXACT,), hosts=(HostOptions(host="a.example.com", options=CRD),), options=(option,)
    )


def test_cluster_options_join_the_static_ones_and_decide_the_session_policy() -> None:
    table = compile_table(PLAIN, _cluster(client_auth="RequireAnyClientCert"), ["default"])
    choice = table.choose("a.example.com", "default")
    assert not isinstance(choice, int) and choice.options.client_auth == "RequireAnyClientCert"
    assert table.switches_verify and not table.resumption and table.needs_openssl
    assert compile_table(PLAIN, TlsConfig(), ["default"]).resumption  # none asks for certificates


def test_an_edited_cluster_option_gets_new_contexts_and_an_unchanged_one_keeps_them() -> None:
    first = compile_table(PLAIN, _cluster(min_version=ssl.TLSVersion.TLSv1_3), ["default"])
    same = _run(compile_steps(PLAIN, _cluster(min_version=ssl.TLSVersion.TLSv1_3), ["default"], first))
    key = first.key(EXACT, CRD)
    assert same.choices[key] is first.choices[key]
    edited = _run(compile_steps(PLAIN, _cluster(alpn=("http/1.1",)), ["default"], same))
    assert edited.choices[key] is not first.choices[key]
    choice = edited.choose("a.example.com", "default")
    assert not isinstance(choice, int) and choice.options.alpn == ("http/1.1",)
    assert (first.range, edited.range) == ((0x0303, 0x0304), (0x0303, 0x0304))


def test_a_cluster_default_replaces_the_static_default_and_sets_the_range() -> None:
    old = TlsOptions(name="default", min_version=ssl.TLSVersion.TLSv1_3, source="TLSOption infra/default")
    table = compile_table(PLAIN, TlsConfig(options=(old,)), ["default"])
    assert table.range == (0x0304, 0x0304)
    choice = table.choose("x.example.com", "default")
    assert not isinstance(choice, int) and choice.options is old


def test_sni_strict_refuses_names_without_a_certificate() -> None:
    table = compile_table(PLAIN, _cluster(sni_strict=True), ["default"])
    assert not isinstance(table.choose("a.example.com", "default"), int)  # its certificate exists
    strict = TlsStatic(
        options={"default": TlsOptions(name="default", sni_strict=True)},
        default_certificate=PLAIN.default_certificate,
    )
    table = compile_table(strict, TlsConfig(certificates=(EXACT,)), ["default"])
    unrecognized = ssl.AlertDescription.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
    assert table.choose("other.example.com", "default") == unrecognized
    assert table.choose(None, "default") == unrecognized
    assert not isinstance(table.choose("a.example.com", "default"), int)


def _run(steps):  # type: ignore[no-untyped-def]
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value
