"""Gateway API objects read into values: Gateway listeners, HTTPRoute rules, ReferenceGrants (pure).

`gateway.networking.k8s.io/v1` (and the v1beta1 shapes, which are the same) as the API server's
schema and CEL rules check them, with the defaults it fills in: a listener's
allowedRoutes.namespaces.from is `Same`, a match's path is `PathPrefix /`, a header or query
match is `Exact`, a backendRef's weight is 1 and its kind `Service` in the core group. An object
that breaks those rules raises InvalidObject naming each field, and is reported whole.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from passerelle.kube.objects import InvalidObject, timestamp
from passerelle.kube.selector import Requirement, Selector
from passerelle.kube.shapes import items, mapping
from passerelle.kube.snapshot import Object, key_of

GROUP = "gateway.networking.k8s.io"
API_VERSIONS = frozenset({f"{GROUP}/v1", f"{GROUP}/v1beta1"})
PROTOCOLS = frozenset({"HTTP", "HTTPS"})  # the listener protocols HTTPRoutes attach to
IGNORED_RULE_FIELDS = ("timeouts", "retry", "sessionPersistence")  # HTTPRouteRule: not implemented
_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_HOSTNAME = re.compile(rf"^(\*\.)?{_LABEL}(\.{_LABEL})*$")
# HTTPRouteFilter: the field that holds each type's configuration
_FILTER_KEYS = {"URLRewrite": "urlRewrite", "CORS": "cors", "ExtensionRef": "extensionRef"}
_OPERATORS = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}


@dataclass(frozen=True, slots=True, kw_only=True)
class SecretRef:
    namespace: str
    name: str
    group: str = ""
    kind: str = "Secret"


@dataclass(frozen=True, slots=True, kw_only=True)
class Listener:
    name: str
    port: int
    protocol: str
    hostname: str | None = None
    namespaces: str = "Same"  # allowedRoutes.namespaces.from: Same, All, Selector
    selector: Selector | None = None
    kinds: tuple[tuple[str, str], ...] | None = None  # allowedRoutes.kinds (group, kind); None: default
    tls_mode: str = "Terminate"
    certificates: tuple[SecretRef, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewaySpec:
    namespace: str
    name: str
    listeners: tuple[Listener, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ParentRef:
    namespace: str
    name: str
    section: str | None = None
    port: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Match:
    path_type: str = "PathPrefix"
    path: str = "/"
    headers: tuple[tuple[str, str, str], ...] = ()  # (type, name, value)
    query: tuple[tuple[str, str, str], ...] = ()
    method: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Filter:
    type: str
    body: Mapping[str, Any]  # the filter's own key (`requestRedirect: {...}`), as written


@dataclass(frozen=True, slots=True, kw_only=True)
class BackendRefSpec:
    name: str
    namespace: str
    group: str = ""
    kind: str = "Service"
    port: int | None = None
    weight: int = 1
    filters: tuple[Filter, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    matches: tuple[Match, ...]
    filters: tuple[Filter, ...] = ()
    backends: tuple[BackendRefSpec, ...] = ()
    name: str = ""
    ignored: tuple[str, ...] = ()  # fields passerelle does not implement (timeouts, retry, ...)


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteSpec:
    namespace: str
    name: str
    created: str
    hostnames: tuple[str, ...]
    parents: tuple[ParentRef, ...]
    rules: tuple[Rule, ...]

    @property
    def age_key(self) -> tuple[str, str, str]:
        """The Gateway API's tie-break between routes: oldest first, then namespace/name."""
        return (self.created or "~", self.namespace, self.name)


