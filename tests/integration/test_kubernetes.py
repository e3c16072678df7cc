"""The live Kubernetes provider end to end: the test API server, a passerelle process, real requests."""

from __future__ import annotations

import base64
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import trustme

from tests.integration.harness import Backends, Router, echo, ingress, rule, service
from tests.kubeapi import KubeAPI

NET = "networking.k8s.io/v1"


def slice_for(service_name: str, port: int, *, name: str = "") -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name or f"{service_name}-1",
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": service_name},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": port}],
        "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}],
    }


def with_ns(obj: dict[str, Any]) -> dict[str, Any]:
    obj["metadata"].setdefault("namespace", "default")
    return obj


def kube_router(make_router: Callable[..., Router], api: KubeAPI, tmp_path: Path, **settings: Any) -> Router:
    kubeconfig = api.kubeconfig(tmp_path / "kubeconfig")
    return make_router(
        config={"providers": {"kubernetes": {"kubeconfig": str(kubeconfig), "throttle": "0.1s", **settings}}}
    )


def wait_status(
    client: httpx.Client, path: str, host: str, status: int, *, timeout: float = 10
) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(path, headers={"Host": host})
        if response.status_code == status or time.monotonic() > deadline:
            assert response.status_code == status, f"{host}{path}: {response.status_code}, wanted {status}"
            return response
        time.sleep(0.05)


def wait_for(test: Callable[[], bool], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not test():
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        time.sleep(0.05)


def test_changes_to_each_watched_kind_reach_the_router(
    backends: Backends, kubeapi: Callable[..., KubeAPI], make_router: Callable[..., Router], tmp_path: Path
) -> None:
    api = kubeapi(crds={"traefik.io"})
    a, b = backends.whoami("pod-a"), backends.whoami("pod-b")
    api.create(with_ns(service("app")))
    api.create(slice_for("app", a))
    api.create(with_ns(ingress("app", [rule("app.test", ("/", "Prefix", "app"))])))
    router = kube_router(make_router, api, tmp_path)
    with httpx.Client(base_url=router.base, timeout=5) as client:
        assert echo(wait_status(client, "/", "app.test", 200))["pod"] == "pod-a"
        assert router.api("/api/overview")["providers"] == ["kubernetes"]
        # EndpointSlice: the endpoints move to another pod
        api.replace(
            {
                **api.get("discovery.k8s.io/v1", "EndpointSlice", "default", "app-1"),
                "ports": [{"name": "http", "port": b}],
            }
        )  # type: ignore[dict-item]
        wait_for(
            lambda: echo(client.get("/", headers={"Host": "app.test"}))["pod"] == "pod-b",
            "new endpoints served",
        )
        # Ingress: a new host, the old one gone
        api.patch(
            NET, "Ingress", "default", "app", {"spec": {"rules": [rule("new.test", ("/", "Prefix", "app"))]}}
        )
        wait_status(client, "/", "new.test", 200)
        wait_status(client, "/", "app.test", 404)
        # Service: without the port the Ingress names, the backend is unavailable
        api.patch("v1", "Service", "default", "app", {"spec": {"ports": [{"name": "other", "port": 81}]}})
        wait_status(client, "/", "new.test", 503)
        api.patch("v1", "Service", "default", "app", {"spec": {"ports": [{"name": "http", "port": 80}]}})
        wait_status(client, "/", "new.test", 200)
        # IngressClass: an Ingress of class `custom` is ours once an IngressClass says so
        api.create(
            with_ns(
                ingress("classy", [rule("classy.test", ("/", "Prefix", "app"))], ingressClassName="custom")
            )
        )
        assert client.get("/", headers={"Host": "classy.test"}).status_code == 404
        api.create(
            {
                "apiVersion": NET,
                "kind": "IngressClass",
                "metadata": {"name": "custom"},
                "spec": {"controller": "passerelle.io/ingress-controller"},
            }
        )
        wait_status(client, "/", "classy.test", 200)
        api.delete(NET, "IngressClass", "", "custom")
        wait_status(client, "/", "classy.test", 404)
        # Middleware (Traefik CRD): the router is refused while it is missing, redirects once it exists
        api.patch(
            NET,
            "Ingress",
            "default",
            "app",
            {
                "metadata": {
                    "annotations": {
                        "traefik.ingress.kubernetes.io/router.middlewares": "default-to-https@kubernetescrd"
                    }
                }
            },
        )
        wait_status(client, "/", "new.test", 404)
        api.create(
            {
                "apiVersion": "traefik.io/v1alpha1",
                "kind": "Middleware",
                "metadata": {"name": "to-https", "namespace": "default"},
                "spec": {"redirectScheme": {"scheme": "https", "permanent": True}},
            }
        )
        redirect = wait_status(client, "/x", "new.test", 301)
        assert redirect.headers["location"] == "https://new.test/x"
        # Secret: a TLS Secret an Ingress names becomes a certificate, and goes with it
        cert = trustme.CA().issue_cert("new.test")
        pem = base64.b64encode(cert.cert_chain_pems[0].bytes()).decode()
        key = base64.b64encode(cert.private_key_pem.bytes()).decode()
        api.create(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "new-tls", "namespace": "default"},
                "type": "kubernetes.io/tls",
                "data": {"tls.crt": pem, "tls.key": key},
            }
        )
        api.patch(
            NET,
            "Ingress",
            "default",
            "app",
            {"spec": {"tls": [{"hosts": ["new.test"], "secretName": "new-tls"}]}},
        )

        def certificate_names() -> list[list[str]]:
            return [
                c["names"]
                for c in router.api("/api/rawdata").get("tls", {}).get("certificates", [])
                if not c["default"]
            ]

        wait_for(lambda: ["new.test"] in certificate_names(), "the Secret's certificate loaded")
        api.delete("v1", "Secret", "default", "new-tls")
        wait_for(lambda: ["new.test"] not in certificate_names(), "the certificate gone with its Secret")
        # Deleting the Ingress takes its routes away
        api.delete(NET, "Ingress", "default", "app")
        wait_status(client, "/", "new.test", 404)


