"""The watch table, collection paths and referenced Secrets; backoff delays."""

from __future__ import annotations

import pytest

from passerelle.backoff import Backoff
from passerelle.kube.kinds import SECRET, WATCHED, secret_references, served_group_versions, watched

BY = {(k.kind, k.group): k for k in WATCHED}


@pytest.mark.parametrize(
    ("kind", "group", "namespace", "path"),
    [
        ("Ingress", "networking.k8s.io", "", "/apis/networking.k8s.io/v1/ingresses"),
        ("Ingress", "networking.k8s.io", "web", "/apis/networking.k8s.io/v1/namespaces/web/ingresses"),
        ("Service", "", "web", "/api/v1/namespaces/web/services"),
        ("Node", "", "web", "/api/v1/nodes"),  # cluster-scoped: no namespace in the path
        ("Middleware", "traefik.containo.us", "", "/apis/traefik.containo.us/v1alpha1/middlewares"),
    ],
)
def test_paths(kind: str, group: str, namespace: str, path: str) -> None:
    assert BY[(kind, group)].path(namespace) == path


def test_params_select_tls_secrets_and_label_ingresses_only() -> None:
    assert BY[("Secret", "")].params("app=x") == {"fieldSelector": "type=kubernetes.io/tls"}
    assert BY[("Ingress", "networking.k8s.io")].params("app=x") == {"labelSelector": "app=x"}
    assert BY[("Service", "")].params("app=x") == {}
    assert SECRET.params(name="ca") == {"fieldSelector": "metadata.name=ca"}


def test_crd_kinds_are_watched_only_when_served() -> None:
    apis = {"groups": [{"name": "traefik.io", "versions": [{"groupVersion": "traefik.io/v1alpha1"}]}]}
    kinds = {(k.kind, k.group) for k in watched(served_group_versions(apis))}
    assert ("Middleware", "traefik.io") in kinds and ("Middleware", "traefik.containo.us") not in kinds
    assert ("Gateway", "gateway.networking.k8s.io") not in kinds and ("Ingress", "networking.k8s.io") in kinds


def test_secret_references() -> None:
    ingresses = [
        {
            "metadata": {"name": "a", "namespace": "web"},
            "spec": {"tls": [{"secretName": "cert"}, {"hosts": ["x"]}]},
        },
        {"metadata": {"name": "b"}, "spec": {"tls": [{"secretName": "other"}]}},
        {"metadata": {"name": "c"}, "spec": {"tls": "garbage"}},
    ]
    assert secret_references(ingresses, ["ops/ca", "bad"]) == {
        ("web", "cert"),
        ("default", "other"),
        ("ops", "ca"),
    }


def test_tls_option_ca_secrets_are_references_in_their_namespace() -> None:
    options = [
        {
            "metadata": {"name": "mtls", "namespace": "team"},
            "spec": {"clientAuth": {"secretNames": ["ca", ""]}},
        },
        {"metadata": {"name": "plain"}, "spec": {"clientAuth": "garbage"}},
        {"metadata": {"name": "other"}, "spec": {"clientAuth": {"secretNames": "ca"}}},
        {"metadata": {"name": "none"}},
    ]
    assert secret_references([], [], options) == {("team", "ca")}


@pytest.mark.parametrize(
    ("attempt", "draw", "delay"),
    [(0, 0.0, 0.125), (0, 1.0, 0.25), (3, 0.5, 1.5), (10, 1.0, 30.0), (500, 0.0, 15.0)],
)
def test_backoff_doubles_with_jitter_up_to_its_cap(attempt: int, draw: float, delay: float) -> None:
    assert Backoff(base=0.25, cap=30).delay(attempt, draw) == pytest.approx(delay)
