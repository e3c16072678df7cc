"""The resource types the test server serves, and the discovery documents that list them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class Resource:
    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    status: bool = False  # has a status subresource: PUT/PATCH on the object leave status alone

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """`ingresses.networking.k8s.io`, as the API server names a resource in messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


def _r(group: str, version: str, plural: str, kind: str, **kw: Any) -> Resource:
    return Resource(group=group, version=version, plural=plural, kind=kind, **kw)


BUILTIN = (
    _r("", "v1", "namespaces", "Namespace", namespaced=False, status=True),
    _r("", "v1", "nodes", "Node", namespaced=False, status=True),
    _r("", "v1", "pods", "Pod", status=True),
    _r("", "v1", "services", "Service", status=True),
    _r("", "v1", "endpoints", "Endpoints"),
    _r("", "v1", "secrets", "Secret"),
    _r("", "v1", "configmaps", "ConfigMap"),
    _r("", "v1", "events", "Event"),
    _r("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice"),
    _r("networking.k8s.io", "v1", "ingresses", "Ingress", status=True),
    _r("networking.k8s.io", "v1", "ingressclasses", "IngressClass", namespaced=False),
    _r("coordination.k8s.io", "v1", "leases", "Lease"),
    _r("events.k8s.io", "v1", "events", "Event"),
)

# Served only when a test "installs the CRDs" (KubeAPI(crds=...)), by API group.
CRDS: dict[str, tuple[Resource, ...]] = {
    "gateway.networking.k8s.io": (
        _r(
            "gateway.networking.k8s.io", "v1", "gatewayclasses", "GatewayClass", namespaced=False, status=True
        ),
        _r("gateway.networking.k8s.io", "v1", "gateways", "Gateway", status=True),
        _r("gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute", status=True),
        _r("gateway.networking.k8s.io", "v1beta1", "referencegrants", "ReferenceGrant"),
    ),
    "traefik.io": (
        _r("traefik.io", "v1alpha1", "middlewares", "Middleware"),
        _r("traefik.io", "v1alpha1", "tlsoptions", "TLSOption"),
    ),
    "traefik.containo.us": (
        _r("traefik.containo.us", "v1alpha1", "middlewares", "Middleware"),
        _r("traefik.containo.us", "v1alpha1", "tlsoptions", "TLSOption"),
    ),
}

VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]


def served(crds: frozenset[str]) -> tuple[Resource, ...]:
    unknown = crds - CRDS.keys()
    if unknown:
        raise ValueError(f"no such CRD group in the test server: {sorted(unknown)}")
    return BUILTIN + tuple(r for group in sorted(crds) for r in CRDS[group])


def api_versions() -> dict[str, Any]:
    return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}


def api_group_list(resources: tuple[Resource, ...]) -> dict[str, Any]:
    groups: dict[str, list[str]] = {}
    for r in resources:
        if r.group and r.version not in groups.setdefault(r.group, []):
            groups[r.group].append(r.version)
    items = []
    for name, versions in groups.items():
        entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
        items.append({"name": name, "versions": entries, "preferredVersion": entries[0]})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": items}


def api_resource_list(resources: tuple[Resource, ...], group_version: str) -> dict[str, Any] | None:
    mine = [r for r in resources if r.api_version == group_version]
    if not mine:
        return None
    out = []
    for r in mine:
        out.append(
            {
                "name": r.plural,
                "singularName": r.kind.lower(),
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": VERBS,
            }
        )
        if r.status:
            out.append(
                {
                    "name": f"{r.plural}/status",
                    "singularName": "",
                    "namespaced": r.namespaced,
                    "kind": r.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": out}
