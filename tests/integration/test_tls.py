"""TLS termination over real sockets: SNI selection, the default certificate, certificate changes
without a restart, protocol versions, and the five clientAuthTypes with and without a certificate.

Certificates come from trustme CAs; clients are the standard library's ssl, speaking HTTP/1.1 by
hand so each test controls SNI, client certificate, versions and sessions exactly.
"""

from __future__ import annotations

import base64
import datetime
import json
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.integration.harness import Backends, Router, endpoint_slice, free_port, ingress, rule, service

CA = trustme.CA(organization_name="passerelle test server CA")
CLIENT_CA = trustme.CA(organization_name="passerelle test client CA")
ROGUE_CA = trustme.CA(organization_name="someone else")
GOOD_CLIENT = CLIENT_CA.issue_cert("alice@example.com")
ROGUE_CLIENT = ROGUE_CA.issue_cert("mallory@example.com")


def tls_secret(name: str, cert: trustme.LeafCert, *, string_data: bool = False) -> dict[str, Any]:
    crt = b"".join(p.bytes() for p in cert.cert_chain_pems)
    key = cert.private_key_pem.bytes()
    body: dict[str, Any] = (
        {"stringData": {"tls.crt": crt.decode(), "tls.key": key.decode()}}
        if string_data
        else {"data": {"tls.crt": base64.b64encode(crt).decode(), "tls.key": base64.b64encode(key).decode()}}
    )
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "type": "kubernetes.io/tls",
        **body,
    }


@dataclass
class Answer:
    subject: str  # the server certificate's subject CN or O
    names: list[str]
    fingerprint: bytes
    status: int
    body: dict[str, Any]
    version: str
    reused: bool  # the handshake resumed a session


def call(
    port: int,
    sni: str | None,
    *,
    host: str | None = None,
    client: trustme.LeafCert | None = None,
    maximum: ssl.TLSVersion | None = None,
    minimum: ssl.TLSVersion | None = None,
    session: ssl.SSLSession | None = None,
    sessions: list[ssl.SSLSession] | None = None,
    context: ssl.SSLContext | None = None,
) -> Answer:
    """One TLS connection, one GET /; raises ssl.SSLError / OSError when the server refuses."""
    if context is None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the test inspects the certificate it got instead
    if maximum:
        context.maximum_version = maximum
    if minimum:
        context.minimum_version = minimum
    if client is not None:
        client.configure_cert(context)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=sni, session=session) as conn:
            der = conn.getpeercert(binary_form=True)
            assert der is not None
            request = f"GET / HTTP/1.1\r\nHost: {host or sni or 'localhost'}\r\nConnection: close\r\n\r\n"
            conn.sendall(request.encode())
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
            if sessions is not None and conn.session is not None:
                sessions.append(conn.session)
            version = conn.version() or ""
            reused = conn.session_reused
    if not data:
        raise ConnectionResetError("the server closed the connection without answering")
    head, _, body = data.partition(b"\r\n\r\n")
    cert = x509.load_der_x509_certificate(der)
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME) or cert.subject.get_attributes_for_oid(
        NameOID.ORGANIZATION_NAME
    )
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = san.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = []
    status = int(head.split(b" ", 2)[1])
    parsed = json.loads(body) if status == 200 else {}
    return Answer(
        str(cn[0].value),
        names,
        cert.fingerprint(cert.signature_hash_algorithm),
        status,
        parsed,
        version,
        reused,
    )  # type: ignore[arg-type]


