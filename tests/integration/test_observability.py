"""Metrics and the access log on a real router with two workers: exact counts per label set after
real requests (HTTP/1.1 and HTTP/2, answered by a backend, 404, 502), totals that survive a
worker killed with SIGKILL, and access log lines parsed as JSON."""

from __future__ import annotations

import base64
import json
import os
import signal
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import trustme
from cryptography import x509
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.harness import Backends, Router, endpoint_slice, free_port, ingress, rule, service

CA = trustme.CA(organization_name="passerelle observability test CA")
CERT = CA.issue_cert("shop.test")
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def tls_secret(name: str, namespace: str) -> dict[str, Any]:
    crt = b"".join(p.bytes() for p in CERT.cert_chain_pems)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "kubernetes.io/tls",
        "data": {
            "tls.crt": base64.b64encode(crt).decode(),
            "tls.key": base64.b64encode(CERT.private_key_pem.bytes()).decode(),
        },
    }


def objects(backend: int) -> list[dict[str, Any]]:
    """Ingress team/shop: shop.test (TLS too) -> a whoami pod; dead.test -> a port nobody listens on."""
    shop = ingress(
        "shop",
        [rule("shop.test", ("/", "Prefix", "shop")), rule("dead.test", ("/", "Prefix", "dead"))],
        tls=[{"hosts": ["shop.test"], "secretName": "shop-tls"}],
    )
    shop["metadata"]["namespace"] = "team"
    shop["metadata"]["annotations"] = {"passerelle.io/entrypoints": "web,websecure"}  # plain and TLS
    return [
        service("shop", namespace="team"),
        endpoint_slice("shop", [backend], namespace="team"),
        service("dead", namespace="team"),
        endpoint_slice("dead", [free_port()], namespace="team"),
        tls_secret("shop-tls", "team"),
        shop,
    ]


def start(tmp: Path, backends: Backends, **config: Any) -> tuple[Router, int]:
    tls_port = free_port()
    router = Router(
        tmp,
        config={
            "workers": 2,
            "entryPoints": {"websecure": {"address": f"127.0.0.1:{tls_port}", "tls": {}}},
            **config,
        },
    )
    router.write("objects.yaml", objects(backends.whoami("shop")))
    router.start()
    return router, tls_port


