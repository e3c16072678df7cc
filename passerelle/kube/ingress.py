"""Ingress -> routers and services: a pure function of the snapshot.

Semantics are the Ingress spec's: Exact paths, element-wise Prefix paths (a trailing slash in the
rule is ignored), ImplementationSpecific read as Prefix. Each (host, path, type) is claimed by the
oldest Ingress (creationTimestamp, then namespace/name); a later claim is a Problem on the later
object. The oldest `defaultBackend` catches what no rule matches. Annotations (kube/annotations/)
and spec.tls decide the entry points and redirects (kube/placement.py); a path gets one router per
distinct middleware chain across those entry points. TLS (spec.tls Secrets, TLS-option
annotations) is read by tls.py into the same version. Nothing here performs I/O or raises on a bad
object: problems are returned.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from passerelle.kube.annotations import IngressAnnotations, read_annotations
from passerelle.kube.annotations.traefik17_paths import path_middlewares
from passerelle.kube.backends import Answer, BackendError, Backends, Inputs, service_key
from passerelle.kube.gateway import GatewayOptions, GatewayTranslation, translate_gateway
from passerelle.kube.middlewares import MiddlewareIndex
from passerelle.kube.names import UniqueNames
from passerelle.kube.objects import BackendRef, IngressSpec, InvalidObject, read_ingress
from passerelle.kube.placement import EntryPointInfo, Placement, chains, dead_ends, place
from passerelle.kube.shapes import mapping
from passerelle.kube.snapshot import ClusterSnapshot, Object, key_of
from passerelle.kube.tls import TlsTranslation, TlsTranslator, tls_option_error
from passerelle.kube.tlsoptions import OptionIndex
from passerelle.middlewares.base import MiddlewareSpec
from passerelle.middlewares.pass_tls_client_cert import PassTLSClientCert
from passerelle.middlewares.redirect_scheme import RedirectScheme
from passerelle.model import (
    DynamicConfig,
    Middleware,
    ObjectRef,
    PathMatch,
    PathType,
    Problem,
    Report,
    Router,
    Service,
    Severity,
    TlsConfig,
)
from passerelle.tls import clientcert

CONTROLLER = "passerelle.io/ingress-controller"
DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
CLASS_ANNOTATION = "kubernetes.io/ingress.class"


@dataclass(frozen=True, slots=True, kw_only=True)
class IngressOptions:
    """Which Ingresses are ours, and the entry points their routers may be placed on.

    ingress_classes: class names served (spec.ingressClassName or the kubernetes.io/ingress.class
        annotation), in addition to IngressClass objects whose controller is passerelle's.
    ingress_without_class: serve Ingresses that name no class, unless a default IngressClass of
        another controller claims them.
    entrypoints: every configured entry point in order, with whether it terminates TLS and its
        port (the static configuration's, passed in by the caller; default: one plain `web`).
    tls: the static TLS names translation needs (TLS options, Secrets named by configuration).
    gateway: which Gateway API objects are ours and where their listeners go (kube/gateway.py).
    """

    ingress_classes: tuple[str, ...] = ("passerelle", "traefik")
    ingress_without_class: bool = True
    entrypoints: tuple[EntryPointInfo, ...] = (EntryPointInfo(name="web", port=8080),)
    tls: TlsTranslation = TlsTranslation()
    gateway: GatewayOptions = GatewayOptions()


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
        self._placed: dict[int, _Placed] = {}
        self._tls = TlsTranslator(options.tls)
        self._backends: dict[tuple[str, BackendRef], tuple[Inputs, Answer]] = {}  # see Backends

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
        backends = Backends(snapshot, self._backends)
        middlewares = MiddlewareIndex(snapshot, problems)
        index = self._tls.option_index(snapshot, problems)
        builder = _Builder(backends, middlewares, index, self._options, problems)
        builder.placed_before = self._placed
        specs.sort(key=lambda s: s.age_key)
        for spec in specs:
            builder.add(spec)
        self._placed = builder.placed
        gateway = translate_gateway(
            snapshot,
            self._options.gateway,
            self._options.entrypoints,
            backends,
            builder.report,
            builder.names,
        )
        self._backends = backends.memo_next
        tls = self._tls.translate(snapshot, specs, problems, builder.routers, gateway.secrets, index)
        return builder.config(tls, gateway), problems


@dataclass(frozen=True, slots=True)
class _Placed:
    """What an IngressSpec's annotations and spec.tls decide, kept while the spec is unchanged."""

    spec: IngressSpec
    annotations: IngressAnnotations
    report: str | None
    placement: Placement
    groups: list[tuple[tuple[str, ...], tuple[Middleware, ...]]] | None  # None: has router.middlewares
    dead_ends: tuple[str, ...]  # warnings for redirects that lead to a 404 (with `groups`)
    client_cert: Middleware | str | None  # from the client-certificate annotations; str: what is wrong


def _client_cert_middleware(spec: IngressSpec) -> Middleware | str | None:
    """The passTLSClientCert that Traefik 1.7's or passerelle's annotations ask for, one per Ingress."""
    try:
        cert = clientcert.from_annotations(spec.annotations)
    except ValueError as e:
        return str(e)
    if cert is None:
        return None
    name = f"{spec.namespace}-{spec.name}-client-cert@annotations"
    return Middleware(name=name, spec=PassTLSClientCert(spec=cert))


def _class_of(obj: Mapping[str, Any]) -> str | None:
    """spec.ingressClassName, else the kubernetes.io/ingress.class annotation (read as IngressSpec does)."""
    spec = obj.get("spec")
    class_name = spec.get("ingressClassName") if isinstance(spec, Mapping) else None
    if class_name is not None:
        return str(class_name)
    annotations = (obj.get("metadata") or {}).get("annotations")
    annotation = annotations.get(CLASS_ANNOTATION) if isinstance(annotations, Mapping) else None
    return None if annotation is None else str(annotation)


def ours(snapshot: ClusterSnapshot, options: IngressOptions) -> list[Object]:
    """The Ingresses of the snapshot this controller serves, by class (valid or not)."""
    return _of_classes(snapshot, *_served_classes(snapshot, options))


def status_owned(snapshot: ClusterSnapshot, options: IngressOptions) -> list[Object]:
    """The Ingresses whose status this controller writes: those whose class is an IngressClass
    with passerelle's controller, and the class-less ones when passerelle's IngressClass is the
    default, or `ingress_without_class` is set and no other controller's class is. A class only
    named in `ingress_classes` (e.g. "traefik") is served but its status is left to whichever
    controller owns it: two controllers writing one Ingress's status would undo each other (as
    Traefik and ingress-nginx, which write status only for their own class)."""
    return _of_classes(snapshot, *_owned_classes(snapshot, options))


def _of_classes(snapshot: ClusterSnapshot, classes: set[str], unclassed: bool) -> list[Object]:
    out = []
    for obj in snapshot.of_kind("Ingress"):
        class_name = _class_of(obj)
        if (class_name in classes) if class_name else unclassed:
            out.append(obj)
    return out


def _owned_classes(snapshot: ClusterSnapshot, options: IngressOptions) -> tuple[set[str], bool]:
    """The IngressClasses with passerelle's controller, and whether the class-less Ingresses are
    ours too (see status_owned)."""
    owned, ours_default, others_default = set(), False, False
    for ingress_class in snapshot.of_kind("IngressClass"):
        meta = mapping(ingress_class.get("metadata"))
        is_default = mapping(meta.get("annotations")).get(DEFAULT_CLASS_ANNOTATION) == "true"
        if mapping(ingress_class.get("spec")).get("controller") == CONTROLLER:
            owned.add(key_of(ingress_class)[2])
            ours_default |= is_default
        else:
            others_default |= is_default
    return owned, ours_default or (options.ingress_without_class and not others_default)


def _served_classes(snapshot: ClusterSnapshot, options: IngressOptions) -> tuple[set[str], bool]:
    """The classes served: ours, and those named in `ingress_classes`; and whether class-less ones are."""
    owned, unclassed = _owned_classes(snapshot, options)
    return owned | set(options.ingress_classes), unclassed


class _Builder:
    def __init__(
        self,
        backends: Backends,
        middlewares: MiddlewareIndex,
        tls_options: OptionIndex,
        options: IngressOptions,
        problems: list[Problem],
    ) -> None:
        self._backends = backends
        self._middleware_index = middlewares
        self._entrypoints = options.entrypoints
        self._tls_options = tls_options
        self._problems = problems
        self._routers: list[Router] = []
        self._services: dict[str, Service] = {}
        self._middlewares: dict[str, Middleware] = {}
        # (entry point, host, path type, path) -> "Ingress ns/name"; the default backend is the
        # (entry point, None, None, "") claim. Per entry point: Ingresses placed on different entry
        # points do not conflict, as two Traefik routers on different entry points do not.
        self._claims: dict[tuple[str, str | None, PathType | None, str], str] = {}
        self.names = UniqueNames()  # shared with the Gateway API routers (kube/gateway.py)
        self.placed_before: dict[int, _Placed] = {}
        self.placed: dict[int, _Placed] = {}
        self.report = Report(problems)

    def add(self, spec: IngressSpec) -> None:
        ref = ObjectRef(kind="Ingress", namespace=spec.namespace, name=spec.name)
        source = f"Ingress {spec.namespace}/{spec.name}"
        placed = self._placed(spec)
        if placed.report is not None:
            self._problem(ref, placed.report, Severity.WARNING)
        unknown = tls_option_error(spec, self._tls_options)
        if unknown is not None:  # fail closed: not served with a weaker option than it asked for
            self._problem(ref, f"not served: {unknown}")
            return
        placement, groups, dead = placed.placement, placed.groups, placed.dead_ends
        resolved = None
        if groups is None:
            resolved = self._middleware_index.resolve(placed.annotations.traefik.middlewares)
            if not placed.annotations.placement and any(
                isinstance(m.spec, RedirectScheme) for m in resolved.middlewares
            ):
                placement = self._place(placed.annotations, spec.has_tls, resolved.middlewares)
        # Placement problems first: a middleware that fails to resolve must not hide them.
        for severity, message in placement.problems:
            self._problem(ref, message, severity)
        if resolved is not None:
            for warning in resolved.warnings:
                self._problem(ref, warning, Severity.WARNING)
            if resolved.error:
                self._problem(ref, f"not served: {resolved.error}")
                return
            groups = chains(placement, resolved.middlewares, self._entrypoints)
            dead = tuple(dead_ends(placement, groups, self._entrypoints))
        for warning in dead:
            self._problem(ref, warning, Severity.WARNING)
        if not placement.entrypoints or groups is None:
            return
        if isinstance(placed.client_cert, str):
            self._problem(ref, f"not served: {placed.client_cert}")  # never serve it without the headers
            return
        if placed.client_cert is not None:
            groups = [(entrypoints, (*chain, placed.client_cert)) for entrypoints, chain in groups]
        mods = placed.annotations.traefik17.paths
        if mods.error:  # never serve its paths unchanged: the backends expect them rewritten
            self._problem(ref, f"not served: {mods.error}")
            return
        regex = placed.annotations.traefik17.redirect_regex
        every_path = tuple(
            m for m in (mods.allow, regex, mods.headers) if m is not None
        )  # as dispatch checks
        for rule in spec.rules:
            for path in rule.paths:
                match = _path_match(path.path, path.path_type, exact=mods.exact)
                free, taken = self._claim(placement.entrypoints, (rule.host, match.type, match.value), source)
                if taken:
                    what = f"{rule.host or '*'} {match.type} {match.value} is already served by"
                    self._problem(ref, f"{what} {_owners(taken, free)}")
                if not free:
                    continue
                base = f"{spec.namespace}-{spec.name}-{rule.host or 'any'}-{match.value}"
                service = self._service(ref, spec.namespace, path.backend, placed.annotations)
                path_groups = groups if not taken else self._restrict(groups, free)
                own = (*every_path, *path_middlewares(mods, path.path, match.value))
                self._add_routers(
                    path_groups, base, service=service, host=rule.host, path=match, source=source, own=own
                )
        if spec.default_backend is not None:
            free, taken = self._claim(placement.entrypoints, (None, None, ""), source)
            if taken:
                self._problem(
                    ref, f"defaultBackend ignored: {_owners(taken, free, 'already sets the default backend')}"
                )
            if free:
                service = self._service(ref, spec.namespace, spec.default_backend, placed.annotations)
                base = f"{spec.namespace}-{spec.name}-default-backend"
                path_groups = groups if not taken else self._restrict(groups, free)
                self._add_routers(
                    path_groups, base, service=service, host=None, path=None, source=source, own=every_path
                )

    def _placed(self, spec: IngressSpec) -> _Placed:
        placed = self.placed_before.get(id(spec))
        if placed is None or placed.spec is not spec:
            annotations = read_annotations(spec.annotations)
            placement = self._place(annotations, spec.has_tls, ())
            # Middleware references depend on the snapshot's Middleware objects: resolved each time.
            fixed = None if annotations.traefik.middlewares else chains(placement, (), self._entrypoints)
            dead = () if fixed is None else tuple(dead_ends(placement, fixed, self._entrypoints))
            client_cert = _client_cert_middleware(spec)
            placed = _Placed(
                spec, annotations, annotations.report.message(), placement, fixed, dead, client_cert
            )
        self.placed[id(spec)] = placed
        return placed

    def _place(
        self, annotations: IngressAnnotations, has_tls: bool, middlewares: tuple[Middleware, ...]
    ) -> Placement:
        try:
            return place(annotations, has_tls=has_tls, entrypoints=self._entrypoints, middlewares=middlewares)
        except ValueError as e:  # one Ingress's odd values must not fail the whole translation
            return Placement(entrypoints=(), problems=((Severity.ERROR, f"not served: {e}"),))

    def _claim(
        self, entrypoints: tuple[str, ...], what: tuple[str | None, PathType | None, str], source: str
    ) -> tuple[list[str], dict[str, str]]:
        """The entry points where `source` now holds `what`, and the owners of the others."""
        free: list[str] = []
        taken: dict[str, str] = {}
        for name in entrypoints:
            owner = self._claims.setdefault((name, *what), source)
            if owner == source:
                free.append(name)
            else:
                taken[name] = owner
        return free, taken

    def _restrict(
        self, groups: list[tuple[tuple[str, ...], tuple[Middleware, ...]]], free: list[str]
    ) -> list[tuple[tuple[str, ...], tuple[Middleware, ...]]]:
        every = tuple(ep.name for ep in self._entrypoints)
        out = []
        for entrypoints, chain in groups:
            kept = tuple(name for name in (entrypoints or every) if name in free)
            if kept:
                out.append((kept, chain))
        return out

    def _add_routers(
        self,
        groups: list[tuple[tuple[str, ...], tuple[Middleware, ...]]],
        base: str,
        *,
        service: str,
        host: str | None,
        path: PathMatch | None,
        source: str,
        own: tuple[MiddlewareSpec, ...] = (),
    ) -> None:
        """One router per entry-point group; `own`: middlewares of each router alone, after the
        group's chain (1.7's path and header annotations), named after the router."""
        for entrypoints, chain in groups:
            name = self.names.make(base if len(groups) == 1 else f"{base}-{'-'.join(entrypoints)}")
            if own:
                chain = (
                    *chain,
                    *(
                        Middleware(name=f"{name}-{i}-{spec.kind}@annotations", spec=spec)
                        for i, spec in enumerate(own)
                    ),
                )
            for middleware in chain:
                self._middlewares.setdefault(middleware.name, middleware)
            self._routers.append(
                Router(
                    name=name,
                    service=service,
                    host=host,
                    path=path,
                    entrypoints=entrypoints,
                    middlewares=tuple(m.name for m in chain),
                    source=source,
                )
            )

    @property
    def routers(self) -> list[Router]:
        return self._routers

    def config(self, tls: TlsConfig, gateway: GatewayTranslation | None = None) -> DynamicConfig:
        gateway = gateway or GatewayTranslation()
        services = dict(self._services)
        for service in gateway.services:
            services.setdefault(service.name, service)  # an Ingress's and a route's backend, resolved alike
        middlewares = dict(self._middlewares)
        middlewares.update((m.name, m) for m in gateway.middlewares)
        return DynamicConfig(
            routers=(*self._routers, *gateway.routers),
            services=tuple(services.values()),
            middlewares=tuple(middlewares.values()),
            tls=tls,
        )

    def _service(
        self, ref: ObjectRef, namespace: str, backend: BackendRef, annotations: IngressAnnotations
    ) -> str:
        scheme = self._scheme(ref, namespace, backend, annotations)
        name = service_key(namespace, backend, scheme)
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
        self._services[name] = service = Service(
            name=name, servers=servers, unavailable=unavailable, scheme=scheme
        )
        if unavailable:
            self._problem(ref, unavailable, _severity(service))
        return name

    def _scheme(
        self, ref: ObjectRef, namespace: str, backend: BackendRef, annotations: IngressAnnotations
    ) -> str:
        """HTTP/1.1 or h2c: the Ingress's 1.7 `protocol`, else the Service's `serversscheme`, else
        its port's `appProtocol`."""
        asked, wrong = self._backends.scheme(namespace, backend)
        if wrong is not None:
            self._problem(
                ObjectRef(kind="Service", namespace=namespace, name=backend.service), wrong, Severity.WARNING
            )
        protocol = annotations.traefik17.protocol
        if protocol is None:
            return asked or "http"
        if asked is not None and asked != protocol:
            self._problem(
                ref,
                f"protocol {protocol} (Traefik 1.7 annotation) overrides the {asked} that Service "
                f"{namespace}/{backend.service} asks for (service.serversscheme)",
                Severity.WARNING,
            )
        return protocol

    def _problem(self, ref: ObjectRef, message: str, severity: Severity = Severity.ERROR) -> None:
        self.report.add(ref, message, severity)


def _owners(taken: dict[str, str], free: list[str], verb: str = "") -> str:
    """`Ingress a/b; not served here`, naming the entry points when only some are taken."""
    owners = ", ".join(sorted(set(taken.values())))
    if not free:
        return f"{owners} {verb}; not served here" if verb else f"{owners}; not served here"
    where = ", ".join(taken)
    return (
        f"{owners} {verb} on {where}; not served there" if verb else f"{owners} on {where}; not served there"
    )


def _severity(service: Service) -> Severity:
    # No ready endpoints is a state the cluster moves through (rollouts); a missing Service is a mistake.
    return Severity.WARNING if service.unavailable.endswith("no ready endpoints") else Severity.ERROR


def _path_match(path: str, path_type: str, *, exact: bool = False) -> PathMatch:
    """`exact`: an ImplementationSpecific path matches exactly (1.7's rule-type Path, PathStrip)."""
    if path_type == "Exact" or (exact and path_type == "ImplementationSpecific"):
        return PathMatch(type=PathType.EXACT, value=path)
    # Prefix and ImplementationSpecific: element-wise, the rule's trailing slash is ignored.
    return PathMatch(type=PathType.PREFIX, value=path.rstrip("/") or "/")
