"""Traefik TLSOption objects -> TLS option definitions of the version, and the references to them.

A TLSOption `n` in namespace `ns` defines the option `ns-n@kubernetescrd`, Traefik's name; one named
`default` (in any namespace) replaces the default option instead, unless the static configuration
defines `tls.options.default` or several namespaces have one (then none of them is used, and each
gets a Problem: Traefik refuses a default defined twice too). The spec is read strictly: an unknown
key, a bad value, or a CA Secret (`clientAuth.secretNames`, in the TLSOption's namespace) that is
missing or holds no CA makes the option invalid, with an error Problem on the object. An option
that was valid before keeps its last valid definition (CAs included) while it is invalid: an edit
gone wrong, or a deleted CA Secret, must not drop client authentication from its hosts (nor from
every host, for `default`). Deleting the object drops the option.

An Ingress names an option with `router.tls.options` (or `passerelle.io/tls-options`): `name` or
`name@file` for a static option; `ns-n@kubernetescrd` for a TLSOption; a bare `n` that is not a
static option is the TLSOption `n` of the Ingress's own namespace (as an IngressRoute's
`tls.options.name` resolves; Traefik's Ingress provider would need the `@kubernetescrd` name). An
Ingress naming an option that is unknown or invalid is not served (kube/tls.py): an mTLS option
that fails must not turn into a host without client authentication.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from passerelle.kube.middlewares import LEGACY_GROUP, PROVIDER
from passerelle.kube.objects import timestamp
from passerelle.kube.snapshot import ClusterSnapshot, Object, key_of
from passerelle.model import ObjectRef, Problem, Severity
from passerelle.tls import options as names
from passerelle.tls.options import DEFAULT, TlsOptions

API_VERSIONS = frozenset({"traefik.io/v1alpha1", f"{LEGACY_GROUP}/v1alpha1"})
ReadCA = Callable[[str, str], tuple[str | None, str]]  # (namespace, name) -> (PEM, why not)
_SPEC_KEYS = frozenset(
    {
        "minVersion",
        "maxVersion",
        "cipherSuites",
        "curvePreferences",
        "clientAuth",
        "sniStrict",
        "alpnProtocols",
        "preferServerCipherSuites",
        "disableSessionTickets",
    }
)
_T = TypeVar("_T")
_IGNORED = {
    "preferServerCipherSuites": "deprecated in Traefik and ignored (OpenSSL's server order applies)",
    "disableSessionTickets": "not supported yet and ignored",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Reference:
    """What an annotation's option name resolves to: `name` to use, or `error` (then not served)."""

    name: str = ""
    error: str = ""


class OptionIndex:
    """Every TLSOption of a snapshot, read once; `defined` holds the valid ones by option name.

    static: the static option names (with `default`); None accepts any static name (offline
        `passerelle check` without a configuration). static_default: `tls.options.default` is set.
    previous: the options `defined` by the last translation, kept for objects now invalid.
    """

    def __init__(
        self,
        snapshot: ClusterSnapshot,
        problems: list[Problem],
        read_ca: ReadCA,
        *,
        static: frozenset[str] | None,
        static_default: bool,
        previous: Mapping[str, TlsOptions] | None = None,
    ) -> None:
        self._static = static
        self.defined: dict[str, TlsOptions] = {}
        self._invalid: dict[str, str] = {}
        claims: dict[str, list[tuple[tuple[bool, str, str, str], Object]]] = {}
        for obj in snapshot.of_kind("TLSOption") + snapshot.of_kind(f"TLSOption.{LEGACY_GROUP}"):
            if obj.get("apiVersion") not in API_VERSIONS:
                continue
            _, namespace, name = key_of(obj)
            legacy = str(obj.get("apiVersion")).startswith(LEGACY_GROUP + "/")
            created = timestamp((obj.get("metadata") or {}).get("creationTimestamp")) or "~"
            full = DEFAULT if name == DEFAULT else f"{namespace}-{name}{PROVIDER}"
            claims.setdefault(full, []).append(((legacy, created, namespace, name), obj))
        for full, objs in sorted(claims.items()):
            objs.sort(key=lambda claim: claim[0])
            if full == DEFAULT and (static_default or len({key_of(o)[1] for _, o in objs}) > 1):
                why = (
                    "tls.options.default is set in the static configuration"
                    if static_default
                    else "TLSOption `default` exists in several namespaces: "
                    + ", ".join(sorted({key_of(o)[1] for _, o in objs}))
                )
                for _, obj in objs:
                    problems.append(_problem(obj, f"not used: {why}; the static default option applies"))
                continue
            for _, loser in objs[1:]:
                problems.append(
                    _problem(
                        loser,
                        f"not used: {full} names {_describe(objs[0][1])} too, which wins "
                        "(traefik.io before traefik.containo.us, then the oldest, then by namespace/name)",
                    )
                )
            self._add(full, objs[0][1], problems, read_ca, (previous or {}).get(full))

    def _add(
        self, full: str, obj: Object, problems: list[Problem], read_ca: ReadCA, last: TlsOptions | None
    ) -> None:
        _, namespace, _ = key_of(obj)
        warnings: list[str] = []
        try:
            option = parse_tls_option(
                obj.get("spec"),
                name=full,
                namespace=namespace,
                read_ca=read_ca,
                warnings=warnings,
                source=_describe(obj),
            )
        except ValueError as e:
            if last is not None and last.source == _describe(obj):
                self.defined[full] = last
                problems.append(_problem(obj, f"invalid: {e}; its last valid definition stays in use"))
                return
            self._invalid[full] = str(e)
            problems.append(_problem(obj, f"invalid: {e}"))
            return
        problems.extend(_problem(obj, w, Severity.WARNING) for w in warnings)
        self.defined[full] = option

    def resolve(self, value: str, namespace: str) -> Reference:
        """The option an annotation value names, for an Ingress in `namespace`."""
        value = value.strip()
        name, at, provider = value.partition("@")
        if not at or provider == "file":
            if name == DEFAULT or self._static is None or name in self._static:
                return Reference(name=name)
            if at:
                return Reference(error=f"TLS option {value!r} is not defined in tls.options")
            local = f"{namespace}-{name}{PROVIDER}"
            if local in self.defined or local in self._invalid:
                return self._cluster(local)
            return Reference(
                error=f"TLS option {value!r} is not defined in tls.options, and namespace {namespace} "
                f"has no TLSOption {name!r}"
            )
        if "@" + provider == PROVIDER:
            return self._cluster(value)
        return Reference(error=f"TLS option {value!r} is not defined (the provider @{provider} has none)")

    def _cluster(self, full: str) -> Reference:
        if full in self.defined:
            return Reference(name=full)
        if full in self._invalid:
            return Reference(error=f"TLS option {full} is invalid: {self._invalid[full]}")
        return Reference(
            error=f"TLS option {full} does not exist (a TLSOption object is named "
            f"<namespace>-<name>{PROVIDER})"
        )