def read_response(conn: ssl.SSLSocket) -> bytes:
    """One whole response with a Content-Length body, from a keep-alive connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += conn.recv(65536)
    return head


def refused(*args: Any, **kwargs: Any) -> bool:
    """call(*args, **kwargs) was refused: handshake failure, or closed before an answer (TLS 1.3
    reports a refused client certificate only after the client's side of the handshake)."""
    try:
        call(*args, **kwargs)
    except (ssl.SSLError, OSError):
        return True
    return False


def site(backends: Backends, name: str) -> list[dict[str, Any]]:
    port = backends.whoami(name)
    return [service(name), endpoint_slice(name, [port])]


def tls_router(
    make_router: Callable[..., Router],
    objects: list[dict[str, Any]],
    *,
    entry: dict[str, Any] | None = None,
    **config: Any,
) -> tuple[Router, int]:
    port = free_port()
    entry_points = {"websecure": {"address": f"127.0.0.1:{port}", "tls": entry or {}}}
    return make_router(objects, config={"entryPoints": entry_points, **config}), port


def test_sni_picks_exact_then_wildcard_then_default_and_a_missing_secret_falls_back(
    backends: Backends, make_router: Callable[..., Router]
) -> None:
    exact, wildcard = CA.issue_cert("a.test"), CA.issue_cert("*.w.test")
    objects = [
        *site(backends, "tls-site"),
        tls_secret("exact", exact),
        tls_secret("wildcard", wildcard, string_data=True),
        ingress(
            "secure",
            [rule(h, ("/", "Prefix", "tls-site")) for h in ("a.test", "x.w.test", "lost.test")],
            tls=[
                {"hosts": ["a.test"], "secretName": "exact"},
                {"hosts": ["x.w.test"], "secretName": "wildcard"},
                {"hosts": ["lost.test"], "secretName": "missing"},
            ],
        ),
    ]
    router, port = tls_router(make_router, objects, workers=2)
    for _ in range(4):  # both workers, by SO_REUSEPORT's spreading: each must answer alike
        a = call(port, "a.test")
        assert a.names == ["a.test"] and a.status == 200
        assert a.body["headers"]["X-Forwarded-Proto"] == ["https"]
        assert a.body["headers"]["X-Forwarded-Port"] == ["443"]  # no port in Host: the scheme's default
        assert call(port, "x.w.test").names == ["*.w.test"]
        assert call(port, "A.Test").names == ["a.test"]  # SNI is case-insensitive
        assert call(port, "y.x.w.test", host="x.w.test").subject == "PASSERELLE DEFAULT CERT"  # one label
        assert call(port, "lost.test").subject == "PASSERELLE DEFAULT CERT"
        assert call(port, None, host="a.test").subject == "PASSERELLE DEFAULT CERT"  # no SNI
    lost = call(port, "lost.test")
    assert lost.status == 200, "the Ingress whose Secret is missing is still served, on the default cert"
    router.wait_problem("Ingress default/secure", "Secret default/missing not found")
    # every worker serves the same generated default certificate
    assert len({call(port, "nothing.test").fingerprint for _ in range(6)}) == 1


def test_a_verifying_client_accepts_the_certificates(
    backends: Backends, make_router: Callable[..., Router]
) -> None:
    cert = CA.issue_cert("v.test", "*.v.test")
    objects = [
        *site(backends, "tls-verify"),
        tls_secret("v", cert),
        ingress("v", [rule("v.test", ("/", "Prefix", "tls-verify"))], tls=[{"secretName": "v"}]),
    ]
    _, port = tls_router(make_router, objects)
    context = ssl.create_default_context()
    CA.configure_trust(context)
    for name in ("v.test", "deep.v.test"):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname=name) as conn:  # hostname checked too
                assert conn.selected_alpn_protocol() in (None, "http/1.1")
                assert conn.version() == "TLSv1.3"


def test_a_replaced_certificate_applies_to_new_handshakes_without_restart(
    backends: Backends, make_router: Callable[..., Router]
) -> None:
    first, second = CA.issue_cert("r.test"), CA.issue_cert("r.test")
    base = [
        *site(backends, "tls-reload"),
        ingress("r", [rule("r.test", ("/", "Prefix", "tls-reload"))], tls=[{"secretName": "r"}]),
    ]
    router, port = tls_router(make_router, [*base, tls_secret("r", first)])
    before = call(port, "r.test").fingerprint
    # a keep-alive connection opened on the first certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    CA.configure_trust(context)
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    kept = context.wrap_socket(raw, server_hostname="r.test")
    kept.sendall(b"GET / HTTP/1.1\r\nHost: r.test\r\n\r\n")
    assert read_response(kept).startswith(b"HTTP/1.1 200")
    version = router.version()
    router.write("objects.yaml", [*base, tls_secret("r", second)])
    router.wait_version(version)
    after = call(port, "r.test").fingerprint
    assert before != after
    second_fp = x509.load_pem_x509_certificate(second.cert_chain_pems[0].bytes())
    assert after == second_fp.fingerprint(second_fp.signature_hash_algorithm)  # type: ignore[arg-type]
    assert router.workers()[0]["restarts"] == 0
    kept.sendall(b"GET / HTTP/1.1\r\nHost: r.test\r\n\r\n")  # the old connection goes on
    assert read_response(kept).startswith(b"HTTP/1.1 200")
    kept.close()
    # a Secret turned bad: the host falls back to the default certificate, with a Problem
    broken = tls_secret("r", second)
    broken["data"]["tls.key"] = base64.b64encode(first.private_key_pem.bytes()).decode()
    version = router.version()
    router.write("objects.yaml", [*base, broken])
    router.wait_version(version)
    assert call(port, "r.test").subject == "PASSERELLE DEFAULT CERT"
    router.wait_problem("Ingress default/r", "tls.key does not match the certificate")