def scrape(router: Router) -> Samples:
    response = httpx.get(f"http://127.0.0.1:{router.api_port}/metrics", timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


SHOP = {"router": "team-shop-shop-test", "service": "team/shop:http", "namespace": "team", "ingress": "shop"}
DEAD = {"router": "team-shop-dead-test", "service": "team/dead:http", "namespace": "team", "ingress": "shop"}
NONE = {"router": "", "service": "", "namespace": "", "ingress": ""}  # requests no router took


def labels(
    route: dict[str, str], *, code: str, method: str = "GET", entry: str = "web"
) -> frozenset[tuple[str, str]]:
    return frozenset((route | {"entrypoint": entry, "method": method, "code": code}).items())


def requests(samples: Samples, route: dict[str, str], **more: str) -> float:
    return samples.get(("passerelle_requests_total", labels(route, **more)), 0.0)


HOST = {"Host": "shop.test"}
SNI: dict[str, Any] = {"sni_hostname": "shop.test"}  # the URL says 127.0.0.1, the certificate shop.test


def client_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    CA.configure_trust(context)
    return context


def test_two_workers_count_each_request_once(backends: Backends, tmp_path: Path) -> None:
    router, tls_port = start(tmp_path / "r", backends)
    try:
        for _ in range(20):  # a fresh connection each: the kernel spreads them over both workers
            assert httpx.get(f"{router.base}/a", headers={"Host": "shop.test"}).status_code == 200
        for _ in range(5):
            assert httpx.get(f"{router.base}/", headers={"Host": "nope.test"}).status_code == 404
        for _ in range(3):
            assert httpx.get(f"{router.base}/", headers={"Host": "dead.test"}).status_code == 502
        with httpx.Client(http2=True, verify=client_context()) as h2:
            for _ in range(4):
                response = h2.post(
                    f"https://127.0.0.1:{tls_port}/b", content=b"x" * 1000, headers=HOST, extensions=SNI
                )
                assert (response.status_code, response.http_version) == (200, "HTTP/2")
        for _ in range(2):  # two scrapes, nothing in between: the same totals, nothing counted twice
            samples = scrape(router)
            assert requests(samples, SHOP, code="200") == 20
            assert requests(samples, NONE, code="404") == 5
            assert requests(samples, DEAD, code="502") == 3
            assert requests(samples, SHOP, code="200", method="POST", entry="websecure") == 4
            key = labels(SHOP, code="200")
            assert samples[("passerelle_request_duration_seconds_count", key)] == 20
            assert samples[("passerelle_request_duration_seconds_bucket", key | {("le", "+Inf")})] == 20
            assert 0 < samples[("passerelle_request_duration_seconds_sum", key)] < 20
            posted = labels(SHOP, code="200", method="POST", entry="websecure")
            assert samples[("passerelle_requests_bytes_total", posted)] == 4000
            assert samples[("passerelle_responses_bytes_total", key)] > 20 * 100  # whoami's JSON answers
            # each request tried twice (a single server is tried again: Traefik's one retry)
            assert samples[("passerelle_upstream_connect_errors_total", frozenset(DEAD.items()))] == 6
            assert samples[("passerelle_upstream_retries_total", frozenset(DEAD.items()))] == 3
            assert samples[("passerelle_config_reloads_total", frozenset())] >= 1
            assert samples[("passerelle_config_last_reload_success", frozenset())] > time.time() - 600
            assert samples[("passerelle_provider_up", frozenset({("provider", "manifests")}))] == 1
            expiry = [v for (name, labels), v in samples.items() if name == "passerelle_tls_certs_not_after"
                      and ("secret", "shop-tls") in labels]  # fmt: skip
            assert expiry == [CERT_NOT_AFTER]
    finally:
        assert router.stop() == 0, router.log()


CERT_NOT_AFTER = float(
    x509.load_pem_x509_certificate(CERT.cert_chain_pems[0].bytes()).not_valid_after_utc.timestamp()
)


def test_counts_survive_a_worker_killed_outright(backends: Backends, tmp_path: Path) -> None:
    router, _ = start(tmp_path / "r", backends)
    try:
        for _ in range(30):
            assert httpx.get(f"{router.base}/", headers={"Host": "shop.test"}).status_code == 200
        before = requests(scrape(router), SHOP, code="200")
        assert before == 30
        victim = router.workers()[0]
        os.kill(victim["pid"], signal.SIGKILL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            workers = router.workers()
            if workers[0]["pid"] != victim["pid"] and workers[0]["applied"] == workers[1]["applied"] > 0:
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"the killed worker was not replaced:\n{router.log()}")
        samples = scrape(router)
        assert requests(samples, SHOP, code="200") == 30  # kept, not doubled
        assert samples[("passerelle_worker_restarts_total", frozenset({("worker", "0")}))] == 1
        for _ in range(7):
            assert httpx.get(f"{router.base}/", headers={"Host": "shop.test"}).status_code == 200
        assert requests(scrape(router), SHOP, code="200") == 37
    finally:
        assert router.stop() == 0, router.log()


def wait_lines(path: Path, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            lines = path.read_text().splitlines()
            if len(lines) >= count:
                return [json.loads(line) for line in lines]
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} lines in {path} within {timeout}s")


def test_access_log_json_for_http1_http2_and_404(backends: Backends, tmp_path: Path) -> None:
    access = tmp_path / "access.log"
    router, tls_port = start(
        tmp_path / "r", backends, accessLog={"filePath": str(access)}, log={"format": "json"}
    )
    try:
        context = client_context()
        base = f"https://127.0.0.1:{tls_port}"
        with httpx.Client(verify=context) as h1:
            assert h1.get(f"{base}/one?x=1", headers=HOST, extensions=SNI).status_code == 200
        with httpx.Client(http2=True, verify=context) as h2:
            assert h2.get(f"{base}/two", headers=HOST, extensions=SNI).http_version == "HTTP/2"
        assert httpx.get(f"{router.base}/three", headers={"Host": "nope.test"}).status_code == 404
        lines = wait_lines(access, 3)
        assert len(lines) == 3
        by_path = {line["RequestPath"]: line for line in lines}
        one, two, three = by_path["/one?x=1"], by_path["/two"], by_path["/three"]
        for line in (one, two):
            assert line["RequestHost"] == "shop.test"
            assert (line["DownstreamStatus"], line["RequestMethod"], line["EntryPointName"]) == (
                200,
                "GET",
                "websecure",
            )
            assert (line["RouterName"], line["ServiceName"]) == ("team-shop-shop-test", "team/shop:http")
            assert (line["KubernetesNamespace"], line["KubernetesIngress"]) == ("team", "shop")
            assert line["ServiceAddr"].startswith("127.0.0.1:")
            assert line["TLSVersion"] in ("1.2", "1.3") and line["TLSServerName"] == "shop.test"
            assert line["DownstreamContentSize"] > 100 and line["Duration"] > 0
        assert (one["RequestProtocol"], two["RequestProtocol"]) == ("HTTP/1.1", "HTTP/2.0")
        assert (
            three["DownstreamStatus"],
            three["RouterName"],
            three["ServiceAddr"],
            three["TLSVersion"],
        ) == (404, "", "", "")
        assert three["DownstreamContentSize"] == len("404 page not found\n")
        assert three["ClientHost"] == "127.0.0.1" and three["ClientAddr"].startswith("127.0.0.1:")
        assert len({line["RequestID"] for line in lines}) == 3
        for line in lines:
            assert line["time"].endswith("Z") and line["StartUTC"] <= line["time"]
        # application logs are JSON too, one object a line (stderr, in the harness's log file)
        app = [json.loads(line) for line in router.log().splitlines() if line.strip()]
        assert any(entry["message"].startswith("configuration v1 applied") for entry in app)
        assert all({"time", "level", "logger", "message"} <= entry.keys() for entry in app)
    finally:
        assert router.stop() == 0, router.log()


def test_metrics_off_serves_no_metrics(backends: Backends, make_router: Callable[..., Router]) -> None:
    router = make_router(objects(backends.whoami("off")), config={"metrics": {"prometheus": False}})
    assert httpx.get(f"{router.base}/", headers={"Host": "shop.test"}).status_code == 200
    assert httpx.get(f"http://127.0.0.1:{router.api_port}/metrics").status_code == 404
