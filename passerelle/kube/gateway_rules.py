"""HTTPRoute rules -> routers, services and middlewares, for the listeners a route attached to (pure).

One router per (rule, match, entry point, hostname), in the order the Gateway API's precedence
breaks ties with (oldest route, then namespace/name, then rule and match order); the route table
does the rest of the ordering (routing/conditional.py). A rule's backendRefs become one Service,
or a weighted split over one per backend. A backendRef that cannot be followed (a kind other than
Service, a missing Service or port, another namespace without a ReferenceGrant) is a Problem and
its share of the requests gets 500, as does a rule without backendRefs (HTTPRouteRule.backendRefs).
A rule with a filter passerelle does not implement is answered with 500 too, never served without it.
"""

from __future__ import annotations

from dataclasses import dataclass

from passerelle.kube.backends import BackendError, Backends, service_key
from passerelle.kube.gateway_attach import Outcome, granted
from passerelle.kube.gateway_filters import filter_spec, read_match
from passerelle.kube.gateway_objects import BackendRefSpec, Filter, Grant, Listener, RouteSpec, Rule
from passerelle.kube.names import UniqueNames
from passerelle.kube.objects import BackendRef
from passerelle.kube.placement import EntryPointInfo
from passerelle.middlewares.request_redirect import RequestRedirect
from passerelle.model import Middleware, ObjectRef, Report, Router, Service, Severity, WeightedService

PROVIDER = "@httproute"


@dataclass(frozen=True, slots=True, kw_only=True)
class Attachment:
    """A route on one listener of one Gateway, on one entry point, for these hostnames (None: any)."""

    listener: Listener
    entrypoint: EntryPointInfo
    hosts: tuple[str | None, ...]