def test_versions_per_entry_point_and_per_host(
    backends: Backends, make_router: Callable[..., Router]
) -> None:
    cert = CA.issue_cert("old.test", "new.test", "any.test")
    objects = [
        *site(backends, "tls-versions"),
        tls_secret("v", cert),
        ingress("any", [rule("any.test", ("/", "Prefix", "tls-versions"))], tls=[{"secretName": "v"}]),
        ingress("new", [rule("new.test", ("/", "Prefix", "tls-versions"))]),
        ingress("old", [rule("old.test", ("/", "Prefix", "tls-versions"))]),
    ]
    objects[-2]["metadata"]["annotations"] = {"passerelle.io/tls-options": "modern"}
    objects[-1]["metadata"]["annotations"] = {
        "traefik.ingress.kubernetes.io/router.tls.options": "legacy@file"
    }
    options = {
        "tls": {
            "options": {
                "modern": {"minVersion": "VersionTLS13"},
                "legacy": {
                    "maxVersion": "VersionTLS12",
                    "cipherSuites": ["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"],
                },
            }
        }
    }
    _, port = tls_router(make_router, objects, **options)
    tls12, tls13 = ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3
    assert call(port, "any.test", maximum=tls12).version == "TLSv1.2"  # default: TLS 1.2 and up
    assert call(port, "any.test").version == "TLSv1.3"
    assert refused(port, "new.test", maximum=tls12)
    assert call(port, "new.test").version == "TLSv1.3"
    legacy = call(port, "old.test", maximum=tls12)
    assert legacy.version == "TLSv1.2" and legacy.status == 200
    assert refused(port, "old.test", minimum=tls13)
    # the legacy option's one cipher suite is the one negotiated (it follows the context switch)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode, context.maximum_version = False, ssl.CERT_NONE, tls12
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="old.test") as conn:
            assert conn.cipher()[0] == "ECDHE-ECDSA-AES128-GCM-SHA256"  # type: ignore[index]


# clientAuthType -> accepted (no certificate, a certificate of the CA, a certificate of another CA)
CLIENT_AUTH = {
    "NoClientCert": (True, True, True),
    "RequestClientCert": (True, True, True),
    "RequireAnyClientCert": (False, True, True),
    "VerifyClientCertIfGiven": (True, True, False),
    "RequireAndVerifyClientCert": (False, True, False),
}


def test_each_client_auth_type_accepts_and_refuses_as_traefik(
    backends: Backends, make_router: Callable[..., Router], tmp_path: Path
) -> None:
    ca_file = tmp_path / "client-ca.pem"
    CLIENT_CA.cert_pem.write_to_path(str(ca_file))
    cert = CA.issue_cert("m.test")
    objects = [
        *site(backends, "tls-mtls"),
        tls_secret("m", cert),
        ingress("m", [rule("m.test", ("/", "Prefix", "tls-mtls"))], tls=[{"secretName": "m"}]),
    ]
    ports = {kind: free_port() for kind in CLIENT_AUTH}
    config = {
        "entryPoints": {
            kind: {"address": f"127.0.0.1:{port}", "tls": {"options": kind}} for kind, port in ports.items()
        },
        "tls": {
            "options": {
                kind: {"clientAuth": {"caFiles": [str(ca_file)], "clientAuthType": kind}}
                for kind in CLIENT_AUTH
            }
        },
    }
    make_router(objects, config=config)
    for kind, expected in CLIENT_AUTH.items():
        for tls_max in (None, ssl.TLSVersion.TLSv1_2):  # TLS 1.3 reports a refusal after the handshake
            for sni in ("m.test", None):  # without SNI the entry point's option applies all the same
                got = tuple(
                    not refused(ports[kind], sni, host="m.test", client=client, maximum=tls_max)
                    for client in (None, GOOD_CLIENT, ROGUE_CLIENT)
                )
                assert got == expected, (
                    f"{kind} (max {tls_max}, SNI {sni}): accepted (none, good, rogue) = {got}"
                )


