"""explain on the shared scene: one row per question, the answer's essentials expected."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings

from passerelle.api.context import Context
from passerelle.api.explain import Explainer, ExplainError, Question, parse_header
from passerelle.api.text import explanation_lines
from passerelle.kube.ingress import translate
from passerelle.kube.snapshot import ClusterSnapshot
from passerelle.model import DynamicConfig
from passerelle.proxy.options import EntryPointOptions
from passerelle.routing import rules
from tests.unit.api.scene import CONTEXT, OPTIONS, STATIC, ingress, objects, translated
from tests.unit.routing.test_table import configs, hosts, paths, reference_match


@dataclass(frozen=True)
class Case:
    id: str
    url: str
    action: str
    router: str | None = None
    status: int | None = None
    entrypoint: str | None = None
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    certificate: str | None = None  # a name on the chosen certificate, or "default"
    option: str | None = None
    location: str | None = None
    others: dict[str, str] = field(default_factory=dict)  # router -> reason


CASES = [
    Case("prefix", "http://shop.example.com/cart/items?x=1", "proxy", "default-shop-shop-example-com-cart",
         entrypoint="web", others={"default-shop-shop-example-com-exact": "path",
                                   "default-fallback-default-backend": "precedence"}),
    Case("prefix-is-element-wise", "http://shop.example.com/cartx", "proxy", "default-fallback-default-backend",
         others={"default-shop-shop-example-com-cart": "path"}),
    Case("exact", "http://shop.example.com/exact", "proxy", "default-shop-shop-example-com-exact",
         others={"default-shop-shop-example-com-cart": "path"}),
    Case("exact-not-prefix", "http://shop.example.com/exact/", "proxy", "default-fallback-default-backend",
         others={"default-shop-shop-example-com-exact": "path"}),
    Case("host-is-case-insensitive", "http://SHOP.example.com/cart", "proxy", "default-shop-shop-example-com-cart"),
    Case("tls-exact-certificate", "https://secure.example.com/a", "proxy", "default-secure-secure-example-com",
         entrypoint="websecure", certificate="secure.example.com", option="default"),
    Case("tls-router-on-plain-request", "http://secure.example.com/a", "proxy", "default-fallback-default-backend",
         entrypoint="web", others={"default-secure-secure-example-com": "entryPoint"}),
    Case("wildcard", "https://a.wild.example.com/", "proxy", "default-wild-wild-example-com",
         certificate="*.wild.example.com"),
    Case("wildcard-one-label-only", "https://a.b.wild.example.com/", "notFound", None, status=404,
         certificate="default", others={"default-wild-wild-example-com": "host"}),
    Case("ssl-redirect-get", "http://redirect.example.com/x?q=1", "redirect",
         "default-redirected-redirect-example-com-web", status=301, location="https://redirect.example.com/x?q=1"),
    Case("ssl-redirect-post", "http://redirect.example.com/x", "redirect",
         "default-redirected-redirect-example-com-web", method="POST", status=308),
    Case("ssl-redirect-served-on-tls", "https://redirect.example.com/x", "proxy",
         "default-redirected-redirect-example-com-websecure"),
    Case("host-option", "https://guarded.example.com/", "proxy", "default-guarded-guarded-example-com",
         option="modern", certificate="guarded.example.com"),
    Case("misdirected", "https://secure.example.com/", "misdirected", "default-guarded-guarded-example-com",
         status=421, headers=(("Host", "guarded.example.com"),), option="default"),
    Case("no-endpoints", "http://empty.example.com/", "unavailable", "default-empty-empty-example-com", status=503),
    Case("ip-address-no-sni", "https://127.0.0.1/", "notFound", status=404, certificate="default"),
    Case("port-picks-nothing-else", "https://secure.example.com:8443/", "proxy", "default-secure-secure-example-com",
         entrypoint="websecure"),
    Case("named-entrypoint", "https://secure.example.com/", "proxy", "default-fallback-default-backend",
         entrypoint="web"),
]  # fmt: skip


@pytest.fixture(scope="module")
def explainer() -> Explainer:
    config, _ = translated()
    return Explainer(config, CONTEXT)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_explain(explainer: Explainer, case: Case) -> None:
    named = "web" if case.id == "named-entrypoint" else ""
    answer = explainer.explain(
        Question(url=case.url, method=case.method, headers=case.headers, entrypoint=named)
    )
    result = answer["result"]
    assert result["action"] == case.action, answer
    assert result["status"] == case.status
    assert (answer["router"] or {}).get("name") == case.router
    if case.entrypoint:
        assert answer["entryPoint"]["name"] == case.entrypoint
    if case.certificate:
        cert = answer["tls"]["certificate"]
        assert cert["default"] if case.certificate == "default" else case.certificate in cert["names"], cert
        assert "keyPem" not in cert and "PRIVATE" not in str(answer)
    if case.option:
        assert answer["tls"]["options"] == case.option
        minimum = "VersionTLS13" if case.option == "modern" else "VersionTLS12"
        assert answer["tls"]["option"]["minVersion"] == minimum
    if case.location:
        assert result["location"] == case.location
    reasons = {o["router"]: o["reason"] for o in answer["others"]}
    for router, reason in case.others.items():
        assert reasons.get(router) == reason, answer["others"]
    if case.router is not None and case.action != "redirect":
        assert answer["service"]["name"] == _service_of(explainer, case.router)


def _service_of(explainer: Explainer, router: str) -> str:
    config, _ = translated()
    return next(r.service for r in config.routers if r.name == router)


def test_the_middleware_chain_stops_at_the_redirect(explainer: Explainer) -> None:
    answer = explainer.explain(Question(url="http://redirect.example.com/"))
    assert [(m["kind"], m["applied"]) for m in answer["middlewares"]] == [("redirectScheme", True)]
    assert answer["middlewares"][0]["spec"]["scheme"] == "https"


def test_an_entry_point_redirect_answers_before_any_router() -> None:
    config, _ = translated()
    web = EntryPointOptions(name="web", host="", port=80, redirect_scheme="https", redirect_port=443)
    context = Context(entrypoints=(web, CONTEXT.entrypoints[1]), tls=STATIC)
    explainer = Explainer(config, context)
    answer = explainer.explain(Question(url="http://shop.example.com/cart"))
    assert (
        answer["result"]["action"] == "redirect"
        and answer["result"]["location"] == "https://shop.example.com/cart"
    )
    assert answer["router"]["name"] == "web-redirect@internal"
    cart = next(o for o in answer["others"] if o["router"] == "default-shop-shop-example-com-cart")
    assert cart["reason"] == "precedence" and "every request" in cart["detail"]
    challenge = explainer.explain(Question(url="http://shop.example.com/.well-known/acme-challenge/t"))
    # RedirectAll looks ACME challenges up in the table first: here the default backend has them
    assert challenge["router"]["name"] == "default-fallback-default-backend"


def test_https_without_a_tls_entry_point_is_unreachable() -> None:
    explainer = Explainer(DynamicConfig(), Context(entrypoints=(CONTEXT.entrypoints[0],)))
    answer = explainer.explain(Question(url="https://shop.example.com/"))
    assert answer["result"] == {
        "action": "unreachable",
        "status": None,
        "detail": "no entry point terminates TLS",
    }


@pytest.mark.parametrize(
    ("url", "entrypoint", "message"),
    [
        ("ftp://shop.example.com/", "", "must be an http:// or https:// URL"),
        ("shop.example.com/cart", "", "must be an http:// or https:// URL"),
        ("http:///cart", "", "has no host"),
        ("http://shop.example.com:99999/", "", "invalid port"),
        ("http://shop.example.com/", "nope", "no entry point named 'nope' (have web, websecure)"),
        ("http://" + "ü" * 64 + ".example/", "", "not a valid name"),
    ],
)
def test_questions_that_cannot_be_asked(
    explainer: Explainer, url: str, entrypoint: str, message: str
) -> None:
    with pytest.raises(ExplainError, match=message.replace("(", r"\(").replace(")", r"\)")):
        explainer.explain(Question(url=url, entrypoint=entrypoint))


@pytest.mark.parametrize(
    ("text", "expected"), [("Host: a.example", ("Host", "a.example")), ("X-A:b:c", ("X-A", "b:c"))]
)
def test_parse_header(text: str, expected: tuple[str, str]) -> None:
    assert parse_header(text) == expected


def test_parse_header_needs_a_colon() -> None:
    with pytest.raises(ExplainError):
        parse_header("Host a.example")


def test_others_are_capped_and_counted() -> None:
    from passerelle.model import PathMatch, PathType, Router, Service

    routers = tuple(
        Router(
            name=f"r{i}",
            service="s",
            host="many.example.com",
            path=PathMatch(type=PathType.EXACT, value=f"/{i}"),
        )
        for i in range(60)
    )
    explainer = Explainer(DynamicConfig(routers=routers, services=(Service(name="s"),)), CONTEXT)
    answer: dict[str, Any] = explainer.explain(Question(url="http://many.example.com/none"))
    assert len(answer["others"]) == 50 and answer["othersLeftOut"] == 10
    assert answer["result"]["action"] == "notFound"


def test_an_explanation_as_terminal_lines(explainer: Explainer) -> None:
    from passerelle.api.text import explanation_lines

    lines = explanation_lines(explainer.explain(Question(url="https://guarded.example.com/")))
    assert lines[0] == "answer:      proxied to default/web:http (round robin: 10.0.0.1:8080)"
    assert (
        "tls option:  modern (from Ingress default/guarded); VersionTLS13+, client certificates: NoClientCert"
        in lines
    )
    assert (
        "router:      default-guarded-guarded-example-com: Host(`guarded.example.com`) && PathPrefix(`/`)"
        in lines
    )
    assert "  endpoint:  10.0.0.1:8080" in lines
    missing = explanation_lines(explainer.explain(Question(url="http://empty.example.com/")))
    assert missing[0].startswith("answer:      503 Service default/empty port http has no ready endpoints")
    assert "  no endpoints: Service default/empty port http has no ready endpoints" in missing


PLAIN = Context(entrypoints=(CONTEXT.entrypoints[0],))


@settings(max_examples=300, deadline=None)
@given(configs(), hosts, paths)
def test_explain_agrees_with_the_reference_and_its_reasons_hold(
    config: DynamicConfig, host: str, path: str
) -> None:
    answer = Explainer(config, PLAIN).explain(Question(url=f"http://{host}{path}"))
    assert (answer["router"] or {}).get("name") == reference_match(config, host, path)
    by_name = {r.name: r for r in config.routers}
    for other in answer["others"]:
        router = by_name[other["router"]]
        host_ok = rules.host_matches(router.host, host)
        path_ok = router.path is None or rules.path_matches(router.path, path)
        assert other["reason"] == ("host" if not host_ok else "path" if not path_ok else "precedence"), other
    listed = {o["router"] for o in answer["others"]} | {(answer["router"] or {}).get("name")}
    for router in config.routers:  # every router that matches the host is accounted for
        if rules.host_matches(router.host, host):
            assert router.name in listed


def test_a_url_is_sent_as_a_client_sends_it(explainer: Explainer) -> None:
    answer = explainer.explain(Question(url="http://bücher.example.com:8080/a b/é?q=ü"))
    assert answer["request"]["host"] == "xn--bcher-kva.example.com:8080"
    assert answer["request"]["target"] == "/a%20b/%C3%A9?q=%C3%BC"
    with pytest.raises(ExplainError, match="must be ASCII"):
        explainer.explain(Question(url="http://a.example.com/", headers=(("Host", "bücher.example.com"),)))


def test_near_misses_are_found_without_comparing_every_router(monkeypatch: pytest.MonkeyPatch) -> None:
    from difflib import SequenceMatcher

    from passerelle.api import reasons
    from passerelle.model import PathMatch, PathType, Router, Service

    compared: list[str] = []

    class Counting(SequenceMatcher[str]):
        def __init__(self, junk: None, a: str, b: str) -> None:
            compared.append(a)
            super().__init__(junk, a, b)

    monkeypatch.setattr(reasons, "SequenceMatcher", Counting)
    prefix = PathMatch(type=PathType.PREFIX, value="/")
    routers = [
        Router(name=f"r{i}", service="s", host=f"h{i}.bench.local", path=prefix) for i in range(10_000)
    ]
    routers += [
        Router(name="shop", service="s", host="shop.example.com", path=prefix),
        Router(name="other", service="s", host="other.example.org", path=prefix),
    ]
    explainer = Explainer(DynamicConfig(routers=tuple(routers), services=(Service(name="s"),)), CONTEXT)
    typo = explainer.explain(Question(url="http://shop.exmaple.com/"))
    assert [(o["router"], o["reason"]) for o in typo["others"]] == [("shop", "host")]
    compared.clear()
    crowded = explainer.explain(Question(url="http://h5x.bench.local/"))  # 10,000 routers alike
    assert 0 < len(compared) <= reasons.MAX_SPELLING_CHECKS
    assert typo["result"]["action"] == crowded["result"]["action"] == "notFound"


def test_the_backends_request_and_the_allow_list_are_told() -> None:
    stripped = ingress(
        "stripped", "api.example.com", [("/api", "ImplementationSpecific")],
        annotations={"ingress.kubernetes.io/rule-type": "PathPrefixStrip", "passerelle.io/ssl-redirect": "true",
                     "ingress.kubernetes.io/whitelist-source-range": "10.0.0.0/8",
                     "ingress.kubernetes.io/custom-request-headers": "X-Team:api"},
        tls="secure-tls",
    )  # fmt: skip
    config, _ = translate(ClusterSnapshot.of([*objects(), stripped]), OPTIONS)
    explainer = Explainer(config, CONTEXT)
    answer = explainer.explain(Question(url="https://api.example.com/api/users?id=7"))
    assert answer["result"]["action"] == "proxy"
    assert answer["result"]["upstream"]["requestLine"] == "GET /users?id=7 HTTP/1.1"
    assert {"X-Forwarded-Prefix: /api", "X-Team: api"} <= set(answer["result"]["upstream"]["headers"])
    assert answer["result"]["allowList"] == "only clients connecting from 10.0.0.0/8; others get 403"
    assert all(m["applied"] for m in answer["middlewares"])
    plain = explainer.explain(Question(url="http://api.example.com/api/users"))
    assert plain["result"]["action"] == "redirect" and "upstream" not in plain["result"]
    # the allow list is checked before the redirect answers; what follows the redirect is not reached
    assert [(m["kind"], m["applied"]) for m in plain["middlewares"]] == [
        ("redirectScheme", True), ("ipAllowList", True), ("headers", False), ("urlRewrite", False), ("headers", False)
    ]  # fmt: skip
    lines = explanation_lines(answer)
    assert (
        "upstream:    GET /users?id=7 HTTP/1.1" in lines and "             X-Forwarded-Prefix: /api" in lines
    )