class _Reader:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def mapping(self, raw: Any, where: str) -> Mapping[str, Any]:
        if raw is None:
            return {}
        if not isinstance(raw, Mapping):
            self.errors.append(f"{where}: must be an object")
            return {}
        return raw

    def items(self, raw: Any, where: str) -> list[Any]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            self.errors.append(f"{where}: must be a list")
            return []
        return raw

    def text(self, raw: Any, where: str, default: str | None = None) -> str | None:
        if raw is None:
            return default
        if not isinstance(raw, str):
            self.errors.append(f"{where}: must be a string")
            return default
        return raw

    def hostname(self, raw: Any, where: str) -> str:
        """A Gateway API Hostname: a DNS name, optionally with a leading `*.` label, lower-cased."""
        text = (self.text(raw, where, "") or "").lower()
        if not _HOSTNAME.match(text) or len(text) > 253:
            self.errors.append(f"{where}: {raw!r} is not a host name (a DNS name, or *. and one)")
        return text

    def port(self, raw: Any, where: str) -> int | None:
        if raw is None:
            return None
        if isinstance(raw, bool) or not isinstance(raw, int) or not 0 < raw < 65536:
            self.errors.append(f"{where}: must be a port number (1-65535)")
            return None
        return raw

    def done(self) -> None:
        if self.errors:
            raise InvalidObject(self.errors)


def read_gateway(obj: Object) -> GatewaySpec:
    _, namespace, name = key_of(obj)
    r = _Reader()
    spec = r.mapping(obj.get("spec"), "spec")
    listeners = []
    for i, raw in enumerate(r.items(spec.get("listeners"), "spec.listeners")):
        where = f"spec.listeners[{i}]"
        item = r.mapping(raw, where)
        lname = r.text(item.get("name"), f"{where}.name", "") or ""
        port = r.port(item.get("port"), f"{where}.port")
        protocol = r.text(item.get("protocol"), f"{where}.protocol", "") or ""
        allowed = r.mapping(item.get("allowedRoutes"), f"{where}.allowedRoutes")
        ns = r.mapping(allowed.get("namespaces"), f"{where}.allowedRoutes.namespaces")
        origin = r.text(ns.get("from"), f"{where}.allowedRoutes.namespaces.from", "Same") or "Same"
        if origin not in ("Same", "All", "Selector"):
            r.errors.append(
                f"{where}.allowedRoutes.namespaces.from: {origin!r} must be Same, All or Selector"
            )
        selector = None
        if origin == "Selector":
            selector = _selector(r, ns.get("selector"), f"{where}.allowedRoutes.namespaces.selector")
        kinds = None
        if allowed.get("kinds") is not None:
            kinds = tuple(
                (
                    r.text(k.get("group"), f"{where}.allowedRoutes.kinds[{j}].group", GROUP) or "",
                    r.text(k.get("kind"), f"{where}.allowedRoutes.kinds[{j}].kind", "") or "",
                )
                for j, k in enumerate(r.items(allowed.get("kinds"), f"{where}.allowedRoutes.kinds"))
                if isinstance(k, Mapping)
            )
        tls = r.mapping(item.get("tls"), f"{where}.tls")
        certificates = tuple(
            SecretRef(
                namespace=r.text(c.get("namespace"), f"{where}.tls.certificateRefs[{j}].namespace", namespace)
                or namespace,
                name=r.text(c.get("name"), f"{where}.tls.certificateRefs[{j}].name", "") or "",
                group=r.text(c.get("group"), f"{where}.tls.certificateRefs[{j}].group", "") or "",
                kind=r.text(c.get("kind"), f"{where}.tls.certificateRefs[{j}].kind", "Secret") or "Secret",
            )
            for j, c in enumerate(r.items(tls.get("certificateRefs"), f"{where}.tls.certificateRefs"))
            if isinstance(c, Mapping)
        )
        hostname = r.hostname(item.get("hostname"), f"{where}.hostname") if item.get("hostname") else None
        if port is not None:
            listeners.append(
                Listener(
                    name=lname,
                    port=port,
                    protocol=protocol,
                    hostname=hostname,
                    namespaces=origin,
                    selector=selector,
                    kinds=kinds,
                    tls_mode=r.text(tls.get("mode"), f"{where}.tls.mode", "Terminate") or "Terminate",
                    certificates=certificates,
                )
            )
    names = [listener.name for listener in listeners]
    if len(set(names)) != len(names):
        r.errors.append("spec.listeners: listener names must be unique")
    r.done()
    return GatewaySpec(namespace=namespace, name=name, listeners=tuple(listeners))


