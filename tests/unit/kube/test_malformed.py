"""Malformed objects never stop translation: whatever a manifest file holds (the API server's schema
would refuse most of these, files have no schema), translate() returns a configuration and
Problems, and the well-formed objects beside the broken ones are still served.

The objects are valid ones of every kind passerelle reads with one field replaced by arbitrary
JSON-like data (hypothesis), at any depth, so every reader meets a wrong type where it expects
a mapping, a list, a string or a number; those whose metadata a provider would refuse are left
out, as the provider leaves them out (with a Problem of its own).
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from passerelle.kube.gateway import CONTROLLER_NAME
from passerelle.kube.incremental import Translator as Incremental
from passerelle.kube.ingress import IngressOptions, translate
from passerelle.kube.placement import EntryPointInfo
from passerelle.kube.shapes import not_an_object
from passerelle.kube.snapshot import ClusterSnapshot

OPTIONS = IngressOptions(
    entrypoints=(EntryPointInfo(name="web", port=80), EntryPointInfo(name="websecure", tls=True, port=443))
)
GW = "gateway.networking.k8s.io/v1"
BACKEND = {"service": {"name": "app", "port": {"number": 80}}}
VALID: list[dict[str, Any]] = [
    {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "i", "namespace": "n",
     "annotations": {"ingress.kubernetes.io/rule-type": "PathPrefixStrip",
                     "traefik.ingress.kubernetes.io/router.middlewares": "n-m@kubernetescrd",
                     "ingress.kubernetes.io/whitelist-source-range": "10.0.0.0/8"}},
     "spec": {"ingressClassName": "passerelle", "tls": [{"hosts": ["a.test"], "secretName": "s"}],
              "rules": [{"host": "a.test", "http": {"paths": [{"path": "/x", "pathType": "Prefix", "backend": BACKEND}]}}],
              "defaultBackend": BACKEND}},
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "app", "namespace": "n",
     "annotations": {"traefik.ingress.kubernetes.io/service.serversscheme": "h2c"}},
     "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080, "appProtocol": "kubernetes.io/h2c"}]}},
    {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
     "metadata": {"name": "app-1", "namespace": "n", "labels": {"kubernetes.io/service-name": "app"}},
     "ports": [{"name": "http", "port": 8080}], "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": True}}]},
    {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "app", "namespace": "n"},
     "subsets": [{"addresses": [{"ip": "10.0.0.2"}], "ports": [{"name": "http", "port": 8080}]}]},
    {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls", "metadata": {"name": "s", "namespace": "n"},
     "data": {"tls.crt": "bm90IGEgY2VydA==", "tls.key": "bm90IGEga2V5"}},
    {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "passerelle"},
     "spec": {"controller": "passerelle.io/ingress-controller"}},
    {"apiVersion": "traefik.io/v1alpha1", "kind": "Middleware", "metadata": {"name": "m", "namespace": "n"},
     "spec": {"chain": {"middlewares": [{"name": "h"}]}}},
    {"apiVersion": "traefik.io/v1alpha1", "kind": "Middleware", "metadata": {"name": "h", "namespace": "n"},
     "spec": {"headers": {"customRequestHeaders": {"X-A": "1"}, "frameDeny": True}}},
    {"apiVersion": "traefik.io/v1alpha1", "kind": "TLSOption", "metadata": {"name": "o", "namespace": "n"},
     "spec": {"minVersion": "VersionTLS12", "clientAuth": {"secretNames": ["s"], "clientAuthType": "VerifyClientCertIfGiven"}}},
    {"apiVersion": GW, "kind": "GatewayClass", "metadata": {"name": "gc"}, "spec": {"controllerName": CONTROLLER_NAME}},
    {"apiVersion": GW, "kind": "Gateway", "metadata": {"name": "g", "namespace": "n"},
     "spec": {"gatewayClassName": "gc", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP",
              "allowedRoutes": {"namespaces": {"from": "All"}}}]}},
    {"apiVersion": GW, "kind": "HTTPRoute", "metadata": {"name": "r", "namespace": "n"},
     "spec": {"parentRefs": [{"name": "g"}], "hostnames": ["b.test"], "rules": [
         {"matches": [{"path": {"type": "PathPrefix", "value": "/"}, "headers": [{"name": "v", "value": "1"}]}],
          "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "X", "value": "1"}]}}],
          "backendRefs": [{"name": "app", "port": 80, "weight": 1}]}]}},
    {"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant", "metadata": {"name": "rg", "namespace": "n"},
     "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "n"}],
              "to": [{"group": "", "kind": "Service"}]}},
]  # fmt: skip

junk = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.text(max_size=12)
    | st.just("")
    | st.just("/"),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON-like value, as a path of keys and indices (metadata names kept)."""
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            if prefix == () and key in ("apiVersion", "kind"):
                continue  # another kind is another object, not a broken one
            if prefix == ("metadata",) and key in ("name", "namespace"):
                continue  # the key of the object, which the snapshot checks before anything reads it
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out += _paths(item, (*prefix, i))
    return out


@st.composite
def broken(draw: st.DrawFn) -> tuple[int, dict[str, Any]]:
    """(which object, that object with one place replaced by junk)."""
    which = draw(st.integers(0, len(VALID) - 1))
    obj = copy.deepcopy(VALID[which])
    path = draw(st.sampled_from(_paths(obj)[1:]))
    target: Any = obj
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = draw(junk)
    return which, obj


_BAD_SCHEME = {
    **VALID[1],
    "metadata": {
        "name": "app",
        "namespace": "n",
        "annotations": {"traefik.ingress.kubernetes.io/service.serversscheme": ""},
    },
}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(broken(), min_size=1, max_size=3))
@example([(1, _BAD_SCHEME)])  # found once: both an Ingress and an HTTPRoute meet the Service's bad annotation
def test_malformed_objects_are_problems_not_crashes(cases: list[tuple[int, dict[str, Any]]]) -> None:
    objects = list(copy.deepcopy(VALID))
    for which, obj in cases:
        objects[which] = obj
    # what a provider hands over: the manifests provider reports and drops a document that is not
    # an object as the API server would give it (kube/shapes.py); the rest is any JSON
    objects = [obj for obj in objects if not_an_object(obj) is None]
    snapshot = ClusterSnapshot.of(objects)
    config, problems = translate(snapshot, OPTIONS)
    assert all(p.message for p in problems)
    assert Incremental(OPTIONS).translate(snapshot) == (config, problems)  # what `run` uses


def test_the_valid_objects_are_served() -> None:
    config, _ = translate(ClusterSnapshot.of(VALID), OPTIONS)
    assert {r.host for r in config.routers} >= {"a.test", "b.test"}
