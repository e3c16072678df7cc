"""options: Traefik's TLS option names resolved, with errors that list what is known."""

from __future__ import annotations

import ssl

import pytest

from passerelle.tls.options import (
    CIPHER_SUITES,
    CLIENT_AUTH_TYPES,
    TlsOptions,
    options_reference,
    parse_cipher_suites,
    parse_client_auth_type,
    parse_version,
)


def test_versions() -> None:
    assert parse_version("VersionTLS12") is ssl.TLSVersion.TLSv1_2
    assert parse_version("VersionTLS13") is ssl.TLSVersion.TLSv1_3
    with pytest.raises(ValueError, match="unknown TLS version 'TLSv1.2'; use one of VersionTLS10"):
        parse_version("TLSv1.2")


def test_cipher_suites_map_to_openssl_names_and_tls13_ones_are_dropped() -> None:
    assert parse_cipher_suites(
        ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256", "TLS_RSA_WITH_AES_256_GCM_SHA384"]
    ) == ("ECDHE-RSA-AES128-GCM-SHA256", "AES256-GCM-SHA384")
    with pytest.raises(ValueError, match="unknown cipher suite 'ECDHE-RSA-AES128-GCM-SHA256'"):
        parse_cipher_suites(["ECDHE-RSA-AES128-GCM-SHA256"])


def test_every_mapped_suite_but_3des_is_usable_with_this_openssl() -> None:
    unusable = []
    for go_name in CIPHER_SUITES:
        try:
            parse_cipher_suites([go_name])
        except ValueError as e:
            assert f"{go_name!r} ({CIPHER_SUITES[go_name]}) is not supported by" in str(e)
            unusable.append(go_name)
    assert all("3DES" in name for name in unusable)  # OpenSSL 3 removed 3DES from the default build


def test_one_unusable_suite_in_a_list_is_an_error_naming_it() -> None:
    """OpenSSL would silently drop it from the list and use the rest."""
    with pytest.raises(ValueError, match="'TLS_RSA_WITH_3DES_EDE_CBC_SHA' .*is not supported by"):
        parse_cipher_suites(["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_RSA_WITH_3DES_EDE_CBC_SHA"])


def test_client_auth_types_are_traefiks_five() -> None:
    assert list(CLIENT_AUTH_TYPES) == [
        "NoClientCert",
        "RequestClientCert",
        "RequireAnyClientCert",
        "VerifyClientCertIfGiven",
        "RequireAndVerifyClientCert",
    ]
    assert parse_client_auth_type("RequireAnyClientCert") == "RequireAnyClientCert"
    with pytest.raises(ValueError, match="use one of NoClientCert"):
        parse_client_auth_type("require")


def test_option_references() -> None:
    assert options_reference("mtls") == "mtls"
    assert options_reference(" mtls@file ") == "mtls"
    assert options_reference("default-mtls@kubernetescrd") == "default-mtls@kubernetescrd"  # unknown then


def test_options_round_trip_and_version_range() -> None:
    option = TlsOptions(
        name="strict",
        min_version=ssl.TLSVersion.TLSv1_3,
        ciphers=("ECDHE-RSA-AES128-GCM-SHA256",),
        client_auth="RequireAndVerifyClientCert",
        ca_pem="PEM",
        ca_secret="ns/ca",
    )
    assert TlsOptions.from_dict(option.to_dict()) == option
    assert option.accepts(0x0304) and not option.accepts(0x0303)
    capped = TlsOptions(name="old", max_version=ssl.TLSVersion.TLSv1_2)
    assert capped.accepts(0x0303) and not capped.accepts(0x0304)
    assert option.auth.require and option.auth.verify and not capped.auth.request
