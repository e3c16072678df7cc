"""Service port -> ready endpoints, the way kube-proxy and Traefik find pods.

The Service port is found by number or name; its endpoints come from `discovery.k8s.io/v1`
EndpointSlices labelled with the Service name (only ready endpoints, slice port matched by the
Service port's name, so `targetPort` is what the slice already carries), or from the legacy `v1`
Endpoints object when no slice exists. `ExternalName` Services are proxied to the DNS name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from passerelle.kube.annotations.service import backend_scheme
from passerelle.kube.objects import BackendRef
from passerelle.kube.shapes import MALFORMED, items, mapping, text
from passerelle.kube.snapshot import ClusterSnapshot
from passerelle.model import Server

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


class BackendError(LookupError):
    """The backend names something that does not exist: a Problem, and 503 for its requests."""


def service_key(namespace: str, ref: BackendRef, scheme: str = "http") -> str:
    # '/' and ':' cannot occur in namespace or Service names, so distinct backends never share a key
    # (with '-' as separator, team-a/web and team/a-web would both be "team-a-web-80"). Nor can '+'
    # occur in a port name: one Service port spoken to in h2c and in HTTP/1.1 (Traefik 1.7's
    # `protocol` is an Ingress annotation) gets two keys.
    key = f"{namespace}/{ref.service}:{ref.port}"
    return key if scheme == "http" else f"{key}+{scheme}"


Answer = tuple[Server, ...] | BackendError
# What an answer was computed from: the Service, its slices and its Endpoints object, as objects.
Inputs = tuple[Mapping[str, Any] | None, tuple[Mapping[str, Any], ...], Mapping[str, Any] | None]


class Backends:
    """Resolves backends against one snapshot; slices are indexed once, answers cached per ref.

    `memo` holds the answers of the previous snapshot with the objects they were computed from.
    Providers hand over the same (never mutated) dict for an object that did not change, so an
    answer whose objects are all the same ones is reused without being computed again: at 10,000
    Services that is most of what a translation costs. `memo_next` is the memo for the next one.
    """

    def __init__(
        self,
        snapshot: ClusterSnapshot,
        memo: dict[tuple[str, BackendRef], tuple[Inputs, Answer]] | None = None,
        slices: Mapping[tuple[str, str], Sequence[Mapping[str, Any]]] | None = None,
    ) -> None:
        """`slices`: the snapshot's EndpointSlices by (namespace, Service), when the caller keeps
        that index up to date itself (kube/incremental.py); otherwise it is built here."""
        self._snapshot = snapshot
        self._slices: Mapping[tuple[str, str], Sequence[Mapping[str, Any]]] = (
            slice_index(snapshot.of_kind("EndpointSlice")) if slices is None else slices
        )
        self._memo = memo or {}
        self.memo_next: dict[tuple[str, BackendRef], tuple[Inputs, Answer]] = {}

    def annotations(self, namespace: str, name: str) -> Mapping[str, str]:
        """A Service's annotations (empty when it, or they, are missing or malformed)."""
        service = self._snapshot.get("Service", namespace, name)
        return mapping(mapping(mapping(service).get("metadata")).get("annotations"))

    def scheme(self, namespace: str, ref: BackendRef) -> tuple[str | None, str | None]:
        """The scheme the Service `ref` names asks for (its annotations, else the port's
        `appProtocol`; None: it asks nothing), and what is wrong with the annotation, if anything
        (annotations/service.py)."""
        service = self._snapshot.get("Service", namespace, ref.service)
        port = _service_port(mapping(mapping(service).get("spec")), ref)
        app_protocol = None if port is None else port.get("appProtocol")
        return backend_scheme(self.annotations(namespace, ref.service), app_protocol)

    def resolve(self, namespace: str, ref: BackendRef) -> tuple[Server, ...]:
        """The ready servers behind `ref`; raises BackendError if the Service or its port is missing."""
        key = (namespace, ref)
        known = self.memo_next.get(key)
        if known is None:
            service = self._snapshot.get("Service", namespace, ref.service)
            slices = tuple(self._slices.get((namespace, ref.service), ()))
            endpoints = None if slices else self._snapshot.get("Endpoints", namespace, ref.service)
            inputs = (service, slices, endpoints)
            known = self._memo.get(key)
            if known is None or not _same(known[0], inputs):
                try:
                    answer: Answer = self._resolve(namespace, ref, service, slices, endpoints)
                except BackendError as e:
                    answer = e
                except MALFORMED as e:  # a field of the wrong type where the API has a schema
                    answer = BackendError(
                        f"Service {namespace}/{ref.service} or its endpoints are malformed: {e!r}"
                    )
                known = (inputs, answer)
            self.memo_next[key] = known
        found = known[1]
        if isinstance(found, BackendError):
            raise found
        return found

    def _resolve(
        self,
        namespace: str,
        ref: BackendRef,
        service: Mapping[str, Any] | None,
        slices: tuple[Mapping[str, Any], ...],
        endpoints: Mapping[str, Any] | None,
    ) -> tuple[Server, ...]:
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
            if slices:
                servers = _from_slices(slices, port_name, port.get("targetPort"))
            else:
                servers = _from_endpoints(endpoints, port_name)
        except (TypeError, ValueError) as e:
            raise BackendError(f"endpoints of Service {namespace}/{ref.service} are malformed: {e}") from e
        return tuple(sorted(set(servers)))


def slice_owner(eps: Mapping[str, Any]) -> tuple[str, str] | None:
    """(namespace, Service name) of an EndpointSlice, from its kubernetes.io/service-name label."""
    meta = mapping(eps.get("metadata"))
    owner = text(mapping(meta.get("labels")).get(SERVICE_NAME_LABEL))
    return (text(meta.get("namespace")) or "default", owner) if owner else None


def slice_index(slices: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], list[Mapping[str, Any]]]:
    """EndpointSlices by (namespace, Service), each list in the order given."""
    out: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for eps in slices:
        owner = slice_owner(eps)
        if owner is not None:
            out.setdefault(owner, []).append(eps)
    return out


def _same(before: Inputs, now: Inputs) -> bool:
    """The very same objects (identity, not equality: comparing dicts would cost what it saves)."""
    return (
        before[0] is now[0]
        and before[2] is now[2]
        and len(before[1]) == len(now[1])
        and all(a is b for a, b in zip(before[1], now[1], strict=True))
    )


def _service_port(spec: Mapping[str, Any], ref: BackendRef) -> Mapping[str, Any] | None:
    for port in items(spec.get("ports")):
        if not isinstance(port, Mapping):
            continue
        if isinstance(ref.port, int) and port.get("port") == ref.port:
            return port
        if isinstance(ref.port, str) and port.get("name") == ref.port:
            return port
    return None


def _from_slices(slices: tuple[Mapping[str, Any], ...], port_name: str, target: Any) -> list[Server]:
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
