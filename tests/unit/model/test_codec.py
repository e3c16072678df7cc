"""codec: DynamicConfig <-> JSON-ready dicts, losslessly."""

from __future__ import annotations

import json

import pytest

from passerelle.middlewares.redirect_scheme import RedirectScheme
from passerelle.model import DynamicConfig, Middleware, PathMatch, PathType, Router, Server, Service, codec


@pytest.fixture
def config() -> DynamicConfig:
    return DynamicConfig(
        routers=(
            Router(
                name="shop-shop-www-example-com-cart",
                service="shop/cart:8080",
                host="www.example.com",
                path=PathMatch(type=PathType.PREFIX, value="/cart"),
                source="Ingress shop/shop",
            ),
            Router(
                name="shop-shop-www-example-com-cart-checkout",
                service="shop/cart:8080",
                host="www.example.com",
                path=PathMatch(type=PathType.EXACT, value="/cart/checkout"),
                entrypoints=("web", "websecure"),
                middlewares=("shop-https@kubernetescrd",),
                source="Ingress shop/shop",
            ),
            Router(
                name="wild",
                service="edge/api:http",
                host="*.example.com",
                path=PathMatch(type=PathType.PREFIX, value="/"),
                entrypoints=("websecure",),
            ),
            Router(name="shop-shop-default-backend", service="shop/ghost:80", source="Ingress shop/shop"),
        ),
        services=(
            Service(
                name="shop/cart:8080",
                servers=(
                    Server(host="10.0.0.1", port=8080),
                    Server(host="10.0.0.2", port=8080),
                    Server(host="fd00::1", port=8080),
                ),
            ),
            Service(name="edge/api:http", servers=(Server(host="api.example.org", port=80),)),
            Service(name="shop/ghost:80", unavailable="Service shop/ghost not found"),
        ),
        middlewares=(
            Middleware(
                name="shop-https@kubernetescrd",
                spec=RedirectScheme(scheme="https", port=8443, permanent=True),
            ),
        ),
    )


def test_round_trip(config: DynamicConfig) -> None:
    assert codec.load(codec.dump(config)) == config


def test_round_trip_through_json_text(config: DynamicConfig) -> None:
    loaded = codec.load(json.loads(json.dumps(codec.dump(config))))
    assert loaded == config
    # Equal field by field, types included (tuples, enums), not only by dataclass equality.
    assert loaded.routers[1].entrypoints == ("web", "websecure")
    assert loaded.routers[1].path is not None and loaded.routers[1].path.type is PathType.EXACT
    assert loaded.routers[3].path is None and loaded.routers[3].host is None
    assert loaded.service("shop/cart:8080").servers[2] == Server(host="fd00::1", port=8080)
    assert loaded.service("shop/ghost:80").unavailable == "Service shop/ghost not found"
    assert loaded.middleware("shop-https@kubernetescrd").spec == RedirectScheme(
        scheme="https", port=8443, permanent=True
    )


def test_dump_is_plain_json_data(config: DynamicConfig) -> None:
    data = codec.dump(config)
    assert data["routers"][1] == {
        "name": "shop-shop-www-example-com-cart-checkout",
        "service": "shop/cart:8080",
        "host": "www.example.com",
        "path": {"type": "Exact", "value": "/cart/checkout"},
        "entrypoints": ["web", "websecure"],
        "middlewares": ["shop-https@kubernetescrd"],
        "source": "Ingress shop/shop",
        "rule": "Host(`www.example.com`) && Path(`/cart/checkout`)",
    }
    assert data["routers"][3]["path"] is None
    assert data["services"][2] == {
        "name": "shop/ghost:80",
        "servers": [],
        "unavailable": "Service shop/ghost not found",
        "scheme": "http",
    }
    assert data["middlewares"] == [
        {
            "name": "shop-https@kubernetescrd",
            "kind": "redirectScheme",
            "spec": {"scheme": "https", "port": 8443, "permanent": True, "host": None},
        }
    ]
    assert json.loads(json.dumps(data)) == data


def test_a_router_naming_a_missing_middleware_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown middlewares"):
        DynamicConfig(
            routers=(Router(name="r", service="s", middlewares=("nope@kubernetescrd",)),),
            services=(Service(name="s"),),
        )


def test_a_changed_config_is_not_equal(config: DynamicConfig) -> None:
    data = codec.dump(config)
    data["services"][0]["servers"][0]["port"] = 9090
    assert codec.load(data) != config


def test_empty_config() -> None:
    assert codec.load(codec.dump(DynamicConfig())) == DynamicConfig()


def _with_tls(config: DynamicConfig) -> DynamicConfig:
    from passerelle.model import Certificate, ClientCA, HostOptions, TlsConfig

    tls = TlsConfig(
        certificates=(
            Certificate(
                cert_pem="CERT",
                key_pem="KEY",
                names=("www.example.com", "*.example.com"),
                fingerprint="ab12",
                not_after="2030-01-01T00:00:00Z",
                source="Secret shop/www",
            ),
            Certificate(cert_pem="C2", key_pem="K2", names=(), fingerprint="cd34", default=True),
        ),
        hosts=(HostOptions(host="www.example.com", options="mtls", source="Ingress shop/shop"),),
        client_cas=(ClientCA(options="mtls", pem="CA", source="Secret shop/ca"),),
    )
    return DynamicConfig(
        routers=config.routers, services=config.services, middlewares=config.middlewares, tls=tls
    )


def test_tls_state_round_trips_with_keys(config: DynamicConfig) -> None:
    full = _with_tls(config)
    assert codec.load(json.loads(json.dumps(codec.dump(full, with_keys=True)))) == full
    assert full != config


def test_private_keys_stay_out_of_a_plain_dump(config: DynamicConfig) -> None:
    data = codec.dump(_with_tls(config))
    assert "KEY" not in json.dumps(data) and "CERT" not in json.dumps(data)
    assert data["tls"]["certificates"][0] == {
        "names": ["www.example.com", "*.example.com"],
        "fingerprint": "ab12",
        "notAfter": "2030-01-01T00:00:00Z",
        "default": False,
        "source": "Secret shop/www",
    }
    with pytest.raises(KeyError):
        codec.load(data)


def test_a_service_scheme_is_http_or_h2c_and_crosses_the_boundary() -> None:
    h2c = Service(name="s", servers=(Server(host="10.0.0.1", port=50051),), scheme="h2c")
    assert codec.load_service(codec.dump_service(h2c)) == h2c
    assert (
        codec.load_service({"name": "s", "servers": [], "unavailable": "x"}).scheme == "http"
    )  # older dumps
    with pytest.raises(ValueError, match="scheme 'https' is not one of http, h2c"):
        Service(name="s", scheme="https")
