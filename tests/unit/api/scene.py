"""One small cluster, translated as `run` would, shared by the api unit tests.

Entry points `web` (plain, 80) and `websecure` (TLS, 443); TLS options `default` and `modern`.
Ingresses: shop (plain; Prefix /cart, Exact /exact), secure (spec.tls), wild (`*.wild.example.com`,
spec.tls), redirected (passerelle.io/ssl-redirect), guarded (spec.tls, TLS option `modern`), empty
(a Service without endpoints), fallback (a default backend, plain).
"""

from __future__ import annotations

import base64
import ssl
from typing import Any

import trustme

from passerelle.api.context import Context
from passerelle.api.views import VersionView
from passerelle.kube.ingress import IngressOptions, translate
from passerelle.kube.placement import EntryPointInfo
from passerelle.kube.snapshot import ClusterSnapshot
from passerelle.kube.tls import TlsTranslation
from passerelle.model import DynamicConfig
from passerelle.proxy.options import EntryPointOptions
from passerelle.tls.contexts import TlsStatic
from passerelle.tls.options import TlsOptions
from passerelle.tls.store import generate_default

CA = trustme.CA()
ENTRYPOINTS = (
    EntryPointOptions(name="web", host="", port=80),
    EntryPointOptions(name="websecure", host="", port=443, tls=True, tls_options="default"),
)
STATIC = TlsStatic(
    options={
        "default": TlsOptions(name="default"),
        "modern": TlsOptions(name="modern", min_version=ssl.TLSVersion.TLSv1_3),
    },
    default_certificate=generate_default(),
)
CONTEXT = Context(entrypoints=ENTRYPOINTS, tls=STATIC)


def secret(name: str, *hosts: str) -> dict[str, Any]:
    leaf = CA.issue_cert(*hosts)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {"name": name, "namespace": "default"},
        "data": {
            "tls.crt": base64.b64encode(leaf.cert_chain_pems[0].bytes()).decode(),
            "tls.key": base64.b64encode(leaf.private_key_pem.bytes()).decode(),
        },
    }


def backend(service: str) -> dict[str, Any]:
    return {"service": {"name": service, "port": {"name": "http"}}}


def ingress(name: str, host: str | None, paths: list[tuple[str, str]], *, tls: str = "", service: str = "web",
            annotations: dict[str, str] | None = None) -> dict[str, Any]:  # fmt: skip
    spec: dict[str, Any] = {
        "rules": [
            {
                **({"host": host} if host else {}),
                "http": {
                    "paths": [{"path": p, "pathType": t, "backend": backend(service)} for p, t in paths]
                },
            }
        ]
    }
    if tls:
        spec["tls"] = [{"hosts": [host], "secretName": tls}]
    meta: dict[str, Any] = {"name": name, "namespace": "default", "annotations": annotations or {}}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta, "spec": spec}


def objects() -> list[dict[str, Any]]:
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"ports": [{"name": "http", "port": 80}]},
    }
    empty = {**service, "metadata": {"name": "empty", "namespace": "default"}}
    slice_ = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "web-1",
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": "web"},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080}],
        "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": True}}],
    }
    fallback = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "fallback", "namespace": "default"},
        "spec": {"defaultBackend": backend("web")},
    }
    return [
        service, empty, slice_,
        secret("secure-tls", "secure.example.com", "guarded.example.com"),
        secret("wild-tls", "*.wild.example.com"),
        ingress("shop", "shop.example.com", [("/cart", "Prefix"), ("/exact", "Exact")]),
        ingress("secure", "secure.example.com", [("/", "Prefix")], tls="secure-tls"),
        ingress("wild", "*.wild.example.com", [("/", "Prefix")], tls="wild-tls"),
        ingress("redirected", "redirect.example.com", [("/", "Prefix")], tls="secure-tls",
                annotations={"passerelle.io/ssl-redirect": "true"}),
        ingress("guarded", "guarded.example.com", [("/", "Prefix")], tls="secure-tls",
                annotations={"passerelle.io/tls-options": "modern"}),
        ingress("empty", "empty.example.com", [("/", "Prefix")], service="empty"),
        fallback,
    ]  # fmt: skip


OPTIONS = IngressOptions(
    entrypoints=(EntryPointInfo(name="web", port=80), EntryPointInfo(name="websecure", tls=True, port=443)),
    tls=TlsTranslation(options=frozenset({"default", "modern"})),
)


def translated() -> tuple[DynamicConfig, list[Any]]:
    return translate(ClusterSnapshot.of(objects()), OPTIONS)


def view() -> VersionView:
    config, problems = translated()
    origins = {("Ingress", "default", "shop"): "shop.yaml:1"}
    return VersionView(number=7, config=config, problems=problems, origins=origins, context=CONTEXT)
