"""The API's lists on the shared scene: Traefik's fields, statuses, paging, certificates without keys."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest

from passerelle.api.certificates import summary
from passerelle.api.views import PageError, VersionView, page
from passerelle.model import DynamicConfig, Service
from passerelle.tls.store import generate_default
from tests.unit.api.scene import CONTEXT, translated, view


def by_name(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in items}


def test_routers_carry_traefik_fields_and_their_ingress_problems() -> None:
    routers = by_name(view().routers())
    cart = routers["default-shop-shop-example-com-cart"]
    assert cart["rule"] == "Host(`shop.example.com`) && PathPrefix(`/cart`)"
    assert cart["using"] == cart["entryPoints"] == ["web"] and "tls" not in cart
    assert (cart["status"], cart["source"], cart["file"], cart["provider"]) == (
        "enabled", "Ingress default/shop", "shop.yaml:1", "manifests",
    )  # fmt: skip
    guarded = routers["default-guarded-guarded-example-com"]
    assert guarded["tls"] == {"options": "modern"}
    empty = routers["default-empty-empty-example-com"]
    assert empty["status"] == "warning"
    assert any("no ready endpoints" in p["message"] for p in empty["problems"])
    redirected = routers["default-redirected-redirect-example-com-web"]
    assert redirected["middlewares"] == ["redirect-https-permanent@passerelle"]
    assert redirected["status"] == "warning"  # its Secret does not cover the host


def test_services_have_endpoints_status_and_users() -> None:
    services = by_name(view().services())
    web = services["default/web:http"]
    assert web["loadBalancer"]["servers"] == [{"url": "http://10.0.0.1:8080"}]
    assert web["serverStatus"] == {"http://10.0.0.1:8080": "UP"} and web["status"] == "enabled"
    assert web["serverStatusSource"] == "kubernetes-ready"  # what "UP" rests on: no health checks
    assert "default-shop-shop-example-com-cart" in web["usedBy"]
    empty = services["default/empty:http"]
    assert empty["status"] == "disabled" and "no ready endpoints" in empty["unavailable"]


def test_middlewares_nest_their_spec_under_the_kind() -> None:
    [redirect] = view().middlewares()
    assert redirect["type"] == "redirectscheme" and redirect["redirectScheme"]["scheme"] == "https"
    assert redirect["usedBy"] == ["default-redirected-redirect-example-com-web"]


def test_certificates_name_their_hosts_and_never_their_keys() -> None:
    certs = view().certificates()
    text = json.dumps(certs)
    assert "PRIVATE KEY" not in text and "keyPem" not in text and "BEGIN CERTIFICATE" not in text
    by_subject = {tuple(c["names"]): c for c in certs}
    secure = by_subject[("secure.example.com", "guarded.example.com")]
    assert secure["usedBy"] == ["guarded.example.com", "secure.example.com"]
    assert secure["sans"] == ["DNS:secure.example.com", "DNS:guarded.example.com"]
    assert secure["source"] == "Secret default/secure-tls" and secure["status"] == "valid"
    assert by_subject[("*.wild.example.com",)]["usedBy"] == ["*.wild.example.com"]
    [default] = [c for c in certs if c["default"]]
    assert default["subject"] == "CN=PASSERELLE DEFAULT CERT" and default["selfSigned"]
    assert default["usedBy"] == ["redirect.example.com"]  # shop.example.com is on plain HTTP only


@pytest.mark.parametrize(("days", "status"), [(-1, "expired"), (5, "expiring"), (60, "valid")])
def test_certificate_status_by_expiry(days: int, status: str) -> None:
    cert = generate_default(days=30)
    now = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=30 - days)
    info = summary(cert, now)
    assert info["status"] == status and info["daysLeft"] in (days - 1, days)


def test_overview_counts() -> None:
    overview = view().overview()
    assert overview["http"]["routers"] == {"total": 9, "warnings": 3, "errors": 0}
    assert overview["http"]["services"] == {"total": 2, "warnings": 0, "errors": 1}
    assert overview["problems"] == {"errors": 0, "warnings": 2}
    assert overview["tls"]["certificates"]["total"] == 3
    assert overview["entryPoints"] == ["web", "websecure"] and overview["version"] == 7


def test_problems_name_object_and_file() -> None:
    problems = view().problems()
    assert {p["object"] for p in problems} == {"Ingress default/empty", "Ingress default/redirected"}
    assert all(
        set(p) == {"object", "kind", "namespace", "name", "severity", "message", "file"} for p in problems
    )


ITEMS = [
    {"name": f"r{i}", "rule": f"Host(`h{i}`)", "status": "warning" if i % 3 == 0 else "enabled"}
    for i in range(7)
]


@pytest.mark.parametrize(
    ("kwargs", "names", "next_page"),
    [
        ({}, [f"r{i}" for i in range(7)], 1),
        ({"per_page": "3"}, ["r0", "r1", "r2"], 2),
        ({"per_page": "3", "number": "3"}, ["r6"], 1),
        ({"per_page": "3", "number": "9"}, [], 1),
        ({"status": "warning"}, ["r0", "r3", "r6"], 1),
        ({"search": "H5"}, ["r5"], 1),
    ],
)
def test_page(kwargs: dict[str, str], names: list[str], next_page: int) -> None:
    chosen, after = page(ITEMS, **kwargs)
    assert [i["name"] for i in chosen] == names and after == next_page


@pytest.mark.parametrize("kwargs", [{"per_page": "x"}, {"number": "0"}, {"per_page": "-1"}])
def test_page_refuses_nonsense(kwargs: dict[str, str]) -> None:
    with pytest.raises(PageError):
        page(ITEMS, **kwargs)


def test_an_h2c_service_lists_h2c_urls() -> None:
    config, problems = translated()
    services = tuple(
        Service(name=s.name, servers=s.servers, unavailable=s.unavailable, scheme="h2c")
        if s.name == "default/web:http"
        else s
        for s in config.services
    )
    h2c = DynamicConfig(
        routers=config.routers, services=services, middlewares=config.middlewares, tls=config.tls
    )
    web = by_name(
        VersionView(number=8, config=h2c, problems=problems, origins={}, context=CONTEXT).services()
    )
    assert web["default/web:http"]["loadBalancer"]["servers"] == [{"url": "h2c://10.0.0.1:8080"}]
