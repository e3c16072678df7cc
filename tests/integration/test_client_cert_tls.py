"""Client-certificate headers over real sockets.

A real TLS client presents the fixture certificate over loopback; the headers come from what the
server's TLS stack hands back, not from the fixture files. And through the real proxy, forged
client-certificate headers from a client never reach the backend.

This is the seam the data plane will use: after a handshake that verified the client against the
entry point's CA, the peer certificate's DER goes to `client_cert_headers`. Python's ssl module
gives the leaf only (`getpeercert(binary_form=True)`) before 3.13; from 3.13
`get_unverified_chain()` also returns the intermediates the client sent.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote_plus

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from passerelle.tls.certinfo import client_cert_headers
from passerelle.tls.clientcert import ClientCertSpec, CompatLevel, InfoFields, SubjectFields
from tests.integration.harness import Backends, Router, echo, endpoint_slice, ingress, rule, service

FIXTURES = Path(__file__).resolve().parent.parent / "unit" / "tls" / "fixtures"


def server_context(tmp: Path) -> ssl.SSLContext:
    """A server certificate for 127.0.0.1 signed by the fixture root, which is also the client CA."""
    root = x509.load_pem_x509_certificate((FIXTURES / "root.pem").read_bytes())
    root_key = serialization.load_pem_private_key((FIXTURES / "root.key").read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    when = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(root.subject)
        .public_key(key.public_key())
        .serial_number(99)
        .not_valid_before(when)
        .not_valid_after(when + datetime.timedelta(days=365 * 30))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(root_key, None)
    )  # fmt: skip
    (tmp / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "server.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp / "server.pem", tmp / "server.key")
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(FIXTURES / "root.pem")  # the intermediate must come from the client
    return context


def client_context(tmp: Path) -> ssl.SSLContext:
    (tmp / "client.pem").write_bytes(
        (FIXTURES / "leaf.pem").read_bytes() + (FIXTURES / "intermediate.pem").read_bytes()
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(FIXTURES / "root.pem")
    context.load_cert_chain(tmp / "client.pem", FIXTURES / "leaf.key")
    return context


def test_headers_from_a_real_handshake(tmp_path: Path) -> None:
    server = server_context(tmp_path)
    listener = socket.create_server(("127.0.0.1", 0))
    got: dict[str, object] = {}

    def serve() -> None:
        conn, _ = listener.accept()
        with server.wrap_socket(conn, server_side=True) as tls:
            got["leaf"] = tls.getpeercert(binary_form=True)
            chain = getattr(tls, "get_unverified_chain", None)  # Python >= 3.13
            got["chain"] = chain() if chain else None
            tls.sendall(b"ok")

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with socket.create_connection(listener.getsockname(), timeout=10) as raw:
            with client_context(tmp_path).wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                assert tls.recv(2) == b"ok"
    finally:
        thread.join(timeout=10)
        listener.close()

    leaf = got["leaf"]
    assert isinstance(leaf, bytes)
    expected_leaf = x509.load_pem_x509_certificate((FIXTURES / "leaf.pem").read_bytes())
    assert leaf == expected_leaf.public_bytes(serialization.Encoding.DER)
    if got["chain"] is not None:  # 3.13+: the intermediate the client sent is there too
        assert len(got["chain"]) == 2

    spec = ClientCertSpec(pem=True, info=InfoFields(not_before=True, subject=SubjectFields(common_name=True)))
    lines = dict(client_cert_headers(spec, [leaf]))
    assert (
        unquote_plus(lines[b"X-Forwarded-Tls-Client-Cert-Info"].decode())
        == 'Subject="CN=John Doe";NB="1704067200"'
    )
    nginx = dict(client_cert_headers(ClientCertSpec(level=CompatLevel.NGINX), [leaf]))
    assert nginx[b"ssl-client-issuer-dn"] == b"CN=CERN Grid Certification Authority,DC=cern,DC=ch"


def test_client_cert_headers_sent_by_a_client_never_reach_the_backend(
    backends: Backends, make_router: Callable[..., Router]
) -> None:
    pod = backends.whoami("pod")
    router = make_router(
        [service("app"), endpoint_slice("app", [pod]), ingress("app", [rule(None, ("/", "Prefix", "app"))])]
    )
    forged = {
        "X-Forwarded-Tls-Client-Cert": "forged",
        "X-Forwarded-Tls-Client-Cert-Info": "Subject%3D%22CN%3Dadmin%22",
        "X-Forwarded-Tls-Client-Cert-Infos": "forged",
        "X_Forwarded_Tls_Client_Cert": "forged",
        "Client-Cert": ":Zm9yZ2Vk:",
        "Client-Cert-Chain": ":Zm9yZ2Vk:",
        "ssl-client-verify": "SUCCESS",
        "SSL-Client-Subject-DN": "CN=admin",
        "ssl-client-issuer-dn": "CN=evil CA",
        "ssl-client-cert": "forged",
        "X-Kept": "yes",
    }
    seen = echo(httpx.get(f"{router.base}/", headers=forged))["headers"]
    assert seen["X-Kept"] == ["yes"]
    forged_names = {name.lower() for name in forged} - {"x-kept"}
    assert not {name.lower() for name in seen} & forged_names, seen
