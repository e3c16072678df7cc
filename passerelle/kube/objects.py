"""Reading Ingress objects of every served apiVersion into one shape, with the API server's checks.

`networking.k8s.io/v1` is the reference shape; `networking.k8s.io/v1beta1` and `extensions/v1beta1`
(`spec.backend`, `serviceName`/`servicePort`, optional pathType) are read into the same
`IngressSpec`. Validation mirrors kubernetes `pkg/apis/networking/validation`: an object the API
server would have rejected is reported whole and not served, so a manifest directory behaves like a
cluster would.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from passerelle.kube.shapes import MALFORMED, mapping
from passerelle.kube.snapshot import Object, key_of

INGRESS_API_VERSIONS = frozenset({"networking.k8s.io/v1", "networking.k8s.io/v1beta1", "extensions/v1beta1"})
PATH_TYPES = frozenset({"Exact", "Prefix", "ImplementationSpecific"})

# validateIngressHTTPPath: sequences and suffixes refused in Exact and Prefix paths.
_BAD_PATH_SEQUENCES = ("//", "/./", "/../", "%2f", "%2F")
_BAD_PATH_SUFFIXES = ("/..", "/.")
_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_HOST = re.compile(rf"^(\*\.)?{_DNS_LABEL}(\.{_DNS_LABEL})*$")


@dataclass(frozen=True, slots=True, kw_only=True)
class BackendRef:
    service: str
    port: int | str  # a Service port number, or a port name


@dataclass(frozen=True, slots=True, kw_only=True)
class IngressPath:
    path: str
    path_type: str
    backend: BackendRef


@dataclass(frozen=True, slots=True, kw_only=True)
class IngressRule:
    host: str | None
    paths: tuple[IngressPath, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class IngressTLS:
    """One `spec.tls` entry: a Secret in the Ingress's namespace (empty: the default certificate)."""

    hosts: tuple[str, ...]
    secret_name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class IngressSpec:
    namespace: str
    name: str
    created: str  # metadata.creationTimestamp (RFC 3339 sorts as text), "" when unknown
    class_name: str | None  # spec.ingressClassName
    class_annotation: str | None  # kubernetes.io/ingress.class
    annotations: Mapping[str, str]
    default_backend: BackendRef | None
    rules: tuple[IngressRule, ...]
    tls: tuple[IngressTLS, ...] = ()

    @property
    def has_tls(self) -> bool:
        """spec.tls is not empty: decides placement (kube/placement.py)."""
        return bool(self.tls)

    @property
    def age_key(self) -> tuple[str, str, str]:
        """Oldest first; objects without a timestamp tie-break on namespace/name, like ingress-nginx."""
        return (self.created or "~", self.namespace, self.name)


class InvalidObject(ValueError):
    """The object breaks the API's validation rules; `errors` lists each, with its field path."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


def read_ingress(obj: Object) -> IngressSpec:
    """The Ingress `obj` as passerelle reads it; raises InvalidObject, listing what is wrong, and
    nothing else whatever `obj` holds (a field of a type nobody expects is one more error)."""
    try:
        return _read_ingress(obj)
    except InvalidObject:
        raise
    except MALFORMED as e:
        raise InvalidObject([f"malformed: {e!r}"]) from None


def _read_ingress(obj: Object) -> IngressSpec:
    """Normalize an Ingress; raises InvalidObject listing every validation error found."""
    _, namespace, name = key_of(obj)
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    legacy = obj.get("apiVersion") != "networking.k8s.io/v1"
    errors: list[str] = []
    if obj.get("apiVersion") not in INGRESS_API_VERSIONS:
        errors.append(f"apiVersion {obj.get('apiVersion')!r} is not served (use networking.k8s.io/v1)")
    if not name:
        errors.append("metadata.name: required")
    if not isinstance(spec, Mapping):
        raise InvalidObject(errors + ["spec: must be an object"])

    default_field = "spec.backend" if legacy else "spec.defaultBackend"
    raw_default = spec.get("backend") if legacy else spec.get("defaultBackend")
    default_backend = None
    if raw_default is not None:
        default_backend = _read_backend(raw_default, default_field, legacy, errors)

    rules = []
    raw_rules = spec.get("rules") or []
    if not isinstance(raw_rules, list):
        errors.append("spec.rules: must be a list")
        raw_rules = []
    for i, raw_rule in enumerate(raw_rules):
        rule = _read_rule(raw_rule, f"spec.rules[{i}]", legacy, errors)
        if rule is not None:
            rules.append(rule)
    tls = _read_tls(spec.get("tls"), errors)
    if raw_default is None and not raw_rules:
        errors.append(f"spec: either `{default_field.split('.')[1]}` or `rules` must be specified")
    if errors:
        raise InvalidObject(errors)

    annotations = {str(k): str(v) for k, v in mapping(meta.get("annotations")).items()}
    return IngressSpec(
        namespace=namespace,
        name=name,
        created=timestamp(meta.get("creationTimestamp")),
        class_name=spec.get("ingressClassName"),
        class_annotation=annotations.get("kubernetes.io/ingress.class"),
        annotations=annotations,
        default_backend=default_backend,
        rules=tuple(rules),
        tls=tls,
    )


def _read_tls(raw: Any, errors: list[str]) -> tuple[IngressTLS, ...]:
    """spec.tls, validated as the API server does (hosts are DNS names, wildcards allowed)."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        errors.append("spec.tls: must be a list")
        return ()
    out = []
    for i, entry in enumerate(raw):
        where = f"spec.tls[{i}]"
        if not isinstance(entry, Mapping):
            errors.append(f"{where}: must be an object")
            continue
        hosts = entry.get("hosts") or []
        secret = entry.get("secretName") or ""
        if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
            errors.append(f"{where}.hosts: must be a list of host names")
            continue
        bad = [h for h in hosts if not _HOST.match(h) or len(h) > 253]
        if bad:
            errors.append(
                f"{where}.hosts: {bad[0]!r} must be a lower-case DNS name, optionally starting with '*.'"
            )
            continue
        if not isinstance(secret, str):
            errors.append(f"{where}.secretName: must be a string")
            continue
        out.append(IngressTLS(hosts=tuple(hosts), secret_name=secret))
    return tuple(out)


