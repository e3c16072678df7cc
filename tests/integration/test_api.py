"""The API of a running router: every list, explain against what real requests get, the server's manners."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest

from tests.integration.harness import Backends, Router, endpoint_slice, free_port, ingress, raw, rule, service
from tests.integration.scene import Scene, fetch, start


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory, backends: Backends) -> Iterator[Scene]:
    started: list[Router] = []

    def make(*, config: dict[str, Any]) -> Router:
        router = Router(tmp_path_factory.mktemp("api") / "router", config=config)
        started.append(router)
        return router.start()

    yield start(tmp_path_factory.mktemp("api-certs"), backends, make)
    for router in started:
        assert router.stop() == 0, router.log()


# (scheme, host, target, method, Host header or None, SNI override or "" for the URL's host)
QUESTIONS = [
    ("http", "shop.test", "/cart/x?y=1", "GET", None),
    ("http", "shop.test", "/cartx", "GET", None),
    ("http", "shop.test", "/exact", "GET", None),
    ("http", "shop.test", "/exact/", "HEAD", None),
    ("https", "secure.test", "/", "GET", None),
    ("http", "secure.test", "/", "GET", None),
    ("https", "guarded.test", "/g", "GET", None),
    ("https", "secure.test", "/", "GET", "guarded.test"),
    ("http", "redirect.test", "/a?b=1", "GET", None),
    ("http", "redirect.test", "/a", "POST", None),
    ("https", "redirect.test", "/a", "GET", None),
    ("http", "empty.test", "/", "GET", None),
    ("https", "nowhere.test", "/", "GET", None),
    ("https", "127.0.0.1", "/", "GET", None),
]


def url_of(scene: Scene, scheme: str, host: str, target: str) -> str:
    port = scene.tls_port if scheme == "https" else scene.web
    return f"{scheme}://{host}:{port}{target}"


def explain(scene: Scene, url: str, method: str = "GET", host: str | None = None) -> dict[str, Any]:
    query = f"url={quote(url, safe='')}&method={method}"
    if host is not None:
        query += f"&header={quote(f'Host: {host}:{scene.tls_port}')}"
    response = httpx.get(f"http://127.0.0.1:{scene.router.api_port}/api/explain?{query}")
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.mark.parametrize(
    "question", QUESTIONS, ids=[f"{q[3]} {q[0]}://{q[1]}{q[2]} {q[4] or ''}" for q in QUESTIONS]
)
def test_explain_agrees_with_what_requests_get(
    scene: Scene, question: tuple[str, str, str, str, str | None]
) -> None:
    scheme, host, target, method, host_header = question
    url = url_of(scene, scheme, host, target)
    answer = explain(scene, url, method, host_header)
    port = urlsplit(url).port
    assert port is not None
    response = fetch(
        port,
        host=f"{host_header or host}:{port}",
        target=target,
        method=method,
        sni=None if host[0].isdigit() else host,
        tls=scheme == "https",
    )
    result = answer["result"]
    expected_status = {"notFound": 404, "misdirected": 421, "unavailable": 503}.get(result["action"])
    if result["action"] == "proxy":
        assert response.status == 200, (answer, response)
        if method != "HEAD":
            pod = json.loads(response.body)["pod"]
            ports = {int(s.rpartition(":")[2]) for s in answer["service"]["servers"]}
            assert {scene.pods[p] for p in ports} == {pod}
    elif result["action"] == "redirect":
        assert (response.status, response.headers["location"]) == (result["status"], result["location"])
    else:
        assert response.status == expected_status == result["status"], (answer, response)
    if scheme == "https":
        assert response.certificate == answer["tls"]["certificate"]["fingerprint"]
    else:
        assert answer["tls"] is None


def test_every_list_answers_in_its_shape(scene: Scene) -> None:
    api = scene.router.api
    overview = api("/api/overview")
    assert overview["http"]["routers"]["total"] == 8 and overview["entryPoints"] == ["web", "websecure"]
    assert overview["features"] == {"dashboard": True}
    routers = {r["name"]: r for r in api("/api/http/routers")}
    cart = routers["default-shop-shop-test-cart"]
    assert cart["file"] == "shop.yaml:1" and cart["service"] == "default/a:http"
    services = {s["name"]: s for s in api("/api/http/services")}
    assert services["default/empty:http"]["status"] == "disabled"
    assert list(services["default/a:http"]["serverStatus"].values()) == ["UP"]
    [middleware] = api("/api/http/middlewares")
    assert middleware["redirectScheme"]["scheme"] == "https"
    certificates = api("/api/tls/certificates")
    assert {tuple(c["names"]) for c in certificates} == {
        ("secure.test", "guarded.test"),
        ("default.invalid",),
    }
    problems = api("/api/problems")
    assert any(p["object"] == "Ingress default/empty" and p["file"] == "empty.yaml:1" for p in problems)
    assert [e["name"] for e in api("/api/entrypoints")] == ["web", "websecure"]
    assert api("/api/version")["version"].startswith("0.")
    one = httpx.get(
        f"http://127.0.0.1:{scene.router.api_port}/api/http/services/{quote('default/a:http', safe='')}"
    )
    assert one.json()["name"] == "default/a:http"
    paged = httpx.get(f"http://127.0.0.1:{scene.router.api_port}/api/http/routers?per_page=3&page=2")
    assert len(paged.json()) == 3 and paged.headers["x-next-page"] == "3"


def test_no_answer_holds_a_private_key(scene: Scene) -> None:
    for path in ["/api/rawdata", "/api/tls/certificates", "/api/http/routers", "/api/overview",
                 f"/api/explain?url=https://secure.test:{scene.tls_port}/"]:  # fmt: skip
        text = httpx.get(f"http://127.0.0.1:{scene.router.api_port}{path}").text
        assert "PRIVATE KEY" not in text and "keyPem" not in text, path


def test_explain_refuses_bad_questions(scene: Scene) -> None:
    base = f"http://127.0.0.1:{scene.router.api_port}/api/explain"
    assert httpx.get(base).status_code == 400
    bad = httpx.get(base, params={"url": "ftp://x/"})
    assert bad.status_code == 400 and "http:// or https://" in bad.json()["message"]
    assert httpx.get(base, params={"url": "http://x/", "header": "nocolon"}).status_code == 400
    assert httpx.get(base, params={"url": "http://x/", "entrypoint": "nope"}).status_code == 400


def test_the_server_keeps_alive_pipelines_and_refuses_politely(scene: Scene) -> None:
    port = scene.router.api_port
    ping = b"GET /ping HTTP/1.1\r\nHost: localhost\r\n"
    three = raw(port, ping + b"\r\n" + ping + b"\r\n" + ping + b"Connection: close\r\n\r\n")
    assert three.count(b"HTTP/1.1 200 OK") == 3
    assert httpx.post(f"http://127.0.0.1:{port}/api/overview").status_code == 405
    assert httpx.head(f"http://127.0.0.1:{port}/api/overview").status_code == 200
    assert b"HTTP/1.1 400" in raw(port, b"NOT HTTP\r\n\r\n")
    rebinding = httpx.get(f"http://127.0.0.1:{port}/api/overview", headers={"Host": "attacker.example"})
    assert rebinding.status_code == 421
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:  # one connection, many requests
        assert all(client.get("/api/problems").status_code == 200 for _ in range(5))


def test_the_offline_cli_gives_the_api_answer(scene: Scene) -> None:
    for scheme, host, target, method, header in QUESTIONS[4:9]:
        url = url_of(scene, scheme, host, target)
        args = ["explain", url, "-c", str(scene.router.config_path), "--json", "-X", method]
        if header is not None:
            args += ["-H", f"Host: {header}:{scene.tls_port}"]
        result = subprocess.run(
            [sys.executable, "-m", "passerelle", *args], capture_output=True, text=True, timeout=30
        )
        offline = json.loads(result.stdout)
        online = explain(scene, url, method, header)
        online.pop("version")
        assert offline == online
        assert result.returncode == (0 if online["result"]["action"] in ("proxy", "redirect") else 1)


def test_an_api_beyond_loopback_is_a_warning_and_answers_any_host(make_router: Callable[..., Router]) -> None:
    router = make_router(config={"api": {"address": f":{free_port()}"}})
    assert "beyond loopback" in router.log()
    answer = httpx.get(f"http://127.0.0.1:{router.api_port}/api/overview", headers={"Host": "router.example"})
    assert answer.status_code == 200


def test_the_default_api_is_loopback_only_and_says_nothing(make_router: Callable[..., Router]) -> None:
    router = make_router()
    assert "beyond loopback" not in router.log()
    assert f"dashboard at http://127.0.0.1:{router.api_port}/dashboard/" in router.log()


def test_explain_agrees_on_an_entry_point_redirect(
    backends: Backends, make_router: Callable[..., Router]
) -> None:
    tls_port = free_port()
    router = make_router(
        [
            service("a"),
            endpoint_slice("a", [backends.whoami("pod-a")]),
            ingress("x", [rule("x.test", ("/", "Prefix", "a"))]),
        ],
        config={
            "entryPoints": {
                "web": {"http": {"redirections": {"entryPoint": {"to": "websecure", "permanent": False}}}},
                "websecure": {"address": f"127.0.0.1:{tls_port}", "tls": {}},
            }
        },
    )
    for method in ("GET", "POST"):
        url = f"http://x.test:{router.port}/p?q=1"
        answer = httpx.get(
            f"http://127.0.0.1:{router.api_port}/api/explain", params={"url": url, "method": method}
        ).json()
        real = fetch(router.port, host=f"x.test:{router.port}", target="/p?q=1", method=method)
        assert answer["router"]["name"] == "web-redirect@internal"
        assert (real.status, real.headers["location"]) == (
            answer["result"]["status"],
            answer["result"]["location"],
        )
        assert answer["result"]["location"] == f"https://x.test:{tls_port}/p?q=1"
        assert real.status == (302 if method == "GET" else 307)
