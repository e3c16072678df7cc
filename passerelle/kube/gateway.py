"""Gateway API (v1, Standard channel) -> routers, services and middlewares: part of translate().

GatewayClasses whose `spec.controllerName` is passerelle's (`GatewayOptions.controller`) make
their Gateways ours. Each listener (HTTP, or HTTPS terminating TLS) is placed on entry points by
port (gateway_attach.py). HTTPRoutes attach through their parentRefs to the listeners that allow
them, for the hostnames both accept, and each rule becomes routers (gateway_rules.py) that the
route table orders the Gateway API's way (routing/conditional.py). What cannot be served is a
Problem on the object: a listener with no entry point, a parentRef that names no listener or is
not allowed, a backendRef that cannot be followed. Pure: nothing here performs I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from passerelle.kube.backends import Backends
from passerelle.kube.gateway_attach import (
    Outcome,
    Outcomes,
    allowed_kinds,
    allows_namespace,
    granted,
    intersect,
    place_listener,
    shadowed,
)
from passerelle.kube.gateway_objects import (
    API_VERSIONS,
    PROTOCOLS,
    GatewaySpec,
    Grant,
    Listener,
    ParentRef,
    RouteSpec,
    read_gateway,
    read_grants,
    read_route,
)
from passerelle.kube.gateway_rules import Attachment, RuleBuilder
from passerelle.kube.names import UniqueNames
from passerelle.kube.objects import InvalidObject
from passerelle.kube.placement import EntryPointInfo
from passerelle.kube.snapshot import ClusterSnapshot, Object, key_of
from passerelle.model import Middleware, ObjectRef, Report, Router, Service, Severity

CONTROLLER_NAME = "passerelle.io/gateway-controller"  # the GatewayClass controllerName served by default


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayOptions:
    """controller: the GatewayClass controllerName that is passerelle's.
    listeners: (port, entry point, "namespace/name" of a Gateway or "") placements (settings/gateway.py)."""

    controller: str = CONTROLLER_NAME
    listeners: tuple[tuple[int, str, str], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayTranslation:
    """What the Gateway API objects make; `secrets`: (Gateway, where, namespace, name) of the
    Secrets HTTPS listeners name, for tls.py to read into certificates."""

    routers: tuple[Router, ...] = ()
    services: tuple[Service, ...] = ()
    middlewares: tuple[Middleware, ...] = ()
    secrets: tuple[tuple[ObjectRef, str, str, str], ...] = ()
    outcomes: Outcomes = field(default_factory=lambda: Outcomes())


@dataclass(frozen=True, slots=True)
class _Placed:
    gateway: GatewaySpec
    listener: Listener
    entrypoints: tuple[EntryPointInfo, ...]


def translate_gateway(
    snapshot: ClusterSnapshot,
    options: GatewayOptions,
    entrypoints: tuple[EntryPointInfo, ...],
    backends: Backends,
    report: Report,
    names: UniqueNames,
) -> GatewayTranslation:
    """Routers, services, middlewares and certificate Secrets of our Gateways' routes; problems
    go to `report`, router names come from `names` (shared with the Ingress routers)."""
    classes = {
        key_of(c)[2]
        for c in snapshot.of_kind("GatewayClass")
        if _spec(c).get("controllerName") == options.controller
    }
    if not classes:
        return GatewayTranslation()
    grants = [g for obj in snapshot.of_kind("ReferenceGrant") for g in read_grants(obj)]
    outcomes = Outcomes()
    secrets: list[tuple[ObjectRef, str, str, str]] = []
    placed: dict[tuple[str, str], list[_Placed]] = {}  # Gateway (namespace, name) -> its listeners
    hosts: dict[str, set[str | None]] = {}  # entry point -> hostnames of the listeners on it
    for obj in snapshot.of_kind("Gateway"):
        if obj.get("apiVersion") not in API_VERSIONS:
            continue
        class_name = _spec(obj).get("gatewayClassName")
        if not isinstance(class_name, str):  # the API server refuses it; a manifest file may hold it
            _, namespace, name = key_of(obj)
            ref = ObjectRef(kind="Gateway", namespace=namespace, name=name)
            report.add(ref, f"not served: spec.gatewayClassName {class_name!r} must name a GatewayClass")
        elif class_name in classes:
            secrets += _place_gateway(obj, options, entrypoints, grants, report, outcomes, placed, hosts)
    routes = []
    for obj in snapshot.of_kind("HTTPRoute"):
        if obj.get("apiVersion") not in API_VERSIONS:
            continue
        _, namespace, name = key_of(obj)
        try:
            route = read_route(obj)
        except InvalidObject as e:
            if _names_ours(obj, placed):
                report.add(ObjectRef(kind="HTTPRoute", namespace=namespace, name=name), f"not served: {e}")
            continue
        routes.append(route)
    routes.sort(key=lambda r: r.age_key)
    builder = RuleBuilder(backends, grants, report, names)
    for route in routes:
        attachments = _attach(route, placed, hosts, snapshot, report, outcomes)
        if attachments:
            builder.add(route, attachments)
    outcomes.resolved = builder.unresolved
    return GatewayTranslation(
        routers=tuple(builder.routers),
        services=tuple(builder.services.values()),
        middlewares=tuple(builder.middlewares.values()),
        secrets=tuple(secrets),
        outcomes=outcomes,
    )


def _certificates(
    ref: ObjectRef, gateway: GatewaySpec, listener: Listener, grants: list[Grant], report: Report
) -> list[tuple[ObjectRef, str, str, str]]:
    """The Secrets an HTTPS listener's certificateRefs may name (a Problem for each it may not)."""
    out = []
    for i, cert in enumerate(listener.certificates):
        where = f"listener {listener.name} tls.certificateRefs[{i}]"
        if cert.group not in ("", "core") or cert.kind != "Secret":
            report.add(ref, f"{where}: only Secrets are supported (InvalidCertificateRef)")
        elif cert.namespace != gateway.namespace and not granted(
            grants,
            from_kind="Gateway",
            from_namespace=gateway.namespace,
            to_namespace=cert.namespace,
            to_group="",
            to_kind="Secret",
            to_name=cert.name,
        ):
            report.add(
                ref,
                f"{where}: Secret {cert.namespace}/{cert.name} is in another namespace and no "
                f"ReferenceGrant there lets Gateways of {gateway.namespace} refer to it (RefNotPermitted)",
            )
        else:
            out.append((ref, where, cert.namespace, cert.name))
    if not listener.certificates:
        why = "an HTTPS listener needs tls.certificateRefs; the default certificate is served"
        report.add(ref, f"listener {listener.name}: {why}", Severity.WARNING)
    return out