def test_client_auth_for_one_host_and_no_resumption_across_hosts(
    backends: Backends, make_router: Callable[..., Router]
) -> None:
    """Per-host options switch the verify mode mid-handshake (OpenSSL would keep the entry point's),
    with the CA from a Secret; a session from an open host must not resume on the guarded one."""
    cert = CA.issue_cert("open.test", "guarded.test")
    ca_secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "client-ca"},
        "stringData": {"ca.crt": CLIENT_CA.cert_pem.bytes().decode()},
    }
    guarded = ingress(
        "guarded", [rule("guarded.test", ("/", "Prefix", "tls-host"))], tls=[{"secretName": "g"}]
    )
    guarded["metadata"]["annotations"] = {"traefik.ingress.kubernetes.io/router.tls.options": "mtls"}
    objects = [
        *site(backends, "tls-host"),
        tls_secret("g", cert),
        ca_secret,
        ingress("open", [rule("open.test", ("/", "Prefix", "tls-host"))], tls=[{"secretName": "g"}]),
        guarded,
    ]
    options = {
        "tls": {
            "options": {
                "mtls": {
                    "clientAuth": {
                        "caSecret": "default/client-ca",
                        "clientAuthType": "RequireAndVerifyClientCert",
                    }
                }
            }
        }
    }
    _, port = tls_router(make_router, objects, **options)
    for tls_max in (None, ssl.TLSVersion.TLSv1_2):
        assert call(port, "open.test", maximum=tls_max).status == 200
        assert refused(port, "guarded.test", maximum=tls_max)
        assert refused(port, "guarded.test", client=ROGUE_CLIENT, maximum=tls_max)
        assert call(port, "guarded.test", client=GOOD_CLIENT, maximum=tls_max).status == 200
        client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
        if tls_max is not None:
            client.maximum_version = tls_max
        sessions: list[ssl.SSLSession] = []
        call(port, "open.test", context=client, sessions=sessions)
        assert sessions
        assert refused(port, "guarded.test", context=client, session=sessions[0])
        assert not call(port, "open.test", context=client, session=sessions[0]).reused  # off everywhere


def test_without_client_auth_anywhere_a_second_connection_resumes(
    backends: Backends, make_router: Callable[..., Router]
) -> None:
    """The control for the test above: resumption is on where no option asks for client
    certificates, so that test's refusals cannot come from resumption being off for everyone."""
    objects = [
        *site(backends, "tls-resume"),
        tls_secret("o", CA.issue_cert("open.test")),
        ingress("o", [rule("open.test", ("/", "Prefix", "tls-resume"))], tls=[{"secretName": "o"}]),
    ]
    _, port = tls_router(make_router, objects, workers=1)  # tickets are per process
    for tls_max in (None, ssl.TLSVersion.TLSv1_2):
        client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
        if tls_max is not None:
            client.maximum_version = tls_max
        sessions: list[ssl.SSLSession] = []
        first = call(port, "open.test", context=client, sessions=sessions)
        assert not first.reused and sessions
        again = call(port, "open.test", context=client, session=sessions[-1])
        assert again.reused and again.status == 200, f"no resumption (max {tls_max})"


def test_a_tls_secret_of_the_wrong_type_is_a_problem(
    backends: Backends, make_router: Callable[..., Router]
) -> None:
    secret = tls_secret("opaque", CA.issue_cert("o.test"))
    secret["type"] = "Opaque"
    objects = [
        *site(backends, "tls-opaque"),
        secret,
        ingress("o", [rule("o.test", ("/", "Prefix", "tls-opaque"))], tls=[{"secretName": "opaque"}]),
    ]
    router, port = tls_router(make_router, objects)
    assert call(port, "o.test").subject == "PASSERELLE DEFAULT CERT"
    router.wait_problem("Ingress default/o", "has type Opaque, not kubernetes.io/tls")


