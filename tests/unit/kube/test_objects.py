"""read_ingress: every served apiVersion read into one shape, with the API server's validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from passerelle.kube.objects import BackendRef, IngressPath, IngressRule, InvalidObject, read_ingress

V1 = "networking.k8s.io/v1"


def backend(name: str = "web", number: int | None = 80, port_name: str | None = None) -> dict[str, Any]:
    port: dict[str, Any] = {}
    if number is not None:
        port["number"] = number
    if port_name is not None:
        port["name"] = port_name
    return {"service": {"name": name, "port": port}}


def v1(spec: Any, **meta: Any) -> dict[str, Any]:
    return {"apiVersion": V1, "kind": "Ingress", "metadata": {"name": "ing", **meta}, "spec": spec}


def one_path(path: Any = "/", path_type: Any = "Prefix", host: Any = None, **extra: Any) -> dict[str, Any]:
    entry = {"path": path, "pathType": path_type, "backend": backend(), **extra}
    rule: dict[str, Any] = {"http": {"paths": [entry]}}
    if host is not None:
        rule["host"] = host
    return {"rules": [rule]}


def errors_of(obj: dict[str, Any]) -> list[str]:
    with pytest.raises(InvalidObject) as info:
        read_ingress(obj)
    return info.value.errors


def test_v1_is_read_into_the_normal_shape() -> None:
    spec = read_ingress(
        v1(
            {
                "ingressClassName": "passerelle",
                "defaultBackend": backend("fallback", number=None, port_name="http"),
                "rules": [
                    {
                        "host": "foo.example.com",
                        "http": {"paths": [{"path": "/a", "pathType": "Exact", "backend": backend()}]},
                    },
                    {"http": {"paths": [{"path": "/b", "pathType": "Prefix", "backend": backend()}]}},
                    {"host": "bare.example.com"},
                ],
            },
            creationTimestamp="2024-05-01T10:00:00Z",
            annotations={"kubernetes.io/ingress.class": "traefik", "x": 1},
        )
    )
    assert (spec.namespace, spec.name, spec.created) == ("default", "ing", "2024-05-01T10:00:00Z")
    assert spec.class_name == "passerelle"
    assert spec.class_annotation == "traefik"
    assert spec.annotations["x"] == "1"
    assert spec.default_backend == BackendRef(service="fallback", port="http")
    web = BackendRef(service="web", port=80)
    assert spec.rules == (
        IngressRule(host="foo.example.com", paths=(IngressPath(path="/a", path_type="Exact", backend=web),)),
        IngressRule(host=None, paths=(IngressPath(path="/b", path_type="Prefix", backend=web),)),
        IngressRule(host="bare.example.com", paths=()),
    )


@pytest.mark.parametrize("api_version", ["networking.k8s.io/v1beta1", "extensions/v1beta1"])
def test_legacy_shapes(api_version: str) -> None:
    spec = read_ingress(
        {
            "apiVersion": api_version,
            "kind": "Ingress",
            "metadata": {"name": "old", "namespace": "shop"},
            "spec": {
                "backend": {"serviceName": "fallback", "servicePort": "http"},
                "rules": [
                    {
                        "http": {
                            "paths": [
                                {"path": "/a", "backend": {"serviceName": "a", "servicePort": 8080}},
                                {"backend": {"serviceName": "b", "servicePort": "9000"}},
                            ]
                        }
                    }
                ],
            },
        }
    )
    assert spec.namespace == "shop"
    assert spec.default_backend == BackendRef(service="fallback", port="http")
    assert spec.rules[0].paths == (
        IngressPath(
            path="/a", path_type="ImplementationSpecific", backend=BackendRef(service="a", port=8080)
        ),
        # servicePort is an IntOrString: "9000" is the number; a missing path is "/".
        IngressPath(path="/", path_type="ImplementationSpecific", backend=BackendRef(service="b", port=9000)),
    )


def test_v1_ignores_the_legacy_backend_field() -> None:
    errors = errors_of(v1({"backend": {"serviceName": "web", "servicePort": 80}}))
    assert any("`defaultBackend` or `rules`" in e for e in errors)


def test_age_key_orders_oldest_first_then_namespace_and_name() -> None:
    def spec(name: str, namespace: str = "default", created: Any = None) -> Any:
        meta: dict[str, Any] = {"namespace": namespace}
        if created is not None:
            meta["creationTimestamp"] = created
        return read_ingress(v1({"defaultBackend": backend()}, **{**meta, "name": name}))

    specs = [
        spec("z", "a"),
        spec("a", "b"),
        spec("new", created="2023-01-01T00:00:00Z"),
        spec("old", created="2020-01-01T00:00:00Z"),
        spec("tie-b", created="2021-01-01T00:00:00Z"),
        spec("tie-a", created="2021-01-01T00:00:00Z"),
    ]
    ordered = [s.name for s in sorted(specs, key=lambda s: s.age_key)]
    assert ordered[:4] == ["old", "tie-a", "tie-b", "new"]
    assert ordered[4:] == ["z", "a"]  # no timestamp: namespace a before b


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-01-01T08:00:00Z", "2024-01-01T08:00:00Z"),
        (datetime(2024, 1, 1, 8, tzinfo=UTC), "2024-01-01T08:00:00Z"),
        (datetime(2024, 1, 1, 10, tzinfo=timezone(timedelta(hours=2))), "2024-01-01T08:00:00Z"),
        (None, ""),
    ],
)
def test_creation_timestamp_is_rfc3339_utc(value: Any, expected: str) -> None:
    meta = {} if value is None else {"creationTimestamp": value}
    assert read_ingress(v1({"defaultBackend": backend()}, **meta)).created == expected


def test_empty_implementation_specific_path_is_the_root() -> None:
    spec = read_ingress(v1(one_path("", "ImplementationSpecific")))
    assert spec.rules[0].paths[0].path == "/"


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        pytest.param(v1(one_path("foo")), "spec.rules[0].http.paths[0].path", id="relative-path"),
        pytest.param(v1(one_path(None)), "spec.rules[0].http.paths[0].path", id="prefix-without-path"),
        pytest.param(
            v1(one_path("foo", "ImplementationSpecific")),
            "spec.rules[0].http.paths[0].path",
            id="relative-impl-path",
        ),
        pytest.param(v1(one_path("/a//b")), "spec.rules[0].http.paths[0].path", id="double-slash"),
        pytest.param(v1(one_path("/a/..", "Exact")), "spec.rules[0].http.paths[0].path", id="dot-dot-suffix"),
        pytest.param(v1(one_path("/a%2fb")), "spec.rules[0].http.paths[0].path", id="encoded-slash"),
        pytest.param(v1(one_path("/", "Regex")), "spec.rules[0].http.paths[0].pathType", id="bad-path-type"),
        pytest.param(v1(one_path("/", None)), "spec.rules[0].http.paths[0].pathType", id="v1-no-path-type"),
        pytest.param(v1(one_path(host="Foo.com")), "spec.rules[0].host", id="upper-case-host"),
        pytest.param(v1(one_path(host="foo.com:80")), "spec.rules[0].host", id="host-with-port"),
        pytest.param(v1(one_path(host="192.168.0.1")), "spec.rules[0].host", id="ip-host"),
        pytest.param(v1(one_path(host="a.*.com")), "spec.rules[0].host", id="inner-wildcard"),
        pytest.param(v1(one_path(host="-a.com")), "spec.rules[0].host", id="leading-dash"),
        pytest.param(v1(one_path(host="a" * 250 + ".com")), "spec.rules[0].host", id="too-long"),
        pytest.param(v1(one_path(host=42)), "spec.rules[0].host", id="host-not-a-string"),
        pytest.param(v1({}), "`defaultBackend` or `rules`", id="no-rules-no-default"),
        pytest.param(v1(None), "`defaultBackend` or `rules`", id="no-spec"),
        pytest.param(v1({"rules": [{"http": {"paths": []}}]}), "spec.rules[0].http.paths", id="no-paths"),
        pytest.param(v1({"rules": "x"}), "spec.rules", id="rules-not-a-list"),
        pytest.param(v1([1]), "spec", id="spec-not-an-object"),
        pytest.param(
            v1({"defaultBackend": backend(number=80, port_name="http")}),
            "spec.defaultBackend.service.port",
            id="port-number-and-name",
        ),
        pytest.param(
            v1({"defaultBackend": backend(number=None)}), "spec.defaultBackend.service.port", id="no-port"
        ),
        pytest.param(
            v1({"defaultBackend": {"service": {"name": "web", "port": 80}}}),
            "spec.defaultBackend.service.port",
            id="port-not-an-object",
        ),
        pytest.param(
            v1({"defaultBackend": backend(number=0)}), "spec.defaultBackend.service.port", id="port-zero"
        ),
        pytest.param(
            v1({"defaultBackend": backend(number=65536)}),
            "spec.defaultBackend.service.port",
            id="port-too-big",
        ),
        pytest.param(v1({"defaultBackend": backend("")}), "spec.defaultBackend", id="no-service-name"),
        pytest.param(v1({"defaultBackend": {}}), "spec.defaultBackend.service", id="no-service"),
        pytest.param(
            v1({"defaultBackend": {"resource": {"kind": "StorageBucket", "name": "b"}}}),
            "spec.defaultBackend.resource",
            id="resource-backend",
        ),
        pytest.param(
            {"apiVersion": "extensions/v1beta1", "kind": "Ingress", "metadata": {"name": "x"}, "spec": {}},
            "`backend` or `rules`",
            id="legacy-no-rules-no-backend",
        ),
        pytest.param(
            {
                "apiVersion": "extensions/v1beta1",
                "kind": "Ingress",
                "metadata": {"name": "x"},
                "spec": {"backend": {"serviceName": "web"}},
            },
            "spec.backend.servicePort",
            id="legacy-no-service-port",
        ),
        pytest.param(
            {**v1({"defaultBackend": backend()}), "apiVersion": "v1"}, "apiVersion", id="api-version"
        ),
        pytest.param({**v1({"defaultBackend": backend()}), "metadata": {}}, "metadata.name", id="no-name"),
    ],
)
def test_invalid_objects_name_the_field(obj: dict[str, Any], field: str) -> None:
    errors = errors_of(obj)
    assert any(field in e for e in errors), errors


def test_every_error_is_reported_at_once() -> None:
    obj = v1(
        {
            "rules": [
                {
                    "host": "UPPER.example.com",
                    "http": {
                        "paths": [
                            {"path": "rel", "pathType": "Prefix", "backend": backend()},
                            {"path": "/", "pathType": "Bogus", "backend": backend()},
                        ]
                    },
                }
            ]
        }
    )
    with pytest.raises(InvalidObject) as info:
        read_ingress(obj)
    fields = [e.split(":")[0] for e in info.value.errors]
    assert fields == [
        "spec.rules[0].host",
        "spec.rules[0].http.paths[0].path",
        "spec.rules[0].http.paths[1].pathType",
    ]
    assert str(info.value) == "; ".join(info.value.errors)


@pytest.mark.parametrize(
    "host", ["foo.example.com", "*.example.com", "a", "xn--bcher-kva.example", "1-2.example"]
)
def test_valid_hosts(host: str) -> None:
    assert read_ingress(v1(one_path(host=host))).rules[0].host == host
