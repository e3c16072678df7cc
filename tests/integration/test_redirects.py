"""Redirects and placement over real sockets: every dialect, end to end through a router process.

The TLS entry point does not terminate TLS on this branch yet: redirects to https are checked by
their Location header only, and placement between two plain entry points.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.integration.harness import (
    Backends,
    Router,
    echo,
    endpoint_slice,
    free_port,
    ingress,
    rule,
    service,
)


def _ingress(name: str, host: str, annotations: dict[str, str], **spec: Any) -> dict[str, Any]:
    obj = ingress(name, [rule(host, ("/", "Prefix", "app"))], **spec)
    obj["metadata"]["annotations"] = annotations
    return obj


@pytest.fixture
def app(backends: Backends) -> list[dict[str, Any]]:
    return [service("app"), endpoint_slice("app", [backends.whoami("app-1")])]


def test_redirects_in_every_dialect(make_router: Callable[..., Router], app: list[dict[str, Any]]) -> None:
    secure_port, redirector_port = free_port(), free_port()
    objects = app + [
        {
            "apiVersion": "traefik.io/v1alpha1",
            "kind": "Middleware",
            "metadata": {"name": "to-https", "namespace": "default"},
            "spec": {"redirectScheme": {"scheme": "https", "port": "8443"}},
        },
        _ingress("v17-ssl", "ssl.example.com", {"ingress.kubernetes.io/ssl-redirect": "true"}),
        _ingress(
            "v17-temporary",
            "temp.example.com",
            {
                "ingress.kubernetes.io/ssl-redirect": "true",
                "traefik.ingress.kubernetes.io/ssl-temporary-redirect": "true",
                "ingress.kubernetes.io/ssl-host": "secure.example.com:8443",
            },
        ),
        _ingress(
            "v17-entry-point",
            "ep.example.com",
            {
                "traefik.ingress.kubernetes.io/redirect-entry-point": "websecure",
                "traefik.ingress.kubernetes.io/redirect-permanent": "true",
            },
        ),
        _ingress(
            "v2-middleware",
            "mw.example.com",
            {"traefik.ingress.kubernetes.io/router.middlewares": "default-to-https@kubernetescrd"},
        ),
        _ingress(
            "v2-middleware-tls",  # the usual Traefik 2/3 setup: on every entry point, as in Traefik
            "mwtls.example.com",
            {"traefik.ingress.kubernetes.io/router.middlewares": "default-to-https@kubernetescrd"},
            tls=[{"hosts": ["mwtls.example.com"]}],
        ),
        _ingress("ours", "ours.example.com", {"passerelle.io/ssl-redirect": "true"}),
        _ingress("plain", "plain.example.com", {}),
    ]
    router = make_router(
        objects,
        config={
            "entryPoints": {
                "websecure": {"address": f"127.0.0.1:{secure_port}", "tls": {}},
                "redirector": {
                    "address": f"127.0.0.1:{redirector_port}",
                    "http": {"redirections": {"entryPoint": {"to": "websecure"}}},
                },
            }
        },
    )

    def ask(
        method: str, host: str, target: str = "/shop/cart?id=1&b=%20", port: int | None = None
    ) -> httpx.Response:
        url = f"http://127.0.0.1:{port or router.port}{target}"
        return httpx.request(method, url, headers={"Host": host}, follow_redirects=False, timeout=5)

    cases = [
        # (method, Host header, status, Location)
        ("GET", "ssl.example.com:8080", 301, "https://ssl.example.com/shop/cart?id=1&b=%20"),
        ("POST", "ssl.example.com", 308, "https://ssl.example.com/shop/cart?id=1&b=%20"),
        ("GET", "temp.example.com", 302, "https://secure.example.com:8443/shop/cart?id=1&b=%20"),
        ("PUT", "temp.example.com", 307, "https://secure.example.com:8443/shop/cart?id=1&b=%20"),
        ("GET", "ep.example.com", 301, f"https://ep.example.com:{secure_port}/shop/cart?id=1&b=%20"),
        ("GET", "mw.example.com:8080", 302, "https://mw.example.com:8443/shop/cart?id=1&b=%20"),
        ("DELETE", "mw.example.com", 307, "https://mw.example.com:8443/shop/cart?id=1&b=%20"),
        ("GET", "mwtls.example.com", 302, "https://mwtls.example.com:8443/shop/cart?id=1&b=%20"),
        ("GET", "ours.example.com", 301, "https://ours.example.com/shop/cart?id=1&b=%20"),
        ("GET", "[::1]:8080", 404, None),  # no Ingress for this host on web
    ]
    for method, host, status, location in cases:
        response = ask(method, host)
        assert (response.status_code, response.headers.get("location")) == (status, location), (method, host)
    # Absolute-form target naming another host: routed by Host, so redirected to that Host only.
    with socket.create_connection(("127.0.0.1", router.port), timeout=5) as raw:
        raw.sendall(
            b"GET http://evil.example/x?q HTTP/1.1\r\nHost: ssl.example.com\r\nConnection: close\r\n\r\n"
        )
        answer = b""
        while chunk := raw.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 301 ") and b"\r\nLocation: https://ssl.example.com/x?q\r\n" in answer
    head = ask("HEAD", "ssl.example.com")
    assert head.status_code == 308 and head.content == b""  # HEAD is not GET: 308, as Traefik
    assert echo(ask("GET", "plain.example.com"))["host"] == "plain.example.com"

    # Entry point redirections: every request, whatever its host, to the target entry point's
    # port; ACME HTTP-01 challenges are routed instead when a route matches (none here, so they
    # get the redirect like any other request, not a 404).
    caught = ask("GET", "[2001:db8::1]:80", port=redirector_port)
    assert (caught.status_code, caught.headers["location"]) == (
        301,
        f"https://[2001:db8::1]:{secure_port}/shop/cart?id=1&b=%20",
    )
    assert ask("POST", "plain.example.com", "/", port=redirector_port).status_code == 308
    challenge = ask("GET", "anything.example", "/.well-known/acme-challenge/token", port=redirector_port)
    assert (challenge.status_code, challenge.headers["location"]) == (
        301,
        f"https://anything.example:{secure_port}/.well-known/acme-challenge/token",
    )
    # A redirect is answered without reading the request body (then the connection closes);
    # a client simply goes on with the next request.
    with httpx.Client(follow_redirects=False, timeout=5) as client:
        url = f"http://127.0.0.1:{router.port}/upload"
        for _ in range(2):
            response = client.post(url, headers={"Host": "ssl.example.com"}, content=b"x" * 100_000)
            assert response.status_code == 308


def test_placement_between_two_plain_entry_points(
    make_router: Callable[..., Router], app: list[dict[str, Any]]
) -> None:
    admin = free_port()
    objects = app + [
        _ingress("v2", "v2.example.com", {"traefik.ingress.kubernetes.io/router.entrypoints": "admin"}),
        _ingress("v17", "v17.example.com", {"ingress.kubernetes.io/frontend-entry-points": "web"}),
        _ingress("ours", "ours.example.com", {"passerelle.io/entrypoints": "admin"}),
        _ingress("default", "default.example.com", {}),
        _ingress(
            "missing",
            "missing.example.com",
            {"traefik.ingress.kubernetes.io/router.middlewares": "default-nope@kubernetescrd"},
        ),
        _ingress("report", "report.example.com", {"ingress.kubernetes.io/app-root": "/index.html"}),
    ]
    router = make_router(objects, config={"entryPoints": {"admin": {"address": f"127.0.0.1:{admin}"}}})

    def status(port: int, host: str) -> int:
        return httpx.get(f"http://127.0.0.1:{port}/", headers={"Host": host}, timeout=5).status_code

    expected = {
        "v2.example.com": (404, 200),
        "v17.example.com": (200, 404),
        "ours.example.com": (404, 200),
        "default.example.com": (200, 200),
        "missing.example.com": (404, 404),  # a missing middleware refuses the router, as Traefik
        "report.example.com": (200, 200),
    }
    got = {host: (status(router.port, host), status(admin, host)) for host in expected}
    assert got == expected
    router.wait_problem("Ingress default/missing", "middleware default-nope@kubernetescrd does not exist")
    router.wait_problem(
        "Ingress default/report", "ignored: ingress.kubernetes.io/app-root (not supported yet)"
    )