def test_a_burst_of_500_endpointslice_updates_makes_a_handful_of_versions(
    backends: Backends, kubeapi: Callable[..., KubeAPI], make_router: Callable[..., Router], tmp_path: Path
) -> None:
    api = kubeapi()
    a, b = backends.whoami("burst-a"), backends.whoami("burst-b")
    api.create(with_ns(service("burst")))
    api.create(slice_for("burst", a))
    api.create(with_ns(ingress("burst", [rule("burst.test", ("/", "Prefix", "burst"))])))
    router = kube_router(make_router, api, tmp_path, throttle="0.5s")
    before = router.version()
    current = api.get("discovery.k8s.io/v1", "EndpointSlice", "default", "burst-1")
    assert current is not None
    for i in range(500):  # a rollout flapping the slice between two pods; the last write is pod b
        current = api.replace({**current, "ports": [{"name": "http", "port": b if i % 2 else a}]})
    with httpx.Client(base_url=router.base, timeout=5) as client:
        wait_for(
            lambda: echo(client.get("/", headers={"Host": "burst.test"}))["pod"] == "burst-b",
            "the last update served",
        )
    time.sleep(1.0)  # anything still throttled has landed
    versions = router.version() - before
    assert 1 <= versions <= 10, f"{versions} versions for 500 updates"


def test_api_server_down_keeps_serving_and_a_410_relist_catches_up(
    backends: Backends, kubeapi: Callable[..., KubeAPI], make_router: Callable[..., Router], tmp_path: Path
) -> None:
    api = kubeapi(tls=True)
    port = backends.whoami("steady")
    api.create(with_ns(service("steady")))
    api.create(slice_for("steady", port))
    api.create(with_ns(ingress("steady", [rule("steady.test", ("/", "Prefix", "steady"))])))
    api.create(with_ns(ingress("doomed", [rule("doomed.test", ("/", "Prefix", "steady"))])))
    router = kube_router(make_router, api, tmp_path)
    with httpx.Client(base_url=router.base, timeout=5) as client:
        wait_status(client, "/", "doomed.test", 200)
        api.stop()
        wait_for(
            lambda: "the last good configuration keeps serving" in router.log(),
            "a log line says the API is down",
        )
        assert client.get("/", headers={"Host": "steady.test"}).status_code == 200  # still served
        api.delete(NET, "Ingress", "default", "doomed")  # while no watch is open
        api.expire()  # and compacted: only a new list can show the deletion
        api.start()
        wait_status(client, "/", "doomed.test", 404)
        assert client.get("/", headers={"Host": "steady.test"}).status_code == 200
    assert "410 Gone" in router.log() and "answers again" in router.log()


def test_a_missing_kubeconfig_stops_startup_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "passerelle.yaml"
    config.write_text(f"providers:\n  kubernetes:\n    kubeconfig: {tmp_path / 'nope'}\n")
    result = subprocess.run(
        [sys.executable, "-m", "passerelle", "run", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert "nope" in result.stderr and "not found" in result.stderr and "Traceback" not in result.stderr


def test_a_rejected_token_is_one_clear_log_line_and_nothing_is_served(
    kubeapi: Callable[..., KubeAPI], tmp_path: Path
) -> None:
    api = kubeapi()
    kubeconfig = api.kubeconfig(tmp_path / "kubeconfig", token="expired")
    router = Router(tmp_path / "r", config={"providers": {"kubernetes": {"kubeconfig": str(kubeconfig)}}})
    with router.log_path.open("ab") as log:
        router.process = subprocess.Popen(
            [sys.executable, "-m", "passerelle", "run", "-c", str(router.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: "401 Unauthorized" in router.log(), "the 401 is logged", timeout=20)
        line = next(line for line in router.log().splitlines() if "401 Unauthorized" in line)
        assert (
            "check the token or client certificate of the kubeconfig" in line
            and "no configuration yet" in line
        )
        assert httpx.get(f"http://127.0.0.1:{router.api_port}/ping").status_code == 503
        assert router.log().count("401 Unauthorized") < 20  # transitions are logged, not every retry
    finally:
        assert router.stop() == 0