class RuleBuilder:
    def __init__(self, backends: Backends, grants: list[Grant], report: Report, names: UniqueNames) -> None:
        self._backends = backends
        self._grants = grants
        self._report = report
        self._names = names
        self.routers: list[Router] = []
        self.services: dict[str, Service] = {}
        self.middlewares: dict[str, Middleware] = {}
        # a route's first backendRef that could not be followed, for its ResolvedRefs condition
        self.unresolved: dict[tuple[str, str], Outcome] = {}

    def add(self, route: RouteSpec, attachments: list[Attachment]) -> None:
        ref = ObjectRef(kind="HTTPRoute", namespace=route.namespace, name=route.name)
        for i, rule in enumerate(route.rules):
            source = f"HTTPRoute {route.namespace}/{route.name} rule {i}"
            for key in rule.ignored:
                self._problem(ref, f"rules[{i}].{key} is not supported: served without it", Severity.WARNING)
            # Filters on backendRefs depend on the match and the entry point (as the rule's do): a
            # split of their own per router then, else one service for the whole rule.
            per_router = any(b.filters for b in rule.backends)
            service = "" if per_router else self._service(ref, route, i, rule)
            for j, match in enumerate(rule.matches):
                where = f"rules[{i}].matches[{j}]"
                try:
                    path, conditions = read_match(match)
                except ValueError as e:
                    self._problem(ref, f"{where} not served: {e}")
                    continue
                for attachment in attachments:
                    ep = attachment.entrypoint
                    chain, error = self._chain(route, i, j, rule.filters, rule, ep)
                    target = service or self._split(ref, route, i, j, rule, ep)
                    if error:
                        self._problem(ref, f"rules[{i}]: {error}; its requests get 500")
                        target = self._error(f"{self._base(route, i)}/filters", f"{source}: {error}")
                        chain = []
                    for host in attachment.hosts:
                        name = self._names.make(
                            f"{route.namespace}-{route.name}-r{i}-m{j}-{ep.name}-{host or 'any'}"
                        )
                        for m in chain:
                            self.middlewares.setdefault(m.name, m)
                        self.routers.append(
                            Router(
                                name=name,
                                service=target,
                                host=host,
                                path=path,
                                entrypoints=(ep.name,),
                                middlewares=tuple(m.name for m in chain),
                                source=source,
                                conditions=conditions,
                                listener=attachment.listener.hostname or "",
                            )
                        )

    def _chain(
        self,
        route: RouteSpec,
        i: int,
        j: int,
        filters: tuple[Filter, ...],
        rule: Rule,
        ep: EntryPointInfo,
        tag: str = "",
    ) -> tuple[list[Middleware], str]:
        """The middlewares of `filters` (the rule's, or a backendRef's: `tag`) for match j on `ep`."""
        chain = []
        for k, f in enumerate(filters):
            try:
                spec = filter_spec(f, rule.matches[j], ep)
            except ValueError as e:
                return [], f"filters[{k}]: {e}"
            name = f"{route.namespace}-{route.name}-r{i}-m{j}-{ep.name}{tag}-f{k}{PROVIDER}"
            chain.append(Middleware(name=name, spec=spec))
        redirects = sum(isinstance(m.spec, RequestRedirect) for m in chain)
        if redirects and any(f.type == "URLRewrite" for f in filters):
            return [], "filters: RequestRedirect and URLRewrite cannot be used together"
        return chain, ""

    def _split(self, ref: ObjectRef, route: RouteSpec, i: int, j: int, rule: Rule, ep: EntryPointInfo) -> str:
        """A rule whose backendRefs have filters: a split for match j on `ep`, each part with its chain."""
        name = f"{self._base(route, i)}/match{j}/{ep.name}"
        if name in self.services:
            return name
        parts = []
        for k, b in enumerate(rule.backends):
            service = self._backend(ref, route, i, k, b)
            chain, error = self._chain(route, i, j, b.filters, rule, ep, f"-b{k}")
            if error:
                self._problem(
                    ref, f"rules[{i}].backendRefs[{k}]: {error}; its share of the requests gets 500"
                )
                why = f"HTTPRoute {route.namespace}/{route.name}: {error}"
                service = self._error(f"{self._base(route, i)}/backend{k}/filters", why)
            for m in chain:
                self.middlewares.setdefault(m.name, m)
            if b.weight > 0:
                middlewares = tuple(m.name for m in chain)
                parts.append(WeightedService(service=service, weight=b.weight, middlewares=middlewares))
        self.services[name] = Service(
            name=name,
            weighted=tuple(parts),
            status=500,
            unavailable=""
            if parts
            else f"every backendRef of HTTPRoute {route.namespace}/{route.name} rule {i} has weight 0",
        )
        return name

    def _base(self, route: RouteSpec, i: int) -> str:
        return f"httproute/{route.namespace}/{route.name}/rule{i}"

    def _service(self, ref: ObjectRef, route: RouteSpec, i: int, rule: Rule) -> str:
        if not rule.backends:
            why = f"HTTPRoute {route.namespace}/{route.name} rule {i} has no backendRefs"
            return self._error(self._base(route, i), why)
        parts = [(self._backend(ref, route, i, k, b), b.weight) for k, b in enumerate(rule.backends)]
        if len(parts) == 1 and parts[0][1] > 0:
            return parts[0][0]
        name = self._base(route, i)
        weighted = tuple(WeightedService(service=n, weight=w) for n, w in parts if w > 0)
        self.services[name] = Service(
            name=name,
            weighted=weighted,
            status=500,
            unavailable=""
            if weighted
            else f"every backendRef of HTTPRoute {route.namespace}/{route.name} rule {i} has weight 0",
        )
        return name

    def _backend(self, ref: ObjectRef, route: RouteSpec, i: int, k: int, b: BackendRefSpec) -> str:
        where = f"rules[{i}].backendRefs[{k}]"
        error = ""
        if b.group not in ("", "core") or b.kind != "Service":
            error = f"{where} names a {b.kind} of group {b.group or 'core'!r}; only Services are supported (InvalidKind)"
        elif b.port is None:
            error = f"{where}: port is required for a Service"
        elif b.namespace != route.namespace and not granted(
            self._grants,
            from_kind="HTTPRoute",
            from_namespace=route.namespace,
            to_namespace=b.namespace,
            to_group="",
            to_kind="Service",
            to_name=b.name,
        ):
            error = (
                f"{where}: Service {b.namespace}/{b.name} is in another namespace and no ReferenceGrant "
                f"there lets HTTPRoutes of {route.namespace} refer to it (RefNotPermitted)"
            )
        if not error:
            assert b.port is not None
            backend = BackendRef(service=b.name, port=b.port)
            scheme = self._scheme(b.namespace, backend)
            name = service_key(b.namespace, backend, scheme)
            if name in self.services:
                return name
            try:
                servers = self._backends.resolve(b.namespace, backend)
            except BackendError as e:
                error = f"{where}: {e} (BackendNotFound)"
            else:
                unavailable = (
                    "" if servers else f"Service {b.namespace}/{b.name} port {b.port} has no ready endpoints"
                )
                if unavailable:
                    self._problem(ref, unavailable, Severity.WARNING)
                self.services[name] = Service(
                    name=name, servers=servers, unavailable=unavailable, scheme=scheme
                )
                return name
        self._problem(ref, f"{error}; its share of the requests gets 500")
        reason = next(
            (r for r in ("InvalidKind", "RefNotPermitted", "BackendNotFound") if r in error),
            "BackendNotFound",
        )
        self.unresolved.setdefault(
            (route.namespace, route.name), Outcome(ok=False, reason=reason, message=error)
        )
        return self._error(
            f"{self._base(route, i)}/backend{k}", f"HTTPRoute {route.namespace}/{route.name}: {error}"
        )

    def _scheme(self, namespace: str, backend: BackendRef) -> str:
        """HTTP/1.1, or h2c when the Service asks for it (its port's appProtocol `kubernetes.io/h2c`,
        GEP-1911, or Traefik's `service.serversscheme` annotation, as for Ingress backends)."""
        asked, wrong = self._backends.scheme(namespace, backend)
        if wrong is not None:
            self._problem(
                ObjectRef(kind="Service", namespace=namespace, name=backend.service), wrong, Severity.WARNING
            )
        return asked or "http"

    def _error(self, name: str, why: str) -> str:
        self.services.setdefault(name, Service(name=name, unavailable=why, status=500))
        return name

    def _problem(self, ref: ObjectRef, message: str, severity: Severity = Severity.ERROR) -> None:
        self._report.add(ref, message, severity)
