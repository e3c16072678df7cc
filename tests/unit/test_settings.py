from __future__ import annotations

from pathlib import Path

import pytest

from passerelle.settings import SettingsError, parse_settings, split_address


def test_defaults_are_documented_values() -> None:
    settings = parse_settings("providers: {manifests: {directory: /m}}\n")
    [web] = settings.entrypoint_options()
    assert (web.name, web.host, web.port) == ("web", "", 8080)
    assert (web.header_timeout, web.idle_timeout, web.max_request_line, web.max_header_bytes) == (
        30,
        180,
        8192,
        32768,
    )
    forwarding = settings.forwarding_options()
    assert (forwarding.dial_timeout, forwarding.response_header_timeout, forwarding.idle_conn_timeout) == (
        30,
        60,
        90,
    )
    assert settings.api.address == "127.0.0.1:9000"
    assert settings.ingress_options().ingress_classes == ("passerelle", "traefik")


def test_durations_and_relative_directories(tmp_path: Path) -> None:
    settings = parse_settings(
        "entryPoints:\n  web:\n    address: '[::1]:80'\n    transport: {respondingTimeouts: {headerTimeout: 500ms, idleTimeout: 2m}}\n"
        "providers: {manifests: {directory: manifests}}\n",
        base=tmp_path,
    )
    [web] = settings.entrypoint_options()
    assert (web.host, web.port, web.header_timeout, web.idle_timeout) == ("::1", 80, 0.5, 120.0)
    assert settings.providers.manifests is not None
    assert settings.providers.manifests.directory == str(tmp_path / "manifests")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "entryPoints:\n  web:\n    address: ':80'\n    bogus: 1\n",
            "<config>:4: entryPoints.web.bogus: unknown key",
        ),
        ("api:\n  address: 12\n", "<config>:2: api.address: Input should be a valid string"),
        ("entryPoints:\n  web: {address: 'nope'}\n", "address 'nope' must be host:port or :port"),
        (
            "entryPoints:\n  web:\n    address: ':80'\n    transport:\n      respondingTimeouts: {idleTimeout: soon}\n",
            "<config>:5: entryPoints.web.transport.respondingTimeouts.idleTimeout: Value error, 'soon' is not a duration",
        ),
        ("- a list\n", "<config>:1: the configuration must be a mapping"),
        ("key: [unclosed\n", "<config>:2: not valid YAML"),
    ],
)
def test_errors_name_the_key_and_line(text: str, message: str) -> None:
    with pytest.raises(SettingsError) as error:
        parse_settings(text)
    assert message in str(error.value)


def test_split_address() -> None:
    assert split_address(":8080") == ("", 8080)
    assert split_address("0.0.0.0:80") == ("0.0.0.0", 80)
    with pytest.raises(SettingsError):
        split_address("host:99999")


def test_entrypoint_redirections_and_tls_placement() -> None:
    settings = parse_settings(
        "entryPoints:\n"
        "  web:\n    address: ':8080'\n    http: {redirections: {entryPoint: {to: websecure}}}\n"
        "  websecure: {address: ':8443', tls: {}}\n"
        "  other:\n    address: ':9090'\n    http: {redirections: {entryPoint: {to: ':443', scheme: https, permanent: false}}}\n"
    )
    web, websecure, other = settings.entrypoint_options()
    assert (web.redirect_scheme, web.redirect_port, web.redirect_permanent) == ("https", 8443, True)
    assert websecure.redirect_scheme == ""
    assert (other.redirect_scheme, other.redirect_port, other.redirect_permanent) == ("https", 443, False)
    assert [(e.name, e.tls, e.port) for e in settings.ingress_options().entrypoints] == [
        ("web", False, 8080),
        ("websecure", True, 8443),
        ("other", False, 9090),
    ]


@pytest.mark.parametrize(
    ("redirect", "message"),
    [
        ("{to: web}", "entryPoints.web.http.redirections.entryPoint.to: redirects to itself"),
        ("{to: nowhere}", "'nowhere' is neither an entry point (web) nor a port"),
        (
            "{to: web2, scheme: ftp}",
            "entryPoints.web.http.redirections.entryPoint.scheme: Input should be 'http' or 'https'",
        ),
        ("{scheme: https}", "entryPoints.web.http.redirections.entryPoint.to: Field required"),
    ],
)
def test_bad_redirections_are_reported(redirect: str, message: str) -> None:
    with pytest.raises(SettingsError) as error:
        parse_settings(
            f"entryPoints:\n  web:\n    address: ':80'\n    http: {{redirections: {{entryPoint: {redirect}}}}}\n"
        )
    assert message in str(error.value)
