"""Ingresses -> the certificates they want from ACME resolvers (pure, part of translate()).

An Ingress gets its resolver from `passerelle.io/cert-resolver`, else Traefik 2/3's
`traefik.ingress.kubernetes.io/router.tls.certresolver`, else the first entry point its routers
are on whose `tls.certResolver` names one (Traefik's `http.tls.certResolver`, 1.7's `onHostRule`).
With a resolver, each `spec.tls` entry without a usable Secret (none named, missing, or bad) is one
SAN certificate for the entry's hosts (all the rule hosts when the entry lists none); an Ingress
without `spec.tls` gets one certificate per rule host, as Traefik makes one per router. An entry
whose Secret is usable is served from the Secret and never ordered, and neither is a name that any
usable Secret's certificate covers (exactly or by wildcard). Wildcards need DNS-01, which
passerelle does not do: they are a Problem, and the entry's other names are still ordered.
Requests for the same (resolver, names) from several Ingresses are one request.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from passerelle.kube.objects import IngressSpec
from passerelle.model import Certificate, CertificateRequest, ObjectRef, Problem, Router, Severity
from passerelle.tls.store import certificate_index

_EVERY = "*"  # a router on every entry point
RESOLVER_ANNOTATIONS = (
    "passerelle.io/cert-resolver",
    "traefik.ingress.kubernetes.io/router.tls.certresolver",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class AcmeTranslation:
    """resolvers: the names defined in certificatesResolvers (None: accept any, `passerelle check`).
    entrypoints: (entry point, its tls.certResolver or "") for every entry point, in order."""

    resolvers: frozenset[str] | None = None
    entrypoints: tuple[tuple[str, str], ...] = ()


def resolver_of(annotations: Mapping[str, str]) -> tuple[str, str | None]:
    """(resolver named by annotations or "", a warning when the two keys disagree)."""
    values = [(k, annotations[k].strip()) for k in RESOLVER_ANNOTATIONS if annotations.get(k, "").strip()]
    if not values:
        return "", None
    if len(values) == 2 and values[0][1] != values[1][1]:
        return values[0][1], f"{values[0][0]} ({values[0][1]!r}) overrides {values[1][0]} ({values[1][1]!r})"
    return values[0][1], None


def certificate_requests(
    specs: Sequence[IngressSpec],
    without_certificate: Mapping[tuple[str, str], Collection[int]],
    routers: Iterable[Router],
    options: AcmeTranslation,
    problems: list[Problem],
    secrets: Iterable[Certificate] = (),
) -> tuple[CertificateRequest, ...]:
    """`specs` oldest first; `without_certificate[(ns, name)]`: its spec.tls indexes with no usable
    Secret; `routers`: the version's, to know where each Ingress is served; `secrets`: the
    certificates from Secrets, whose names are never ordered (SNI would serve the Secret's)."""
    covered = certificate_index(secrets)
    served: dict[str, set[str]] = {}
    for router in routers:  # `()` is every entry point
        served.setdefault(router.source, set()).update(router.entrypoints or (_EVERY,))
    defaults = [(name, resolver) for name, resolver in options.entrypoints if resolver]
    wanted: dict[tuple[str, tuple[str, ...]], list[ObjectRef]] = {}
    for spec in specs:
        where = served.get(f"Ingress {spec.namespace}/{spec.name}")
        if not where:
            continue  # not served: a certificate for it would serve nobody
        ref = ObjectRef(kind="Ingress", namespace=spec.namespace, name=spec.name)
        resolver, warning = resolver_of(spec.annotations)
        if warning:
            problems.append(Problem(ref=ref, message=warning, severity=Severity.WARNING))
        if not resolver:
            resolver = next((r for name, r in defaults if name in where or _EVERY in where), "")
            if not resolver:
                continue
        elif options.resolvers is not None and resolver not in options.resolvers:
            message = f"certificate resolver {resolver!r} is not defined in certificatesResolvers; no certificate is ordered"
            problems.append(Problem(ref=ref, message=message))
            continue
        for names in _blocks(spec, without_certificate.get((spec.namespace, spec.name), ())):
            kept = tuple(n for n in _orderable(names, ref, problems) if covered.get(n) is None)
            if kept:
                wanted.setdefault((resolver, kept), []).append(ref)
    return tuple(
        CertificateRequest(resolver=resolver, names=names, sources=tuple(refs))
        for (resolver, names), refs in wanted.items()
    )


def _blocks(spec: IngressSpec, missing: Collection[int]) -> list[list[str]]:
    rule_hosts = [r.host for r in spec.rules if r.host]
    if not spec.tls:
        return [[host] for host in dict.fromkeys(rule_hosts)]
    return [list(spec.tls[i].hosts or rule_hosts) for i in sorted(missing)]


def _orderable(names: list[str], ref: ObjectRef, problems: list[Problem]) -> tuple[str, ...]:
    kept: list[str] = []
    for name in dict.fromkeys(n.lower().rstrip(".") for n in names):
        why = ""
        if name.startswith("*."):
            why = "a wildcard needs the DNS-01 challenge, which passerelle does not support"
        elif _is_ip(name):
            why = "an IP address is not a DNS name"
        if why:
            message = f"no certificate is ordered for {name}: {why}"
            problems.append(Problem(ref=ref, message=message, severity=Severity.WARNING))
        else:
            kept.append(name)
    return tuple(kept)


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True