def _place_gateway(
    obj: Object,
    options: GatewayOptions,
    entrypoints: tuple[EntryPointInfo, ...],
    grants: list[Grant],
    report: Report,
    outcomes: Outcomes,
    placed: dict[tuple[str, str], list[_Placed]],
    hosts: dict[str, set[str | None]],
) -> list[tuple[ObjectRef, str, str, str]]:
    """Place one of our Gateways' listeners on entry points (into `placed` and `hosts`, outcomes
    into `outcomes`); returns the certificate Secrets its HTTPS listeners may name."""
    secrets: list[tuple[ObjectRef, str, str, str]] = []
    _, namespace, name = key_of(obj)
    ref = ObjectRef(kind="Gateway", namespace=namespace, name=name)
    try:
        gateway = read_gateway(obj)
    except InvalidObject as e:
        report.add(ref, f"not served: {e}")
        return []
    listeners = placed[(namespace, name)] = []
    found = outcomes.listeners[(namespace, name)] = []
    for listener in gateway.listeners:
        problem = _unservable(listener)
        placement = place_listener(listener, f"{namespace}/{name}", entrypoints, options.listeners)
        if problem or placement.problem:
            report.add(ref, f"listener {listener.name} not served: {problem or placement.problem}")
            reason = "UnsupportedProtocol" if problem else "PortUnavailable"
            not_served = Outcome(ok=False, reason=reason, message=problem or placement.problem)
            found.append((listener, not_served, Outcome(ok=True, reason="ResolvedRefs")))
            continue
        listeners.append(_Placed(gateway, listener, placement.entrypoints))
        resolved = Outcome(ok=True, reason="ResolvedRefs")
        if not allowed_kinds(listener):
            report.add(
                ref,
                f"listener {listener.name}: allowedRoutes.kinds does not include HTTPRoute, "
                "the only route kind passerelle serves",
                Severity.WARNING,
            )
            resolved = Outcome(ok=False, reason="InvalidRouteKinds", message="only HTTPRoute is supported")
        if listener.protocol == "HTTPS":
            certificates = _certificates(ref, gateway, listener, grants, report)
            if len(certificates) < len(listener.certificates):
                why = "a certificateRef is not a Secret, or not permitted"
                resolved = Outcome(ok=False, reason="InvalidCertificateRef", message=why)
            secrets += certificates
        found.append((listener, Outcome(ok=True, reason="Programmed"), resolved))
        for ep in placement.entrypoints:
            hosts.setdefault(ep.name, set()).add(listener.hostname)
    programmed = bool(listeners)
    why = "" if programmed else "no listener is served"
    outcomes.gateways[(namespace, name)] = Outcome(
        ok=programmed, reason="Programmed" if programmed else "Invalid", message=why
    )
    return secrets


