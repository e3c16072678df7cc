from __future__ import annotations

import re
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
    # Placement knows which entry points redirect every request, and where to.
    assert [(e.redirect_scheme, e.redirect_to) for e in settings.ingress_options().entrypoints] == [
        ("https", "websecure"),
        ("", ""),
        ("https", ""),  # :443: no entry point listens there
    ]


def test_a_redirection_to_an_entry_point_on_port_0_uses_the_default_port() -> None:
    settings = parse_settings(
        "entryPoints:\n"
        "  web:\n    address: ':8080'\n    http: {redirections: {entryPoint: {to: websecure}}}\n"
        "  websecure: {address: '127.0.0.1:0', tls: {}}\n"
    )
    assert settings.entrypoint_options()[0].redirect_port is None  # not https://host:0/


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


TLS_CONFIG = """\
entryPoints:
  web: {address: ":8080"}
  websecure: {address: ":8443", tls: {options: strict}}
  other: {address: ":9443", tls: {}}
tls:
  options:
    strict:
      minVersion: VersionTLS13
      cipherSuites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]
      clientAuth: {caSecret: infra/client-ca, clientAuthType: RequireAndVerifyClientCert}
  defaultCertificate: {secret: infra/wildcard}
"""


def test_tls_entry_points_and_options() -> None:
    settings = parse_settings(TLS_CONFIG)
    web, websecure, other = settings.entrypoint_options()
    assert (web.tls, websecure.tls, websecure.tls_options, other.tls, other.tls_options) == (
        False,
        True,
        "strict",
        True,
        "default",
    )
    translation = settings.ingress_options().tls
    assert translation.options == {"strict", "default"}
    assert translation.ca_secrets == (("strict", "infra/client-ca"),)
    assert translation.default_secret == "infra/wildcard"
    static = settings.tls_static()
    assert static is not None
    strict = static.options["strict"]
    assert strict.min_version == 0x0304 and strict.ciphers == ("ECDHE-RSA-AES128-GCM-SHA256",)
    assert static.options["default"].min_version == 0x0303 and static.options["default"].alpn == (
        "h2",
        "http/1.1",
    )
    assert static.default_certificate.source == "generated"  # the Secret replaces it per version
    assert static.switches_verify  # client authentication somewhere: no session resumption


def test_no_tls_entry_point_means_no_tls_state() -> None:
    assert parse_settings("providers: {manifests: {directory: /m}}\n").tls_static() is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            TLS_CONFIG.replace("VersionTLS13", "TLS13"),
            ":8: tls.options.strict.minVersion: Value error, unknown TLS version",
        ),
        (
            TLS_CONFIG.replace("TLS_ECDHE_RSA", "ECDHE_RSA"),
            ":9: tls.options.strict.cipherSuites: Value error, unknown cipher suite",
        ),
        (
            TLS_CONFIG.replace("RequireAndVerifyClientCert", "Always"),
            "clientAuthType: Value error, unknown clientAuthType 'Always'",
        ),
        (TLS_CONFIG.replace("caSecret: infra/client-ca, ", ""), "needs caFiles or caSecret"),
        (
            TLS_CONFIG.replace("options: strict}", "options: strikt}"),
            ":3: entryPoints.websecure.tls.options: TLS option 'strikt' is not defined",
        ),
        (
            TLS_CONFIG.replace("{secret: infra/wildcard}", "{certFile: a.pem}"),
            "set either certFile and keyFile, or secret",
        ),
        (TLS_CONFIG.replace("infra/wildcard", "wildcard"), "must be namespace/name"),
        (
            TLS_CONFIG.replace("minVersion", "minimumVersion"),
            ":8: tls.options.strict.minimumVersion: unknown key",
        ),
    ],
)
def test_tls_mistakes_name_the_key_and_line(text: str, message: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)):
        parse_settings(text)


def test_default_certificate_and_ca_files_are_read_relative_to_the_config(tmp_path: Path) -> None:
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("fallback.example.com")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "both.pem"))
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    settings = parse_settings(
        "entryPoints: {websecure: {address: ':8443', tls: {}}}\n"
        "tls:\n  defaultCertificate: {certFile: cert.pem, keyFile: key.pem}\n"
        "  options: {default: {clientAuth: {caFiles: [ca.pem], clientAuthType: VerifyClientCertIfGiven}}}\n",
        base=tmp_path,
    )
    static = settings.tls_static()
    assert static is not None
    assert (
        static.default_certificate.names == ("fallback.example.com",) and static.default_certificate.default
    )
    assert static.options["default"].ca_pem.startswith("-----BEGIN CERTIFICATE-----")
    missing = parse_settings(
        "entryPoints: {websecure: {address: ':8443', tls: {}}}\n"
        "tls: {defaultCertificate: {certFile: nope.pem, keyFile: key.pem}}\n",
        base=tmp_path,
    )
    with pytest.raises(SettingsError, match="tls.defaultCertificate: .*nope.pem: No such file"):
        missing.tls_static()


@pytest.mark.parametrize(
    ("client_auth", "expected"),
    [
        ("{caSecret: infra/client-ca}", "RequireAndVerifyClientCert"),  # CAs, no type: Traefik's rule
        ("{caSecret: infra/client-ca, clientAuthType: NoClientCert}", "NoClientCert"),  # explicit wins
        ("{caSecret: infra/client-ca, clientAuthType: RequestClientCert}", "RequestClientCert"),
        ("{}", "NoClientCert"),
    ],
)
def test_cas_without_a_client_auth_type_require_a_verified_certificate(
    client_auth: str, expected: str
) -> None:
    settings = parse_settings(
        "entryPoints: {websecure: {address: ':8443', tls: {}}}\n"
        f"tls: {{options: {{default: {{clientAuth: {client_auth}}}}}}}\n"
    )
    static = settings.tls_static()
    assert static is not None
    assert static.options["default"].client_auth == expected