def test_a_host_is_never_served_on_a_connection_made_under_another_hosts_options(
    backends: Backends, make_router: Callable[..., Router], tmp_path: Path
) -> None:
    """SNI open.test, then Host: guarded.test, must not skip guarded's client authentication:
    421 Misdirected Request, as Traefik's snicheck answers (RFC 9110 §15.5.20)."""
    ca_file = tmp_path / "client-ca.pem"
    CLIENT_CA.cert_pem.write_to_path(str(ca_file))
    cert = CA.issue_cert("open.test", "guarded.test", "*.wild.test")
    guarded = ingress(
        "guarded",
        [
            rule("guarded.test", ("/", "Prefix", "tls-front")),
            rule("a.wild.test", ("/", "Prefix", "tls-front")),
        ],
        tls=[{"secretName": "f"}],
    )
    guarded["metadata"]["annotations"] = {"passerelle.io/tls-options": "mtls"}
    objects = [
        *site(backends, "tls-front"),
        tls_secret("f", cert),
        ingress("open", [rule("open.test", ("/", "Prefix", "tls-front"))], tls=[{"secretName": "f"}]),
        guarded,
    ]
    options = {
        "tls": {
            "options": {
                "mtls": {
                    "clientAuth": {"caFiles": [str(ca_file)], "clientAuthType": "RequireAndVerifyClientCert"}
                }
            }
        }
    }
    _, port = tls_router(make_router, objects, **options)
    assert call(port, "open.test").status == 200
    assert call(port, "open.test", host="guarded.test").status == 421  # fronting: no client cert asked
    assert call(port, None, host="guarded.test").status == 421  # no SNI: the entry point's option
    assert call(port, "guarded.test", client=GOOD_CLIENT).status == 200
    assert call(port, "guarded.test", host="Guarded.Test:443", client=GOOD_CLIENT).status == 200
    assert call(port, "guarded.test", host="open.test", client=GOOD_CLIENT).status == 421  # the other way
    assert call(port, "a.wild.test", host="guarded.test", client=GOOD_CLIENT).status == 200  # same option


def ca_bundle(size: int) -> str:
    """At least `size` bytes of distinct self-signed CA certificates (PEM), like an IGTF bundle."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    pems: list[str] = []
    while sum(map(len, pems)) < size:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"bundle CA {len(pems)}")])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        pems.append(cert.public_bytes(serialization.Encoding.PEM).decode())
    return "".join(pems)


def test_no_key_on_a_worker_command_line_and_a_large_ca_bundle_starts(
    backends: Backends, make_router: Callable[..., Router], tmp_path: Path
) -> None:
    """The static TLS state (default certificate key, caFiles) travels over the channel: argv is
    world-readable in /proc and limited to 128 KiB an argument (E2BIG)."""
    default = CA.issue_cert("default.test")
    cert_file, key_file = tmp_path / "default.crt", tmp_path / "default.key"
    default.cert_chain_pems[0].write_to_path(str(cert_file))
    default.private_key_pem.write_to_path(str(key_file))
    bundle = tmp_path / "bundle.pem"
    bundle.write_text(ca_bundle(300_000) + CLIENT_CA.cert_pem.bytes().decode())
    assert bundle.stat().st_size > 300_000
    objects = [
        *site(backends, "tls-argv"),
        ingress("a", [rule("a.test", ("/", "Prefix", "tls-argv"))], tls=[{"hosts": ["a.test"]}]),
    ]
    options = {
        "defaultCertificate": {"certFile": str(cert_file), "keyFile": str(key_file)},
        "options": {
            "default": {"clientAuth": {"caFiles": [str(bundle)], "clientAuthType": "VerifyClientCertIfGiven"}}
        },
    }
    router, port = tls_router(make_router, objects, tls=options, workers=2)
    workers = router.workers()
    assert len(workers) == 2
    for worker in workers:
        cmdline = Path(f"/proc/{worker['pid']}/cmdline").read_bytes()
        assert b"passerelle.proxy.worker" in cmdline
        assert b"PRIVATE KEY" not in cmdline and b"CERTIFICATE" not in cmdline
        assert len(cmdline) < 4096
    assert call(port, "a.test").names == ["default.test"]  # the default certificate, from its files
    assert call(port, "a.test", client=GOOD_CLIENT).status == 200  # the bundle's CA is the last one
    assert refused(port, "a.test", client=ROGUE_CLIENT)