def _selector(r: _Reader, raw: Any, where: str) -> Selector:
    """A metav1.LabelSelector: matchLabels and matchExpressions, all of which must hold."""
    body = r.mapping(raw, where)
    requirements = [
        Requirement(key=str(k), op="in", values=frozenset({str(v)}))
        for k, v in r.mapping(body.get("matchLabels"), f"{where}.matchLabels").items()
    ]
    for i, e in enumerate(r.items(body.get("matchExpressions"), f"{where}.matchExpressions")):
        e = r.mapping(e, f"{where}.matchExpressions[{i}]")
        op = _OPERATORS.get(str(e.get("operator")))
        if op is None:
            r.errors.append(
                f"{where}.matchExpressions[{i}].operator: must be In, NotIn, Exists or DoesNotExist"
            )
            continue
        values = frozenset(str(v) for v in r.items(e.get("values"), f"{where}.matchExpressions[{i}].values"))
        requirements.append(Requirement(key=str(e.get("key", "")), op=op, values=values))
    return Selector(requirements=tuple(requirements), text=str(dict(body)))


def read_route(obj: Object) -> RouteSpec:
    _, namespace, name = key_of(obj)
    r = _Reader()
    meta = obj.get("metadata") or {}
    spec = r.mapping(obj.get("spec"), "spec")
    hostnames = tuple(
        r.hostname(h, f"spec.hostnames[{i}]")
        for i, h in enumerate(r.items(spec.get("hostnames"), "spec.hostnames"))
    )
    parents = []
    for i, raw in enumerate(r.items(spec.get("parentRefs"), "spec.parentRefs")):
        ref = r.mapping(raw, f"spec.parentRefs[{i}]")
        if (ref.get("group") or GROUP) != GROUP or (ref.get("kind") or "Gateway") != "Gateway":
            continue  # another kind of parent (a Service, for GAMMA): not a Gateway's route
        parents.append(
            ParentRef(
                namespace=r.text(ref.get("namespace"), f"spec.parentRefs[{i}].namespace", namespace)
                or namespace,
                name=r.text(ref.get("name"), f"spec.parentRefs[{i}].name", "") or "",
                section=r.text(ref.get("sectionName"), f"spec.parentRefs[{i}].sectionName"),
                port=r.port(ref.get("port"), f"spec.parentRefs[{i}].port"),
            )
        )
    rules = []
    raw_rules = spec.get("rules")
    for i, raw in enumerate(r.items(raw_rules, "spec.rules") if raw_rules is not None else [{}]):
        rules.append(_rule(r, r.mapping(raw, f"spec.rules[{i}]"), f"spec.rules[{i}]", namespace))
    r.done()
    created = timestamp(meta.get("creationTimestamp"))
    return RouteSpec(
        namespace=namespace,
        name=name,
        created=created,
        hostnames=hostnames,
        parents=tuple(parents),
        rules=tuple(rules),
    )