def test_api_section() -> None:
    default = parse_settings("")
    assert (default.api.address, default.api.dashboard) == ("127.0.0.1:9000", True)
    assert parse_settings("api: {address: ':9100', dashboard: false}\n").api.dashboard is False
    with pytest.raises(SettingsError, match=r"<config>:1: api.insecure: unknown key"):
        parse_settings("api: {insecure: true}\n")


def test_dnssync_defaults_and_paths(tmp_path: Path) -> None:
    settings = parse_settings(
        "providers: {manifests: {directory: /m}}\n"
        "dnsSync:\n  zones: [Example.Test.]\n"
        "  provider: {rfc2136: {server: 127.0.0.1, tsigKeyName: k, tsigSecretFile: secret}}\n",
        base=tmp_path,
    )
    sync = settings.dnsSync
    assert sync is not None
    options = sync.plan_options()
    assert options.zones == ("example.test",) and options.owner == "default" and options.ttl == 60
    assert str(options.policy) == "sync" and options.address_type == "InternalIP" and options.targets == ()
    assert str(options.node_selector) == "role=ingress"
    assert str(options.pod_selector) == "app.kubernetes.io/name=passerelle"
    assert sync.interval == 60 and sync.dns_wait() == 60 and sync.drain.onSigterm is None
    # unset, SIGTERM drains only with the Kubernetes provider (a pod's termination)
    assert sync.drain.on_sigterm(kubernetes=True) and not sync.drain.on_sigterm(kubernetes=False)
    assert sync.provider.rfc2136 is not None
    assert sync.provider.rfc2136.tsigSecretFile == str(tmp_path / "secret")
    (tmp_path / "secret").write_text("c2VjcmV0\n")
    assert sync.provider.rfc2136.options().secret == "c2VjcmV0"
    assert sync.provider.rfc2136.options().full_transfer_every == 10  # a full AXFR at least every 10 reads


@pytest.mark.parametrize(
    "section, error",
    [
        ("zones: []", "dnsSync.zones: List should have at least 1 item"),
        ("zones: [x]\n  provider: {}", "dnsSync.provider: Value error, name a provider: rfc2136"),
        (
            "zones: [x]\n  provider: {rfc2136: {server: s, tsigAlgorithm: hmac-sha3}}",
            "dnsSync.provider.rfc2136.tsigAlgorithm: Value error, 'hmac-sha3' is not one of hmac-sha256",
        ),
        ("zones: [x]\n  policy: create-only\n  provider: {rfc2136: {server: s}}", "dnsSync.policy: "),
        ("zones: [x]\n  addressType: Hostname\n  provider: {rfc2136: {server: s}}", "dnsSync.addressType: "),
    ],
)
def test_dnssync_errors_name_the_key(section: str, error: str) -> None:
    with pytest.raises(SettingsError) as raised:
        parse_settings(f"dnsSync:\n  {section}\n")
    assert error in str(raised.value)


def test_tsig_algorithms_are_the_providers() -> None:
    from passerelle.dnssync.rfc2136 import ALGORITHMS
    from passerelle.settings.dnssync import TSIG_ALGORITHMS

    assert set(TSIG_ALGORITHMS) == set(ALGORITHMS)


def test_observability_settings() -> None:
    from passerelle.settings.observability import DEFAULT_BUCKETS, worker_settings

    settings = parse_settings("providers: {manifests: {directory: /m}}\n")
    assert settings.metrics.prometheus is not None and settings.metrics.prometheus.buckets == DEFAULT_BUCKETS
    assert settings.accessLog is None and settings.log.format == "text"
    assert worker_settings(settings.metrics, settings.accessLog) == {
        "buckets": list(DEFAULT_BUCKETS),
        "accessLog": None,
    }
    off = parse_settings(
        "metrics: {prometheus: false}\naccessLog: {path: /var/log/a.log, format: common}\nlog: {format: json}\n"
    )
    assert off.metrics.prometheus is None and off.log.format == "json"
    assert off.accessLog is not None and (off.accessLog.filePath, off.accessLog.format) == (
        "/var/log/a.log",
        "common",
    )
    assert worker_settings(off.metrics, off.accessLog)["buckets"] is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "metrics: {prometheus: {buckets: [1, 0.5]}}\n",
            "metrics.prometheus.buckets: Value error, buckets must be positive and strictly increasing",
        ),
        (
            "accessLog: {fields: {names: {RequestPth: drop}}}\n",
            "accessLog.fields.names: Value error, unknown fields RequestPth",
        ),
        ("accessLog: {format: xml}\n", "<config>:1: accessLog.format"),
        ("log: {format: yaml}\n", "<config>:1: log.format"),
    ],
)
def test_observability_errors(text: str, message: str) -> None:
    with pytest.raises(SettingsError) as error:
        parse_settings(text)
    assert message in str(error.value)


def test_a_relative_access_log_path_is_relative_to_the_config_file(tmp_path: Path) -> None:
    settings = parse_settings("accessLog: {filePath: logs/access.log}\n", base=tmp_path)
    assert settings.accessLog is not None and settings.accessLog.filePath == str(tmp_path / "logs/access.log")
    settings = parse_settings("accessLog: {filePath: /var/log/a.log}\n", base=tmp_path)
    assert settings.accessLog is not None and settings.accessLog.filePath == "/var/log/a.log"
