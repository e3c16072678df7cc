"""Service port -> ready endpoints, the way kube-proxy and Traefik find pods.

The Service port is found by number or name; its endpoints come from `discovery.k8s.io/v1`
EndpointSlices labelled with the Service name (only ready endpoints, slice port matched by the
Service port's name, so `targetPort` is what the slice already carries), or from the legacy `v1`
Endpoints object when no slice exists. `ExternalName` Services are proxied to the DNS name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from passerelle.kube.objects import BackendRef
from passerelle.kube.snapshot import ClusterSnapshot
from passerelle.model import Server

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


class BackendError(LookupError):
    """The backend names something that does not exist: a Problem, and 503 for its requests."""


def service_key(namespace: str, ref: BackendRef) -> str:
    # '/' and ':' cannot occur in namespace or Service names, so distinct backends never share a key
    # (with '-' as separator, team-a/web and team/a-web would both be "team-a-web-80").
    return f"{namespace}/{ref.service}:{ref.port}"


class Backends:
    """Resolves backends against one snapshot; slices are indexed once, answers cached per ref."""

    def __init__(self, snapshot: ClusterSnapshot) -> None:
        self._snapshot = snapshot
        self._slices: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
        for eps in snapshot.of_kind("EndpointSlice"):
            meta = eps.get("metadata") or {}
            owner = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
            if owner:
                self._slices.setdefault((meta.get("namespace") or "default", owner), []).append(eps)
        self._cache: dict[tuple[str, BackendRef], tuple[Server, ...] | BackendError] = {}

    def resolve(self, namespace: str, ref: BackendRef) -> tuple[Server, ...]:
        """The ready servers behind `ref`; raises BackendError if the Service or its port is missing."""
        key = (namespace, ref)
        if key not in self._cache:
            try:
                self._cache[key] = self._resolve(namespace, ref)
            except BackendError as e:
                self._cache[key] = e
        found = self._cache[key]
        if isinstance(found, BackendError):
            raise found
        return found

    def _resolve(self, namespace: str, ref: BackendRef) -> tuple[Server, ...]:
        service = self._snapshot.get("Service", namespace, ref.service)
        if service is None:
            raise BackendError(f"Service {namespace}/{ref.service} not found")
        spec = service.get("spec") or {}
        port = _service_port(spec, ref)
        if port is None:
            raise BackendError(f"Service {namespace}/{ref.service} has no port {ref.port!r}")
        try:
            if spec.get("type") == "ExternalName":
                target = port.get("targetPort")
                number = target if isinstance(target, int) else port.get("port")
                if number is None:
                    raise BackendError(f"Service {namespace}/{ref.service} port {ref.port!r} has no number")
                return (Server(host=str(spec.get("externalName", "")), port=int(number)),)
            port_name = port.get("name") or ""
            slices = self._slices.get((namespace, ref.service))
            if slices:
                servers = _from_slices(slices, port_name, port.get("targetPort"))
            else:
                servers = _from_endpoints(self._snapshot.get("Endpoints", namespace, ref.service), port_name)
        except (TypeError, ValueError) as e:
            raise BackendError(f"endpoints of Service {namespace}/{ref.service} are malformed: {e}") from e
        return tuple(sorted(set(servers)))


def _service_port(spec: Mapping[str, Any], ref: BackendRef) -> Mapping[str, Any] | None:
    port: Mapping[str, Any]
    for port in spec.get("ports") or []:
        if isinstance(ref.port, int) and port.get("port") == ref.port:
            return port
        if isinstance(ref.port, str) and port.get("name") == ref.port:
            return port
    return None


def _from_slices(slices: list[Mapping[str, Any]], port_name: str, target: Any) -> list[Server]:
    servers = []
    for eps in slices:
        number = None
        for p in eps.get("ports") or []:
            if (p.get("name") or "") == port_name:
                number = p.get("port")
                break
        if number is None and isinstance(target, int):
            number = target  # a slice port without a number means "all ports": the targetPort
        if number is None:
            continue
        for endpoint in eps.get("endpoints") or []:
            # conditions.ready: nil means ready (discovery.k8s.io/v1 EndpointConditions).
            if (endpoint.get("conditions") or {}).get("ready") is False:
                continue
            addresses = endpoint.get("addresses") or []
            if addresses:  # all addresses of one endpoint are fungible: use the first
                servers.append(Server(host=str(addresses[0]), port=int(number)))
    return servers


def _from_endpoints(endpoints: Mapping[str, Any] | None, port_name: str) -> list[Server]:
    servers: list[Server] = []
    for subset in (endpoints or {}).get("subsets") or []:
        ports = subset.get("ports") or []
        numbers = [p.get("port") for p in ports if (p.get("name") or "") == port_name]
        if not numbers and len(ports) == 1 and not (port_name and ports[0].get("name")):
            # One port, and names cannot be compared (one side unnamed): it is that port. A subset
            # whose only port is named otherwise lacks ours (pods without that container port).
            numbers = [ports[0].get("port")]
        for number in numbers:
            for address in subset.get("addresses") or []:  # notReadyAddresses are not served
                servers.append(Server(host=str(address.get("ip")), port=int(number)))
    return servers