def _rule(r: _Reader, raw: Mapping[str, Any], where: str, namespace: str) -> Rule:
    matches = []
    for j, m in enumerate(r.items(raw.get("matches"), f"{where}.matches")):
        m = r.mapping(m, f"{where}.matches[{j}]")
        path = r.mapping(m.get("path"), f"{where}.matches[{j}].path")
        matches.append(
            Match(
                path_type=r.text(path.get("type"), f"{where}.matches[{j}].path.type", "PathPrefix")
                or "PathPrefix",
                path=r.text(path.get("value"), f"{where}.matches[{j}].path.value", "/") or "/",
                headers=_pairs(r, m.get("headers"), f"{where}.matches[{j}].headers"),
                query=_pairs(r, m.get("queryParams"), f"{where}.matches[{j}].queryParams"),
                method=r.text(m.get("method"), f"{where}.matches[{j}].method"),
            )
        )
    backends = []
    for k, b in enumerate(r.items(raw.get("backendRefs"), f"{where}.backendRefs")):
        b = r.mapping(b, f"{where}.backendRefs[{k}]")
        weight = b.get("weight", 1)
        if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 1_000_000:
            r.errors.append(f"{where}.backendRefs[{k}].weight: must be a number from 0 to 1000000")
            weight = 1
        backends.append(
            BackendRefSpec(
                name=r.text(b.get("name"), f"{where}.backendRefs[{k}].name", "") or "",
                namespace=r.text(b.get("namespace"), f"{where}.backendRefs[{k}].namespace", namespace)
                or namespace,
                group=r.text(b.get("group"), f"{where}.backendRefs[{k}].group", "") or "",
                kind=r.text(b.get("kind"), f"{where}.backendRefs[{k}].kind", "Service") or "Service",
                port=r.port(b.get("port"), f"{where}.backendRefs[{k}].port"),
                weight=weight,
                filters=_filters(r, b.get("filters"), f"{where}.backendRefs[{k}].filters"),
            )
        )
    return Rule(
        matches=tuple(matches) or (Match(),),
        filters=_filters(r, raw.get("filters"), f"{where}.filters"),
        backends=tuple(backends),
        name=r.text(raw.get("name"), f"{where}.name", "") or "",
        ignored=tuple(key for key in IGNORED_RULE_FIELDS if raw.get(key) is not None),
    )


def _pairs(r: _Reader, raw: Any, where: str) -> tuple[tuple[str, str, str], ...]:
    out = []
    for i, item in enumerate(r.items(raw, where)):
        item = r.mapping(item, f"{where}[{i}]")
        name = r.text(item.get("name"), f"{where}[{i}].name", "") or ""
        value = r.text(item.get("value"), f"{where}[{i}].value", "") or ""
        if not name:
            r.errors.append(f"{where}[{i}].name: is required")
        out.append((r.text(item.get("type"), f"{where}[{i}].type", "Exact") or "Exact", name, value))
    return tuple(out)


def _filters(r: _Reader, raw: Any, where: str) -> tuple[Filter, ...]:
    out = []
    for i, item in enumerate(r.items(raw, where)):
        item = r.mapping(item, f"{where}[{i}]")
        kind = r.text(item.get("type"), f"{where}[{i}].type", "") or ""
        key = _FILTER_KEYS.get(kind, kind[:1].lower() + kind[1:])
        out.append(Filter(type=kind, body=r.mapping(item.get(key), f"{where}[{i}].{key}")))
    return tuple(out)


@dataclass(frozen=True, slots=True, kw_only=True)
class Grant:
    """One ReferenceGrant `from` x `to` pair, in the namespace of the objects it lets be named."""

    namespace: str
    from_group: str
    from_kind: str
    from_namespace: str
    to_group: str
    to_kind: str
    to_name: str | None


def read_grants(obj: Object) -> list[Grant]:
    _, namespace, _ = key_of(obj)
    spec = mapping(obj.get("spec"))
    out = []
    for f in items(spec.get("from")):
        for t in items(spec.get("to")):
            if isinstance(f, Mapping) and isinstance(t, Mapping):
                out.append(
                    Grant(
                        namespace=namespace,
                        from_group=str(f.get("group", "")),
                        from_kind=str(f.get("kind", "")),
                        from_namespace=str(f.get("namespace", "")),
                        to_group=str(t.get("group", "")),
                        to_kind=str(t.get("kind", "")),
                        to_name=str(t["name"]) if t.get("name") else None,
                    )
                )
    return out
