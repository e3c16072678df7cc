"""Client-certificate headers end to end: a TLS client presents a certificate to passerelle, and the
echo backend shows what each route was sent, in each dialect and compatibility level.

The client certificate is the unit tests' fixture leaf (several O/OU, DC, serialNumber, every SAN
type, non-ASCII text), signed by the fixture root, which the entry point trusts. What the header
values must be, byte for byte, is the golden unit tests' business (tests/unit/tls); here the
values are checked against the certificate the backend's client really sent.
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, unquote_plus

import httpx
import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.integration.harness import Backends, Router, endpoint_slice, free_port, ingress, rule, service
from tests.integration.test_tls import tls_secret

FIXTURES = Path(__file__).resolve().parent.parent / "unit" / "tls" / "fixtures"
SERVER_CA = trustme.CA(organization_name="passerelle test server CA")
LEAF_DER = x509.load_pem_x509_certificate((FIXTURES / "leaf.pem").read_bytes()).public_bytes(Encoding.DER)


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture leaf and the intermediate that signed it: the entry point trusts only the root."""
    path = tmp_path_factory.mktemp("client") / "chain.pem"
    path.write_bytes((FIXTURES / "leaf.pem").read_bytes() + (FIXTURES / "intermediate.pem").read_bytes())
    return path


def get(
    port: int, host: str, chain: Path | None, *, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """GET / over TLS with SNI `host`, presenting `chain` if given; (status, the echo's JSON)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    if chain is not None:
        context.load_cert_chain(chain, FIXTURES / "leaf.key")
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=host) as conn:
            conn.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n".encode())
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body) if status == 200 else body


def received(echoed: Any) -> dict[str, str]:
    """The backend's view of the request headers, lower-cased names, one value each."""
    return {name.lower(): values[0] for name, values in echoed["headers"].items()}


def annotated(name: str, annotations: dict[str, str]) -> dict[str, Any]:
    obj = ingress(name, [rule(f"{name}.test", ("/", "Prefix", "app"))], tls=[{"secretName": "server"}])
    obj["metadata"]["annotations"] = annotations
    return obj


MIDDLEWARE = {
    "apiVersion": "traefik.io/v1alpha1",
    "kind": "Middleware",
    "metadata": {"name": "certinfo"},
    "spec": {"passTLSClientCert": {"pem": True, "info": {"notAfter": True, "subject": {"commonName": True}}}},
}


def routes(backends: Backends, make_router: Callable[..., Router], client_auth: str) -> tuple[Router, int]:
    pod = backends.whoami("app")
    hosts = ["v17", "v3", "nginx", "rfc", "plain", "bad"]
    objects = [
        service("app"),
        endpoint_slice("app", [pod]),
        tls_secret("server", SERVER_CA.issue_cert(*(f"{h}.test" for h in hosts))),
        MIDDLEWARE,
        annotated("v17", {"ingress.kubernetes.io/pass-client-tls-cert": "pem: true\ninfos:\n  subject:\n    commonname: true\n"}),
        annotated("v3", {"traefik.ingress.kubernetes.io/router.middlewares": "default-certinfo@kubernetescrd"}),
        annotated("nginx", {"passerelle.io/client-cert-headers": "nginx", "passerelle.io/client-cert-fields": "pem"}),
        annotated("rfc", {"passerelle.io/client-cert-headers": "rfc9440"}),
        annotated("plain", {}),
        annotated("bad", {"ingress.kubernetes.io/pass-client-tls-cert": "pem: maybe"}),
    ]  # fmt: skip
    port = free_port()
    config = {
        "entryPoints": {"websecure": {"address": f"127.0.0.1:{port}", "tls": {}}},
        "tls": {
            "options": {
                "default": {
                    "clientAuth": {"caFiles": [str(FIXTURES / "root.pem")], "clientAuthType": client_auth}
                }
            }
        },
    }
    return make_router(objects, config=config), port


def test_each_dialect_and_level_gets_the_verified_certificate(
    backends: Backends, make_router: Callable[..., Router], chain: Path
) -> None:
    router, port = routes(backends, make_router, "VerifyClientCertIfGiven")

    status, echoed = get(port, "v17.test", chain)
    v17 = received(echoed)
    assert status == 200
    # 1.7: the PEM's base64 body, query-escaped, in -Cert (1.7's sanitize); the subject in -Infos.
    assert unquote(v17["x-forwarded-tls-client-cert"]) == base64.b64encode(LEAF_DER).decode()
    assert unquote_plus(v17["x-forwarded-tls-client-cert-infos"]).startswith('Subject="CN=')

    v3 = received(get(port, "v3.test", chain)[1])
    assert v3["x-forwarded-tls-client-cert"] == base64.b64encode(LEAF_DER).decode()
    info = unquote_plus(v3["x-forwarded-tls-client-cert-info"])
    assert info.startswith('Subject="CN=') and ';NA="' in info

    nginx = received(get(port, "nginx.test", chain)[1])
    assert nginx["ssl-client-verify"] == "SUCCESS"
    assert unquote(nginx["ssl-client-cert"]).startswith("-----BEGIN CERTIFICATE-----")

    rfc = received(get(port, "rfc.test", chain)[1])
    assert rfc["client-cert"] == ":" + base64.b64encode(LEAF_DER).decode() + ":"

    forged = {
        "X-Forwarded-Tls-Client-Cert": "forged",
        "X_Forwarded_Tls_Client_Cert_Info": "forged",
        "ssl-client-verify": "SUCCESS",
    }
    plain = received(get(port, "plain.test", chain, headers=forged)[1])
    assert not {k for k in plain if "client" in k}, plain  # no spec: nothing, and forgeries dropped
    v3_forged = received(get(port, "v3.test", chain, headers=forged)[1])
    assert v3_forged["x-forwarded-tls-client-cert"] == v3["x-forwarded-tls-client-cert"]

    assert get(port, "bad.test", chain)[0] == 404  # a broken annotation: not served without its headers
    router.wait_problem("Ingress default/bad", "not served")


def test_no_certificate_and_an_unverified_one_are_never_described(
    backends: Backends, make_router: Callable[..., Router], chain: Path
) -> None:
    router, port = routes(backends, make_router, "VerifyClientCertIfGiven")
    assert "x-forwarded-tls-client-cert" not in received(get(port, "v3.test", None)[1])
    assert received(get(port, "nginx.test", None)[1])["ssl-client-verify"] == "NONE"
    router.stop()
    # RequestClientCert takes any certificate without checking it: a backend must not be told of it.
    _, port = routes(backends, make_router, "RequestClientCert")
    status, echoed = get(port, "v3.test", chain)
    assert status == 200 and "x-forwarded-tls-client-cert" not in received(echoed)
    assert received(get(port, "nginx.test", chain)[1])["ssl-client-verify"] == "NONE"


def test_http2_streams_get_the_same_headers(
    backends: Backends, make_router: Callable[..., Router], chain: Path
) -> None:
    _, port = routes(backends, make_router, "VerifyClientCertIfGiven")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    context.load_cert_chain(chain, FIXTURES / "leaf.key")
    with httpx.Client(http2=True, verify=context) as client:
        response = client.get(f"https://127.0.0.1:{port}/", headers={"Host": "v3.test"})
        assert response.http_version == "HTTP/2"
        seen = received(response.json())
        assert seen["x-forwarded-tls-client-cert"] == base64.b64encode(LEAF_DER).decode()
        forged = client.get(
            f"https://127.0.0.1:{port}/", headers={"Host": "plain.test", "ssl-client-verify": "SUCCESS"}
        )
        assert "ssl-client-verify" not in received(forged.json())
