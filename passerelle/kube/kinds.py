"""What the live provider lists and watches, as a table, and the collection paths it asks for (pure).

Every kind translation reads is here. Secrets are the exception to "watch the whole kind": only
`kubernetes.io/tls` ones are watched across the cluster (a field selector), and each other Secret
the configuration or an Ingress names is read alone by a periodic GET (secrets.py), so
the provider never holds every Secret of a cluster in memory. Kinds whose CRDs may be missing
(Gateway API, Traefik's two API groups) are watched only when discovery lists their group.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from passerelle.kube.snapshot import Object

TLS_SECRETS = "type=kubernetes.io/tls"


@dataclass(frozen=True, slots=True, kw_only=True)
class Kind:
    api_version: str  # "v1", "networking.k8s.io/v1"
    plural: str
    kind: str
    namespaced: bool = True
    field_selector: str = ""
    labelled: bool = False  # providers.kubernetes.labelSelector applies (Ingresses, as in Traefik)
    crd: str = ""  # the API group that must be served for this kind to be watched

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    def path(self, namespace: str = "") -> str:
        """The collection path: all namespaces when `namespace` is empty."""
        prefix = f"/apis/{self.api_version}" if "/" in self.api_version else f"/api/{self.api_version}"
        if namespace and self.namespaced:
            return f"{prefix}/namespaces/{namespace}/{self.plural}"
        return f"{prefix}/{self.plural}"

    def params(self, label_selector: str = "", name: str = "") -> dict[str, str]:
        fields = [f for f in (self.field_selector, f"metadata.name={name}" if name else "") if f]
        out = {"fieldSelector": ",".join(fields)} if fields else {}
        if self.labelled and label_selector:
            out["labelSelector"] = label_selector
        return out


def _k(api_version: str, plural: str, kind: str, **kw: object) -> Kind:
    return Kind(api_version=api_version, plural=plural, kind=kind, **kw)  # type: ignore[arg-type]


SECRET = _k("v1", "secrets", "Secret")
# The router's own pods, in its namespace (Ingress status and DNS sync: which nodes run a ready one)
POD = _k("v1", "pods", "Pod", labelled=True)
WATCHED = (
    _k("networking.k8s.io/v1", "ingresses", "Ingress", labelled=True),
    _k("networking.k8s.io/v1", "ingressclasses", "IngressClass", namespaced=False),
    _k("v1", "services", "Service"),
    _k("discovery.k8s.io/v1", "endpointslices", "EndpointSlice"),
    _k("v1", "secrets", "Secret", field_selector=TLS_SECRETS),
    _k("v1", "nodes", "Node", namespaced=False),
    _k("v1", "namespaces", "Namespace", namespaced=False),  # their labels: Gateway allowedRoutes selectors
    _k("gateway.networking.k8s.io/v1", "gatewayclasses", "GatewayClass", namespaced=False, crd="gateway.networking.k8s.io"),
    _k("gateway.networking.k8s.io/v1", "gateways", "Gateway", crd="gateway.networking.k8s.io"),
    _k("gateway.networking.k8s.io/v1", "httproutes", "HTTPRoute", crd="gateway.networking.k8s.io"),
    _k("gateway.networking.k8s.io/v1beta1", "referencegrants", "ReferenceGrant", crd="gateway.networking.k8s.io"),
    _k("traefik.io/v1alpha1", "middlewares", "Middleware", crd="traefik.io"),
    _k("traefik.io/v1alpha1", "tlsoptions", "TLSOption", crd="traefik.io"),
    _k("traefik.containo.us/v1alpha1", "middlewares", "Middleware", crd="traefik.containo.us"),
    _k("traefik.containo.us/v1alpha1", "tlsoptions", "TLSOption", crd="traefik.containo.us"),
)  # fmt: skip


def served_group_versions(api_group_list: Mapping[str, object]) -> frozenset[str]:
    """The `group/version`s an /apis answer (APIGroupList) lists."""
    out = set()
    for group in api_group_list.get("groups") or []:  # type: ignore[attr-defined]
        for version in group.get("versions") or []:
            out.add(str(version.get("groupVersion")))
    return frozenset(out)


def watched(served: frozenset[str]) -> tuple[Kind, ...]:
    """The kinds to watch, given the group/versions the server serves (core kinds always)."""
    return tuple(k for k in WATCHED if not k.crd or k.api_version in served)


def secret_references(
    ingresses: Iterable[Object], configured: Iterable[str], tls_options: Iterable[Object] = ()
) -> frozenset[tuple[str, str]]:
    """(namespace, name) of every Secret named by an Ingress's spec.tls, by a TLSOption's
    clientAuth.secretNames (CA bundles, in its namespace), or by the static configuration
    (`namespace/name` strings: TLS options' caSecret, the default certificate)."""
    out: set[tuple[str, str]] = set()
    for option in tls_options:
        namespace = (option.get("metadata") or {}).get("namespace") or "default"
        auth = (option.get("spec") or {}).get("clientAuth")
        names = auth.get("secretNames") if isinstance(auth, dict) else None
        if isinstance(names, list):
            out.update((namespace, n) for n in names if isinstance(n, str) and n)
    for name in configured:
        namespace, _, secret = name.partition("/")
        if namespace and secret:
            out.add((namespace, secret))
    for ingress in ingresses:
        namespace = (ingress.get("metadata") or {}).get("namespace") or "default"
        for tls in (ingress.get("spec") or {}).get("tls") or []:
            if isinstance(tls, dict) and isinstance(tls.get("secretName"), str) and tls["secretName"]:
                out.add((namespace, tls["secretName"]))
    return frozenset(out)
