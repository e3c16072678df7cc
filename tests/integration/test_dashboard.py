"""The dashboard end to end: a running router with real manifests, read by headless Chromium.

Screenshots go to test-output/dashboard/ (git-ignored); their paths are printed (pytest -s).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.browser import Chromium
from tests.integration.harness import Backends, Router, ingress, rule
from tests.integration.scene import Scene, start

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "test-output" / "dashboard"


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory, backends: Backends) -> Iterator[Scene]:
    started: list[Router] = []

    def make(*, config: dict[str, Any]) -> Router:
        router = Router(tmp_path_factory.mktemp("dashboard") / "router", config=config)
        started.append(router)
        return router.start()

    scene = start(tmp_path_factory.mktemp("dashboard-certs"), backends, make)
    # A path that is HTML: the dashboard must show it as text (user-written names are never markup).
    scene.router.write(
        "markup.yaml", [ingress("markup", [rule("markup.test", ("/<b>x</b>", "Prefix", "a"))])]
    )
    yield scene
    for router in started:
        assert router.stop() == 0, router.log()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Chromium]:
    chromium = Chromium(tmp_path / "profile")
    yield chromium
    chromium.close()


def texts(browser: Chromium, selector: str) -> list[str]:
    return list(
        browser.evaluate(f"[...document.querySelectorAll({json.dumps(selector)})].map(e => e.innerText)")
    )


def test_the_dashboard_shows_the_routers_problems_certificates_and_explains(
    scene: Scene, browser: Chromium
) -> None:
    base = f"http://127.0.0.1:{scene.router.api_port}"
    browser.navigate(f"{base}/dashboard/")
    browser.wait_for(
        "document.body.dataset.loaded === 'true' && document.querySelectorAll('tr.router').length >= 9"
    )

    routers = texts(browser, "tr.router")
    assert len(routers) == 9
    assert any("Host(`shop.test`) && PathPrefix(`/cart`)" in r and "default/a:http" in r for r in routers)
    assert any("Host(`guarded.test`)" in r and "TLS option modern" in r for r in routers)
    markup = next(r for r in routers if "markup.test" in r)
    assert "/<b>x</b>" in markup  # shown as the text it is
    assert browser.evaluate("document.querySelectorAll('#routers b, #problems b').length") == 0

    problems = texts(browser, "tr.problem")
    assert any(
        "Ingress default/empty" in p and "empty.yaml:1" in p and "no ready endpoints" in p for p in problems
    )

    certificates = texts(browser, "tr.certificate")
    secure = next(c for c in certificates if "DNS:secure.test" in c)
    assert "valid" in secure and "days left" in secure and "Secret default/secure-tls" in secure
    assert "guarded.test" in secure.split("Secret default/secure-tls")[1]  # used by
    default = next(c for c in certificates if "default certificate" in c)
    assert "DNS:default.invalid" in default and "shop.test" not in default  # plain-only hosts use none

    services = texts(browser, "tr.service")
    endpoint = next(s for s in services if s.startswith("enabled") and "default/a:http" in s)
    assert "http://127.0.0.1:" in endpoint and "ready" in endpoint  # Kubernetes readiness, named so
    assert "no health checks" in browser.evaluate("document.querySelector('tr.service .badge.UP').title")
    assert any("default/empty:http" in s and "no ready endpoints" in s for s in services)
    print(f"\ndashboard screenshot: {browser.screenshot(SHOTS / 'overview.png')}")

    browser.type_into("#explain-url", f"https://secure.test:{scene.tls_port}/hello")
    browser.click("#explain-form button")
    browser.wait_for("document.getElementById('explain-result').dataset.done === '1'")
    answer = browser.evaluate("document.getElementById('explain-answer').innerText")
    assert (
        answer
        == "proxied to default/a:http (round robin: "
        + ", ".join(s for s in _servers(scene, "default/a:http"))
        + ")"
    )
    assert "default-secure-secure-test" in browser.evaluate(
        "document.getElementById('explain-router').innerText"
    )
    assert "secure.test" in browser.evaluate("document.getElementById('explain-certificate').innerText")
    print(f"dashboard screenshot: {browser.screenshot(SHOTS / 'explain-proxied.png')}")

    browser.evaluate("document.getElementById('explain-url').value = ''")
    browser.type_into("#explain-url", f"https://nowhere.test:{scene.tls_port}/x")
    browser.click("#explain-form button")
    browser.wait_for("document.getElementById('explain-result').dataset.done === '2'")
    assert browser.evaluate("document.getElementById('explain-answer').className") == "answer notFound"
    assert browser.evaluate("document.getElementById('explain-answer').innerText").startswith(
        "404 no router matches"
    )
    print(f"dashboard screenshot: {browser.screenshot(SHOTS / 'explain-404.png')}")

    browser.evaluate("document.getElementById('explain-url').value = ''")
    browser.type_into("#explain-url", f"https://secure.test:{scene.tls_port}/")
    browser.type_into("#explain-host", f"guarded.test:{scene.tls_port}")
    browser.click("#explain-form button")
    browser.wait_for("document.getElementById('explain-result').dataset.done === '3'")
    assert browser.evaluate("document.getElementById('explain-answer').innerText").startswith(
        "421 the handshake"
    )

    # The filter asks once typing pauses, and a slow reply to an older filter is dropped: the
    # reply for "s" is held back 1.5 s by a wrapped fetch, and must not replace "shop.test"'s.
    browser.evaluate(
        "window.asked = []; const real = window.fetch; window.fetch = (url, options) => {"
        " const u = String(url); if (u.includes('/api/http/routers')) window.asked.push(u);"
        " if (u.endsWith('search=s')) return new Promise((ok) => setTimeout(ok, 1500)).then(() => real(url, options));"
        " return real(url, options); }"
    )
    browser.type_into("#routers-search", "s")
    browser.wait_for("window.asked.length === 1")
    browser.evaluate(  # a key at a time, faster than any pause
        "(() => { const box = document.getElementById('routers-search');"
        " for (const c of 'hop.test') { box.value += c; box.dispatchEvent(new Event('input')); } })()"
    )
    browser.wait_for("document.querySelectorAll('tr.router').length === 2")
    browser.wait_for("false || new Promise((ok) => setTimeout(() => ok(true), 2000))")  # the late reply
    assert browser.evaluate("document.querySelectorAll('tr.router').length") == 2
    asked = browser.evaluate("window.asked")
    searches = [a.rpartition("search=")[2] for a in asked]
    assert "shop.test" in searches and set(searches) <= {"s", "shop.test"}, asked  # (the 5 s timer too)
    shots = [SHOTS / name for name in ("overview.png", "explain-proxied.png", "explain-404.png")]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000 for p in shots)


def _servers(scene: Scene, name: str) -> list[str]:
    service = next(s for s in scene.router.api("/api/http/services") if s["name"] == name)
    return [server["url"].removeprefix("http://") for server in service["loadBalancer"]["servers"]]
