"""Ingress -> routers and services: a pure function of the snapshot.

Semantics are the Ingress spec's: Exact paths, element-wise Prefix paths (a trailing slash in the
rule is ignored), ImplementationSpecific read as Prefix. Each (host, path, type) is claimed by the
oldest Ingress (creationTimestamp, then namespace/name); a later claim is a Problem on the later
object. The oldest `defaultBackend` catches what no rule matches. Routes are served on every entry
point. TLS (spec.tls Secrets, TLS-option annotations) is read by tls.py into the same version.
Nothing here performs I/O or raises on a bad object: problems are returned.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from passerelle.kube.backends import BackendError, Backends, service_key
from passerelle.kube.objects import BackendRef, IngressSpec, InvalidObject, read_ingress
from passerelle.kube.snapshot import ClusterSnapshot, Object, key_of
from passerelle.kube.tls import TlsTranslation, TlsTranslator
from passerelle.model import (
    DynamicConfig,
    ObjectRef,
    PathMatch,
    PathType,
    Problem,
    Router,
    Service,
    Severity,
    TlsConfig,
)

CONTROLLER = "passerelle.io/ingress-controller"
DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
CLASS_ANNOTATION = "kubernetes.io/ingress.class"


@dataclass(frozen=True, slots=True, kw_only=True)
class IngressOptions:
    """Which Ingresses are ours.

    ingress_classes: class names served (spec.ingressClassName or the kubernetes.io/ingress.class
        annotation), in addition to IngressClass objects whose controller is passerelle's.
    ingress_without_class: serve Ingresses that name no class, unless a default IngressClass of
        another controller claims them.
    tls: the static TLS names translation needs (TLS options, Secrets named by configuration).
    """

    ingress_classes: tuple[str, ...] = ("passerelle", "traefik")
    ingress_without_class: bool = True
    tls: TlsTranslation = TlsTranslation()


def translate(
    snapshot: ClusterSnapshot, options: IngressOptions = IngressOptions()
) -> tuple[DynamicConfig, list[Problem]]:
    return Translator(options).translate(snapshot)


class Translator:
    """translate(), remembering how each Ingress object read, for the next snapshot.

    Providers hand over the same (never mutated) dict for an object that did not change, so an
    Ingress seen before is not parsed and validated again: at 10,000 Ingresses that is most of the
    cost of a translation. The result is exactly translate()'s.
    """

    def __init__(self, options: IngressOptions = IngressOptions()) -> None:
        self._options = options
        self._read: dict[int, tuple[Object, IngressSpec | InvalidObject]] = {}
        self._tls = TlsTranslator(options.tls)

    def translate(self, snapshot: ClusterSnapshot) -> tuple[DynamicConfig, list[Problem]]:
        problems: list[Problem] = []
        served, serve_unclassed = _served_classes(snapshot, self._options)
        specs = []
        seen: dict[int, tuple[Object, IngressSpec | InvalidObject]] = {}
        for obj in snapshot.of_kind("Ingress"):
            # Decide ownership before validating: another controller's Ingress, valid or not, is
            # silently not ours.
            class_name = _class_of(obj)
            if not ((class_name in served) if class_name else serve_unclassed):
                continue
            read = self._read.get(id(obj))
            if read is None or read[0] is not obj:  # the object itself, not a new one at a reused id
                try:
                    read = (obj, read_ingress(obj))
                except InvalidObject as e:
                    read = (obj, e)
            seen[id(obj)] = read
            if isinstance(read[1], InvalidObject):
                kind, namespace, name = key_of(obj)
                ref = ObjectRef(kind=kind, namespace=namespace, name=name)
                problems.append(Problem(ref=ref, message=f"not served: {read[1]}"))
                continue
            specs.append(read[1])
        self._read = seen  # forget objects that left
        builder = _Builder(Backends(snapshot), problems)
        specs.sort(key=lambda s: s.age_key)
        for spec in specs:
            builder.add(spec)
        tls = self._tls.translate(snapshot, specs, problems)
        return builder.config(tls), problems


def _class_of(obj: Mapping[str, Any]) -> str | None:
    """spec.ingressClassName, else the kubernetes.io/ingress.class annotation (read as IngressSpec does)."""
    spec = obj.get("spec")
    class_name = spec.get("ingressClassName") if isinstance(spec, Mapping) else None
    if class_name is not None:
        return str(class_name)
    annotations = (obj.get("metadata") or {}).get("annotations")
    annotation = annotations.get(CLASS_ANNOTATION) if isinstance(annotations, Mapping) else None
    return None if annotation is None else str(annotation)


def _served_classes(snapshot: ClusterSnapshot, options: IngressOptions) -> tuple[set[str], bool]:
    served = set(options.ingress_classes)
    ours_default = others_default = False
    for ingress_class in snapshot.of_kind("IngressClass"):
        meta = ingress_class.get("metadata") or {}
        is_default = (meta.get("annotations") or {}).get(DEFAULT_CLASS_ANNOTATION) == "true"
        if (ingress_class.get("spec") or {}).get("controller") == CONTROLLER:
            served.add(meta.get("name", ""))
            ours_default |= is_default
        else:
            others_default |= is_default
    return served, ours_default or (options.ingress_without_class and not others_default)


class _Builder:
    def __init__(self, backends: Backends, problems: list[Problem]) -> None:
        self._backends = backends
        self._problems = problems
        self._routers: list[Router] = []
        self._services: dict[str, Service] = {}
        self._claims: dict[tuple[str | None, PathType, str], str] = {}
        self._names: set[str] = set()
        self._default_owner = ""
        self._seen: set[Problem] = set()

    def add(self, spec: IngressSpec) -> None:
        ref = ObjectRef(kind="Ingress", namespace=spec.namespace, name=spec.name)
        source = f"Ingress {spec.namespace}/{spec.name}"
        for rule in spec.rules:
            for path in rule.paths:
                match = _path_match(path.path, path.path_type)
                claim = (rule.host, match.type, match.value)
                owner = self._claims.setdefault(claim, source)
                if owner != source:
                    self._problem(
                        ref,
                        f"{rule.host or '*'} {match.type} {match.value} is already served by {owner}; not served here",
                    )
                    continue
                name = self._unique(f"{spec.namespace}-{spec.name}-{rule.host or 'any'}-{match.value}")
                service = self._service(ref, spec.namespace, path.backend)
                self._routers.append(
                    Router(name=name, service=service, host=rule.host, path=match, source=source)
                )
        if spec.default_backend is not None:
            if self._default_owner:
                self._problem(
                    ref, f"defaultBackend ignored: {self._default_owner} already sets the default backend"
                )
            else:
                self._default_owner = source
                service = self._service(ref, spec.namespace, spec.default_backend)
                name = self._unique(f"{spec.namespace}-{spec.name}-default-backend")
                self._routers.append(Router(name=name, service=service, source=source))

    def config(self, tls: TlsConfig) -> DynamicConfig:
        return DynamicConfig(routers=tuple(self._routers), services=tuple(self._services.values()), tls=tls)

    def _service(self, ref: ObjectRef, namespace: str, backend: BackendRef) -> str:
        name = service_key(namespace, backend)
        if name in self._services:
            if not self._services[name].servers:
                self._problem(ref, self._services[name].unavailable, _severity(self._services[name]))
            return name
        try:
            servers = self._backends.resolve(namespace, backend)
            unavailable = (
                ""
                if servers
                else f"Service {namespace}/{backend.service} port {backend.port} has no ready endpoints"
            )
        except BackendError as e:
            servers, unavailable = (), str(e)
        self._services[name] = service = Service(name=name, servers=servers, unavailable=unavailable)
        if unavailable:
            self._problem(ref, unavailable, _severity(service))
        return name

    def _unique(self, name: str) -> str:
        base = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")
        candidate, n = base, 1
        while candidate in self._names:
            n += 1
            candidate = f"{base}-{n}"
        self._names.add(candidate)
        return candidate

    def _problem(self, ref: ObjectRef, message: str, severity: Severity = Severity.ERROR) -> None:
        problem = Problem(ref=ref, message=message, severity=severity)
        if problem not in self._seen:
            self._seen.add(problem)
            self._problems.append(problem)


def _severity(service: Service) -> Severity:
    # No ready endpoints is a state the cluster moves through (rollouts); a missing Service is a mistake.
    return Severity.WARNING if service.unavailable.endswith("no ready endpoints") else Severity.ERROR


def _path_match(path: str, path_type: str) -> PathMatch:
    if path_type == "Exact":
        return PathMatch(type=PathType.EXACT, value=path)
    # Prefix and ImplementationSpecific: element-wise, the rule's trailing slash is ignored.
    return PathMatch(type=PathType.PREFIX, value=path.rstrip("/") or "/")