def _unservable(listener: Listener) -> str:
    if listener.protocol not in PROTOCOLS:
        return f"protocol {listener.protocol!r} is not supported (HTTP and HTTPS are)"
    if listener.protocol == "HTTPS" and listener.tls_mode != "Terminate":
        return f"tls.mode {listener.tls_mode} is not supported for HTTPS (Terminate is)"
    return ""


def _names_ours(obj: Object, placed: Mapping[tuple[str, str], object]) -> bool:
    """Does an (invalid) HTTPRoute name one of our Gateways? Only then is it ours to report."""
    _, namespace, _ = key_of(obj)
    refs = _spec(obj).get("parentRefs")
    return any(
        isinstance(r, Mapping) and (str(r.get("namespace") or namespace), str(r.get("name"))) in placed
        for r in (refs if isinstance(refs, list) else [])
    )


def _attach(
    route: RouteSpec,
    placed: dict[tuple[str, str], list[_Placed]],
    hosts: dict[str, set[str | None]],
    snapshot: ClusterSnapshot,
    report: Report,
    outcomes: Outcomes,
) -> list[Attachment]:
    ref = ObjectRef(kind="HTTPRoute", namespace=route.namespace, name=route.name)
    parents: list[tuple[ParentRef, Outcome]] = []
    namespace = snapshot.get("Namespace", "", route.namespace) or {}
    labels = (namespace.get("metadata") or {}).get("labels") or {}
    out: list[Attachment] = []
    for i, parent in enumerate(route.parents):
        listeners = placed.get((parent.namespace, parent.name))
        if listeners is None:
            continue  # not one of our Gateways (or an invalid one, reported on the Gateway)
        where = f"parentRefs[{i}] (Gateway {parent.namespace}/{parent.name})"
        named = [
            p
            for p in listeners
            if (parent.section is None or p.listener.name == parent.section)
            and (parent.port is None or p.listener.port == parent.port)
        ]
        if not named:
            report.add(ref, f"{where}: no listener matches its sectionName and port (NoMatchingParent)")
            parents.append(
                (parent, Outcome(ok=False, reason="NoMatchingParent", message="no listener matches"))
            )
            continue
        allowed = [
            p
            for p in named
            if allowed_kinds(p.listener)
            and allows_namespace(p.listener, parent.namespace, route.namespace, labels)
        ]
        if not allowed:
            why = f"no listener allows routes from namespace {route.namespace}"
            report.add(ref, f"{where}: {why} (NotAllowedByListeners)")
            parents.append((parent, Outcome(ok=False, reason="NotAllowedByListeners", message=why)))
            continue
        found = False
        for p in allowed:
            wanted = route.hostnames or (None,)
            common = [h for h in (intersect(w, p.listener.hostname) for w in wanted) if h is not False]
            for ep in p.entrypoints:
                kept = tuple(
                    dict.fromkeys(
                        h
                        for h in common
                        if not isinstance(h, bool) and not shadowed(h, p.listener.hostname, hosts[ep.name])
                    )
                )
                if common:
                    found = True
                    key = (parent.namespace, parent.name, p.listener.name)
                    outcomes.attached.setdefault(key, set()).add((route.namespace, route.name))
                if kept:
                    out.append(Attachment(listener=p.listener, entrypoint=ep, hosts=kept))
        if not found:
            why = "none of its hostnames is accepted by a listener"
            report.add(ref, f"{where}: {why} (NoMatchingListenerHostname)")
            parents.append((parent, Outcome(ok=False, reason="NoMatchingListenerHostname", message=why)))
        else:
            parents.append((parent, Outcome(ok=True, reason="Accepted")))
    if parents:  # it names one of our Gateways: its status is partly ours
        outcomes.routes[(route.namespace, route.name)] = parents
    return out


__all__ = ["GatewayOptions", "GatewayTranslation", "Grant", "Outcome", "Outcomes", "translate_gateway"]


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """An object's `spec`, or nothing when it is missing or not an object."""
    spec = obj.get("spec")
    return spec if isinstance(spec, Mapping) else {}
