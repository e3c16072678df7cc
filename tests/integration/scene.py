"""A running passerelle with TLS, real backends and a manifests directory, for the API tests.

Entry points `web` and `websecure` (TLS option `default`, and `modern` for guarded.test); the
default certificate comes from files, so an offline `passerelle explain` on the same config
chooses the very certificate the router serves. Ingresses (whoami `a` and `b` behind them):
shop.test (plain: Prefix /cart -> a, Exact /exact -> b), secure.test (spec.tls -> a), guarded.test
(spec.tls, TLS option modern -> b), redirect.test (passerelle.io/ssl-redirect -> a), empty.test
(a Service without endpoints) and a default backend (-> b).
"""

from __future__ import annotations

import base64
import hashlib
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trustme

from tests.integration.harness import Backends, Router, endpoint_slice, free_port, ingress, rule, service

CA = trustme.CA()


def tls_secret(name: str, *hosts: str) -> dict[str, Any]:
    leaf = CA.issue_cert(*hosts)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {"name": name, "namespace": "default"},
        "data": {
            "tls.crt": base64.b64encode(leaf.cert_chain_pems[0].bytes()).decode(),
            "tls.key": base64.b64encode(leaf.private_key_pem.bytes()).decode(),
        },
    }


def with_tls(obj: dict[str, Any], secret: str, host: str, **annotations: str) -> dict[str, Any]:
    obj["spec"]["tls"] = [{"hosts": [host], "secretName": secret}]
    obj["metadata"]["annotations"] = annotations
    return obj


def manifests(a: int, b: int) -> dict[str, list[dict[str, Any]]]:
    """File name -> objects."""
    return {
        "services.yaml": [
            service("a"), endpoint_slice("a", [a]), service("b"), endpoint_slice("b", [b]), service("empty"),
            tls_secret("secure-tls", "secure.test", "guarded.test"),
        ],
        "shop.yaml": [ingress("shop", [rule("shop.test", ("/cart", "Prefix", "a"), ("/exact", "Exact", "b"))])],
        "secure.yaml": [
            with_tls(ingress("secure", [rule("secure.test", ("/", "Prefix", "a"))]), "secure-tls", "secure.test"),
            with_tls(ingress("guarded", [rule("guarded.test", ("/", "Prefix", "b"))]), "secure-tls", "guarded.test",
                     **{"passerelle.io/tls-options": "modern"}),
            with_tls(ingress("redirected", [rule("redirect.test", ("/", "Prefix", "a"))]), "secure-tls",
                     "redirect.test", **{"passerelle.io/ssl-redirect": "true"}),
        ],
        "empty.yaml": [ingress("empty", [rule("empty.test", ("/", "Prefix", "empty"))])],
        "fallback.yaml": [
            ingress("fallback", defaultBackend={"service": {"name": "b", "port": {"name": "http"}}}),
        ],
    }  # fmt: skip


@dataclass
class Scene:
    router: Router
    pods: dict[int, str]  # backend port -> pod name
    tls_port: int

    @property
    def web(self) -> int:
        return self.router.port


def start(workdir: Path, backends: Backends, make_router: Any) -> Scene:
    a, b = backends.whoami("pod-a"), backends.whoami("pod-b")
    workdir.mkdir(parents=True, exist_ok=True)
    default = CA.issue_cert("default.invalid")
    default.cert_chain_pems[0].write_to_path(str(workdir / "default.pem"))
    default.private_key_pem.write_to_path(str(workdir / "default.key"))
    tls_port = free_port()
    router: Router = make_router(
        config={
            "entryPoints": {"websecure": {"address": f"127.0.0.1:{tls_port}", "tls": {}}},
            "tls": {
                "options": {"modern": {"minVersion": "VersionTLS13"}},
                "defaultCertificate": {
                    "certFile": str(workdir / "default.pem"),
                    "keyFile": str(workdir / "default.key"),
                },
            },
            "workers": 2,
        }
    )
    version = router.version()
    for name, objects in manifests(a, b).items():
        router.write(name, objects)
    router.wait_version(version)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # every file in one version: all Ingresses and endpoints
        raw = router.api("/api/rawdata")
        if (
            len(raw["routers"]) == 8
            and any(s["servers"] for s in raw["services"])
            and len(raw["tls"]["certificates"]) == 1
        ):
            break
        time.sleep(0.05)
    else:
        raise AssertionError(f"the scene was not applied: {router.api('/api/rawdata')}")
    return Scene(router=router, pods={a: "pod-a", b: "pod-b"}, tls_port=tls_port)


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    certificate: str | None  # SHA-256 of the server's leaf, for TLS


def fetch(port: int, *, host: str, target: str, method: str = "GET", sni: str | None = None,
          tls: bool = False) -> Response:  # fmt: skip
    """One request on its own connection, with SNI and Host set independently (curl can't)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    certificate = None
    if tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        conn: socket.socket = context.wrap_socket(raw, server_hostname=sni)
        der = conn.getpeercert(binary_form=True)
        certificate = hashlib.sha256(der).hexdigest() if der else None
    else:
        conn = raw
    with conn:
        body = b"x" if method == "POST" else b""
        conn.sendall(
            f"{method} {target} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n\r\n".encode()
            + body
        )
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, payload = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return Response(status=int(lines[0].split()[1]), headers=headers, body=payload, certificate=certificate)
