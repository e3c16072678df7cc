"""Traefik 1.7's path and header annotations, and Traefik 2/3's stripPrefix, addPrefix,
replacePath and headers Middlewares, through the whole router, with a real echo backend:
what the backend gets (path, X-Forwarded-Prefix, X-Replaced-Path, custom headers) and what the
client gets back, twice on one keep-alive connection; an Ingress 1.7 would refuse is not served."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.integration.harness import Backends, Router, echo, endpoint_slice, ingress, rule, service

P = "ingress.kubernetes.io/"


def annotated(name: str, annotations: dict[str, str], *paths: tuple[str, str, str]) -> dict[str, object]:
    obj = ingress(name, [rule(f"{name}.test", *paths)])
    obj["metadata"]["annotations"] = annotations  # type: ignore[index]
    return obj


def test_strip_rewrite_and_custom_headers_reach_the_backend(
    backends: Backends, make_router: Callable[..., Router]
) -> None:
    app = backends.whoami("app-0")
    router = make_router(
        [
            service("app"),
            endpoint_slice("app", [app]),
            annotated(
                "strip",
                {
                    "traefik.ingress.kubernetes.io/rule-type": "PathPrefixStrip",
                    P + "custom-request-headers": "X-Script-Name:/api||User-Agent:",
                    P + "custom-response-headers": "X-Frame-Options:DENY||X-Via:passerelle",
                },
                ("/api", "ImplementationSpecific", "app"),
            ),
            annotated("rewrite", {P + "rewrite-target": "/app"}, ("/shop", "Prefix", "app")),
            annotated("exact", {P + "rule-type": "Path"}, ("/only", "ImplementationSpecific", "app")),
            annotated("typo", {P + "rule-type": "PathPrefixStip"}, ("/", "Prefix", "app")),
        ]
    )
    with httpx.Client(base_url=router.base, timeout=5) as client:
        for _ in range(2):  # the second on the same keep-alive connection, the short way if any
            answer = client.get(
                "/api/users?id=7",
                headers={"Host": "strip.test", "User-Agent": "curl", "X-Forwarded-Prefix": "/spoofed"},
            )
            seen = echo(answer)
            assert seen["path"] == "/users" and seen["query"] == "id=7"
            assert seen["headers"]["X-Forwarded-Prefix"] == ["/api"]
            assert seen["headers"]["X-Script-Name"] == ["/api"] and "User-Agent" not in seen["headers"]
            assert answer.headers["X-Frame-Options"] == "DENY" and answer.headers["X-Via"] == "passerelle"
        assert echo(client.get("/api", headers={"Host": "strip.test"}))["path"] == "/"

        rewritten = echo(client.get("/shop/cart", headers={"Host": "rewrite.test"}))
        assert rewritten["path"] == "/app/cart" and rewritten["headers"]["X-Replaced-Path"] == ["/shop/cart"]
        assert "X-Frame-Options" not in client.get("/shop", headers={"Host": "rewrite.test"}).headers

        assert echo(client.get("/only", headers={"Host": "exact.test"}))["path"] == "/only"
        assert client.get("/only/more", headers={"Host": "exact.test"}).status_code == 404
        assert client.get("/", headers={"Host": "typo.test"}).status_code == 404

    problems = router.api("/api/problems")
    assert any(
        p["object"] == "Ingress default/typo" and "not served: rule-type 'PathPrefixStip'" in p["message"]
        for p in problems
    ), problems


def test_traefik_path_and_headers_middlewares_reach_the_backend(
    backends: Backends, make_router: Callable[..., Router]
) -> None:
    app = backends.whoami("app-0")

    def middleware(name: str, spec: dict[str, object]) -> dict[str, object]:
        return {
            "apiVersion": "traefik.io/v1alpha1",
            "kind": "Middleware",
            "metadata": {"name": name},
            "spec": spec,
        }

    chain = "default-strip@kubernetescrd,default-add@kubernetescrd,default-hdrs@kubernetescrd"
    router = make_router(
        [
            service("app"),
            endpoint_slice("app", [app]),
            middleware("strip", {"stripPrefix": {"prefixes": ["/api"]}}),
            middleware("add", {"addPrefix": {"prefix": "/v2"}}),
            middleware("hdrs", {"headers": {"customRequestHeaders": {"X-A": "1"}, "frameDeny": True}}),
            middleware("replace", {"replacePath": {"path": "/index.html"}}),
            annotated(
                "mw", {"traefik.ingress.kubernetes.io/router.middlewares": chain}, ("/", "Prefix", "app")
            ),
            annotated(
                "replace",
                {"traefik.ingress.kubernetes.io/router.middlewares": "default-replace@kubernetescrd"},
                ("/", "Prefix", "app"),
            ),
        ]
    )
    with httpx.Client(base_url=router.base, timeout=5) as client:
        answer = client.get("/api/users?id=7", headers={"Host": "mw.test"})
        seen = echo(answer)
        assert seen["path"] == "/v2/users" and seen["query"] == "id=7"
        assert seen["headers"]["X-Forwarded-Prefix"] == ["/api"] and seen["headers"]["X-A"] == ["1"]
        assert answer.headers["X-Frame-Options"] == "DENY"
        other = echo(client.get("/else", headers={"Host": "mw.test"}))  # no prefix to strip
        assert other["path"] == "/v2/else" and "X-Forwarded-Prefix" not in other["headers"]
        replaced = echo(client.get("/a/b", headers={"Host": "replace.test"}))
        assert replaced["path"] == "/index.html" and replaced["headers"]["X-Replaced-Path"] == ["/a/b"]
    assert router.api("/api/problems") == []


def test_allow_lists_check_the_connections_address_not_its_headers(
    backends: Backends, make_router: Callable[..., Router]
) -> None:
    app = backends.whoami("app-0")
    traefik_list = {
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "Middleware",
        "metadata": {"name": "lan"},
        "spec": {"ipAllowList": {"sourceRange": ["10.0.0.0/8"], "rejectStatusCode": 404}},
    }
    router = make_router(
        [
            service("app"),
            endpoint_slice("app", [app]),
            traefik_list,
            annotated("open", {P + "whitelist-source-range": "10.0.0.0/8, 127.0.0.0/8"}, ("/", "Prefix", "app")),
            annotated(
                "closed",
                {P + "whitelist-source-range": "10.0.0.0/8", P + "ssl-redirect": "true"},
                ("/", "Prefix", "app"),
            ),
            annotated(
                "crd", {"traefik.ingress.kubernetes.io/router.middlewares": "default-lan@kubernetescrd"},
                ("/", "Prefix", "app"),
            ),
            annotated("odd", {P + "whitelist-source-range": "10.0.0.0/33"}, ("/", "Prefix", "app")),
        ]
    )  # fmt: skip
    spoof = {"X-Real-Ip": "10.0.0.1", "X-Forwarded-For": "10.0.0.1"}
    with httpx.Client(base_url=router.base, timeout=5) as client:
        assert echo(client.get("/x", headers={"Host": "open.test"}))["path"] == "/x"
        closed = client.get("/x", headers={"Host": "closed.test", **spoof})
        assert closed.status_code == 403 and "Location" not in closed.headers  # before the redirect
        assert client.head("/x", headers={"Host": "closed.test"}).status_code == 403
        assert client.get("/x", headers={"Host": "crd.test", **spoof}).status_code == 404  # rejectStatusCode
        assert client.get("/x", headers={"Host": "odd.test"}).status_code == 404  # not served
    problems = router.api("/api/problems")
    assert any(
        p["object"] == "Ingress default/odd" and "whitelist-source-range '10.0.0.0/33'" in p["message"]
        for p in problems
    ), problems
    metrics = httpx.get(f"http://127.0.0.1:{router.api_port}/metrics", timeout=5).text
    assert 'code="403"' in metrics and 'ingress="closed"' in metrics


def test_a_regex_redirect_answers_only_the_urls_it_matches(
    backends: Backends, make_router: Callable[..., Router]
) -> None:
    app = backends.whoami("app-0")
    apex = {
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "Middleware",
        "metadata": {"name": "apex"},
        "spec": {
            "redirectRegex": {
                "regex": r"^http://www\.(shop\.test)(:\d+)?/(.*)",
                "replacement": "https://${1}/${3}",
            }
        },
    }
    chain = "default-apex@kubernetescrd"
    router = make_router(
        [
            service("app"),
            endpoint_slice("app", [app]),
            apex,
            {**annotated("shop", {"traefik.ingress.kubernetes.io/router.middlewares": chain}, ("/", "Prefix", "app")),
             "spec": {"rules": [rule("shop.test", ("/", "Prefix", "app")), rule("www.shop.test", ("/", "Prefix", "app"))]}},
        ]
    )  # fmt: skip
    with httpx.Client(base_url=router.base, timeout=5) as client:
        moved = client.get("/cart?id=1", headers={"Host": "www.shop.test"})
        assert moved.status_code == 302 and moved.headers["Location"] == "https://shop.test/cart?id=1"
        assert client.post("/cart", headers={"Host": "www.shop.test"}).status_code == 307
        assert echo(client.get("/cart", headers={"Host": "shop.test"}))["path"] == "/cart"  # not matched