def parse_tls_option(
    spec: Any,
    *,
    name: str,
    namespace: str,
    read_ca: ReadCA,
    warnings: list[str],
    source: str = "",
) -> TlsOptions:
    """A TLSOption's spec as a TlsOptions; ValueError says what is wrong, `warnings` what is ignored."""
    spec = {} if spec is None else spec
    if not isinstance(spec, Mapping):
        raise ValueError("spec must be a mapping")
    unknown = sorted(set(spec) - _SPEC_KEYS)
    if unknown:
        raise ValueError(f"unknown key spec.{unknown[0]}; known: {', '.join(sorted(_SPEC_KEYS))}")
    for key, why in _IGNORED.items():
        if key in spec:
            warnings.append(f"spec.{key} is {why}")
    low = _string(spec, "minVersion") or "VersionTLS12"
    high = _string(spec, "maxVersion")
    auth = spec.get("clientAuth") or {}
    if not isinstance(auth, Mapping):
        raise ValueError("spec.clientAuth must be a mapping")
    extra = sorted(set(auth) - {"secretNames", "clientAuthType"})
    if extra:
        raise ValueError(f"unknown key spec.clientAuth.{extra[0]}; known: clientAuthType, secretNames")
    secrets = _strings(auth, "secretNames", "spec.clientAuth.")
    ca_pem = ""
    for secret in secrets:
        pem, why = read_ca(namespace, secret)
        if pem is None:
            raise ValueError(f"spec.clientAuth.secretNames: Secret {namespace}/{secret}: {why}")
        ca_pem += pem
    kind = _string(auth, "clientAuthType", "spec.clientAuth.")
    client_auth = _field(
        "clientAuth.clientAuthType", lambda: names.effective_client_auth(kind, bool(secrets))
    )
    min_version = _field("minVersion", lambda: names.parse_version(low))
    max_version = _field("maxVersion", lambda: names.parse_version(high)) if high else None
    if max_version is not None and max_version < min_version:
        raise ValueError(f"spec.maxVersion {high} is below spec.minVersion {low}")
    suites, curves = _strings(spec, "cipherSuites"), _strings(spec, "curvePreferences")
    return TlsOptions(
        name=name,
        min_version=min_version,
        max_version=max_version,
        ciphers=_field("cipherSuites", lambda: names.parse_cipher_suites(suites)),
        curves=_field("curvePreferences", lambda: names.parse_curves(curves)),
        alpn=tuple(_strings(spec, "alpnProtocols") or ("h2", "http/1.1")),
        client_auth=client_auth,
        ca_pem=ca_pem,
        sni_strict=_bool(spec, "sniStrict"),
        source=source,
    )


def _field(key: str, parse: Callable[[], _T]) -> _T:
    try:
        return parse()
    except ValueError as e:
        raise ValueError(f"spec.{key}: {e}") from None


def _string(spec: Mapping[str, Any], key: str, where: str = "spec.") -> str:
    value = spec.get(key, "")
    if not isinstance(value, str):
        raise ValueError(f"{where}{key} must be a string")
    return value.strip()


def _strings(spec: Mapping[str, Any], key: str, where: str = "spec.") -> list[str]:
    value = spec.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{where}{key} must be a list of strings")
    return value


def _bool(spec: Mapping[str, Any], key: str) -> bool:
    value = spec.get(key, False)
    if not isinstance(value, bool):
        raise ValueError(f"spec.{key} must be true or false")
    return value


def _problem(obj: Object, message: str, severity: Severity = Severity.ERROR) -> Problem:
    kind, namespace, name = key_of(obj)
    return Problem(
        ref=ObjectRef(kind=kind, namespace=namespace, name=name), message=message, severity=severity
    )


def _describe(obj: Object) -> str:
    _, namespace, name = key_of(obj)
    return f"TLSOption {namespace}/{name}"