def timestamp(value: Any) -> str:
    """RFC 3339 in UTC, as the API server writes it; YAML manifests may hold an unquoted datetime."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return str(value.strftime("%Y-%m-%dT%H:%M:%SZ"))
    return str(value or "")


def _read_rule(raw: Any, where: str, legacy: bool, errors: list[str]) -> IngressRule | None:
    if not isinstance(raw, Mapping):
        errors.append(f"{where}: must be an object")
        return None
    host = raw.get("host") or None
    if host is not None:
        if not isinstance(host, str) or not _HOST.match(host) or len(host) > 253:
            errors.append(
                f"{where}.host: {host!r} must be a lower-case DNS name, optionally starting with '*.'"
            )
            host = None
        elif _is_ip(host):
            errors.append(f"{where}.host: {host!r} must be a DNS name, not an IP address")
            host = None
    http = raw.get("http")
    if http is None:
        return IngressRule(host=host, paths=())  # a host with no paths routes nothing, as upstream
    raw_paths = http.get("paths") if isinstance(http, Mapping) else None
    if not isinstance(raw_paths, list) or not raw_paths:
        errors.append(f"{where}.http.paths: required, at least one path")
        return None
    paths = []
    for j, raw_path in enumerate(raw_paths):
        path = _read_path(raw_path, f"{where}.http.paths[{j}]", legacy, errors)
        if path is not None:
            paths.append(path)
    return IngressRule(host=host, paths=tuple(paths))


def _is_ip(host: str) -> bool:
    if not host.replace(".", "").isdigit():
        return False  # only a dotted-digits name can be an IPv4 address (":" never passes _HOST)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _read_path(raw: Any, where: str, legacy: bool, errors: list[str]) -> IngressPath | None:
    if not isinstance(raw, Mapping):
        errors.append(f"{where}: must be an object")
        return None
    path_type = raw.get("pathType")
    if path_type is None and legacy:
        path_type = "ImplementationSpecific"  # the v1beta1 default
    if path_type not in PATH_TYPES:
        errors.append(f"{where}.pathType: {path_type!r} must be one of Exact, Prefix, ImplementationSpecific")
        return None
    path = raw.get("path")
    if path in (None, "") and path_type == "ImplementationSpecific":
        path = "/"
    if not isinstance(path, str) or not path.startswith("/"):
        errors.append(f"{where}.path: {path!r} must be an absolute path (start with '/')")
        return None
    if path_type != "ImplementationSpecific":
        bad = [s for s in _BAD_PATH_SEQUENCES if s in path] + [
            s for s in _BAD_PATH_SUFFIXES if path.endswith(s)
        ]
        if bad:
            errors.append(f"{where}.path: {path!r} must not contain {bad[0]!r}")
            return None
    backend = _read_backend(raw.get("backend"), f"{where}.backend", legacy, errors)
    if backend is None:
        return None
    return IngressPath(path=path, path_type=path_type, backend=backend)


def _read_backend(raw: Any, where: str, legacy: bool, errors: list[str]) -> BackendRef | None:
    if not isinstance(raw, Mapping):
        errors.append(f"{where}: must be an object")
        return None
    if raw.get("resource") is not None:
        errors.append(f"{where}.resource: resource backends are not supported, use a Service")
        return None
    if legacy:
        name, port = raw.get("serviceName"), raw.get("servicePort")
        port_where = f"{where}.servicePort"
    else:
        service = raw.get("service")
        if not isinstance(service, Mapping):
            errors.append(f"{where}.service: required")
            return None
        name = service.get("name")
        raw_port = service.get("port") or {}
        if not isinstance(raw_port, Mapping):
            errors.append(f"{where}.service.port: must be an object with `number` or `name`")
            return None
        number, port_name = raw_port.get("number"), raw_port.get("name")
        if (number is None) == (port_name is None):
            errors.append(f"{where}.service.port: exactly one of `number` or `name` is required")
            return None
        port = number if number is not None else port_name
        port_where = f"{where}.service.port"
    if not isinstance(name, str) or not name:
        errors.append(f"{where}: service name required")
        return None
    if isinstance(port, str) and port.isdigit():
        port = int(port)  # v1beta1 servicePort is an IntOrString
    if isinstance(port, bool) or not isinstance(port, int | str) or port == "":
        errors.append(f"{port_where}: required, a port number or name")
        return None
    if isinstance(port, int) and not 0 < port < 65536:
        errors.append(f"{port_where}: {port} must be between 1 and 65535")
        return None
    return BackendRef(service=name, port=port)
