"""Ingress TLS -> certificates and per-host TLS options (pure, part of translate()).

Certificates come from `kubernetes.io/tls` Secrets named in `spec.tls[].secretName`, in the
Ingress's namespace (`data` base64 or `stringData`, keys `tls.crt` and `tls.key`). A Secret that is
missing, of another type, or holds a bad or mismatched pair is an error Problem on the Ingress;
its hosts get whatever certificate matches them otherwise, usually the default one, and the
Ingress is still served. An expired certificate is served with a warning (a renewal may be late).

A host's TLS option is named by `passerelle.io/tls-options` or Traefik's
`traefik.ingress.kubernetes.io/router.tls.options` and applies to every host of the Ingress
(rules and spec.tls). Two Ingresses naming different options for one host: the oldest wins (as
for routes) and the later one gets a Problem. Parsed Secrets are remembered by object identity,
as Translator does for Ingresses: loading an RSA key costs about a millisecond.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from passerelle.kube.objects import IngressSpec
from passerelle.kube.snapshot import ClusterSnapshot, Object
from passerelle.model import Certificate, ClientCA, HostOptions, ObjectRef, Problem, Severity, TlsConfig
from passerelle.tls.options import options_reference
from passerelle.tls.store import CertificateError, Parsed, parse_ca_bundle, parse_pair

SECRET_TYPE = "kubernetes.io/tls"
OPTIONS_ANNOTATIONS = ("passerelle.io/tls-options", "traefik.ingress.kubernetes.io/router.tls.options")


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsTranslation:
    """Static names translation checks against.

    options: the TLS option names defined (`tls.options`, and `default`); None accepts any name
        (`passerelle check` without a static configuration).
    ca_secrets: (option, "namespace/name") for options whose clientAuth.caSecret names a Secret.
    default_secret: "namespace/name" of tls.defaultCertificate.secret, or "".
    """

    options: frozenset[str] | None = None
    ca_secrets: tuple[tuple[str, str], ...] = ()
    default_secret: str = ""


def tls_options_of(annotations: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(option name, warning): the host TLS option an Ingress names, passerelle's key first."""
    values = [
        (key, annotations[key].strip()) for key in OPTIONS_ANNOTATIONS if annotations.get(key, "").strip()
    ]
    if not values:
        return None, None
    name = options_reference(values[0][1])
    if len(values) == 2 and options_reference(values[1][1]) != name:
        return name, f"{values[0][0]} ({values[0][1]!r}) overrides {values[1][0]} ({values[1][1]!r})"
    return name, None


class TlsTranslator:
    def __init__(self, options: TlsTranslation = TlsTranslation()) -> None:
        self._options = options
        self._parsed: dict[int, tuple[Object, Parsed | str]] = {}

    def translate(
        self, snapshot: ClusterSnapshot, specs: list[IngressSpec], problems: list[Problem]
    ) -> TlsConfig:
        """`specs` oldest first; problems are appended."""
        seen: dict[int, tuple[Object, Parsed | str]] = {}
        reported: set[Problem] = set()

        def problem(ref: ObjectRef, message: str, severity: Severity = Severity.ERROR) -> None:
            p = Problem(ref=ref, message=message, severity=severity)
            if p not in reported:
                reported.add(p)
                problems.append(p)

        certificates: dict[str, Certificate] = {}
        default_secret = self._options.default_secret
        if default_secret:
            namespace, name = default_secret.split("/")
            ref = ObjectRef(kind="Secret", namespace=namespace, name=name)
            cert, error = self._certificate(snapshot, namespace, name, seen)
            if cert is None:
                problem(ref, f"tls.defaultCertificate: {error}; the generated default certificate is served")
            else:
                if cert.expired:
                    problem(
                        ref,
                        f"tls.defaultCertificate expired on {cert.certificate.not_after}",
                        Severity.WARNING,
                    )
                default = dataclasses.replace(cert.certificate, default=True)
                certificates[default.fingerprint + "/default"] = default

        claims: dict[str, HostOptions] = {}
        for spec in specs:
            ref = ObjectRef(kind="Ingress", namespace=spec.namespace, name=spec.name)
            source = f"Ingress {spec.namespace}/{spec.name}"
            for i, entry in enumerate(spec.tls):
                if not entry.secret_name:
                    continue  # hosts listed without a Secret: the default certificate, as ingress-nginx
                cert, error = self._certificate(snapshot, spec.namespace, entry.secret_name, seen)
                where = f"spec.tls[{i}]"
                hosts = ", ".join(entry.hosts) or "its hosts"
                if cert is None:
                    problem(ref, f"{where}: {error}; the default certificate is served for {hosts}")
                    continue
                c = cert.certificate
                if cert.expired:
                    problem(
                        ref,
                        f"{where}: the certificate in {c.source} expired on {c.not_after}",
                        Severity.WARNING,
                    )
                for host in entry.hosts:
                    if not _covers(c.names, host):
                        problem(
                            ref,
                            f"{where}: the certificate in {c.source} ({', '.join(c.names) or 'no names'}) "
                            f"does not cover {host}",
                            Severity.WARNING,
                        )
                certificates.setdefault(c.fingerprint, c)
            option, warning = tls_options_of(spec.annotations)
            if warning:
                problem(ref, warning, Severity.WARNING)
            if option is None:
                continue
            if self._options.options is not None and option not in self._options.options:
                problem(
                    ref,
                    f"TLS option {option!r} is not defined in tls.options; its hosts use the entry point's",
                )
                continue
            hosts_of = [r.host for r in spec.rules if r.host] + [h for t in spec.tls for h in t.hosts]
            if not hosts_of:
                problem(
                    ref, f"TLS option {option!r} is not applied: the Ingress names no host", Severity.WARNING
                )
            for host in dict.fromkeys(hosts_of):
                claim = claims.setdefault(host, HostOptions(host=host, options=option, source=source))
                if claim.options != option:
                    problem(
                        ref,
                        f"TLS option {option!r} for {host} conflicts with {claim.options!r} set by "
                        f"{claim.source}, which is older and wins",
                    )

        client_cas: list[ClientCA] = []
        for option, secret in self._options.ca_secrets:
            namespace, secret_name = secret.split("/")
            ref = ObjectRef(kind="Secret", namespace=namespace, name=secret_name)
            obj = snapshot.get("Secret", namespace, secret_name)
            if obj is None:
                problem(
                    ref,
                    f"tls.options.{option}.clientAuth.caSecret: not found; no client certificate verifies",
                )
                continue
            data, bad = secret_data(obj)
            pem = data.get("ca.crt") or data.get("tls.ca") if bad is None else None
            if pem is None:
                problem(ref, f"tls.options.{option}.clientAuth.caSecret: {bad or 'no ca.crt key'}")
                continue
            try:
                client_cas.append(
                    ClientCA(options=option, pem=parse_ca_bundle(pem), source=f"Secret {secret}")
                )
            except CertificateError as e:
                problem(ref, f"tls.options.{option}.clientAuth.caSecret: {e}")
        self._parsed = seen
        return TlsConfig(
            certificates=tuple(certificates.values()),
            hosts=tuple(sorted(claims.values())),
            client_cas=tuple(client_cas),
        )

    def _certificate(
        self,
        snapshot: ClusterSnapshot,
        namespace: str,
        name: str,
        seen: dict[int, tuple[Object, Parsed | str]],
    ) -> tuple[Parsed | None, str]:
        obj = snapshot.get("Secret", namespace, name)
        if obj is None:
            return None, f"Secret {namespace}/{name} not found"
        cached = self._parsed.get(id(obj)) or seen.get(id(obj))
        if cached is None or cached[0] is not obj:
            cached = (obj, _read_tls_secret(obj, f"Secret {namespace}/{name}"))
        seen[id(obj)] = cached
        result = cached[1]
        return (None, result) if isinstance(result, str) else (result, "")


def _read_tls_secret(obj: Object, source: str) -> Parsed | str:
    kind = obj.get("type") or "Opaque"
    if kind != SECRET_TYPE:
        return f"{source} has type {kind}, not {SECRET_TYPE}"
    data, error = secret_data(obj)
    if error is not None:
        return f"{source}: {error}"
    missing = [k for k in ("tls.crt", "tls.key") if not data.get(k)]
    if missing:
        return f"{source} has no {' or '.join(missing)}"
    try:
        return parse_pair(data["tls.crt"], data["tls.key"], source=source)
    except CertificateError as e:
        return f"{source}: {e}"


def secret_data(obj: Object) -> tuple[dict[str, bytes], str | None]:
    """A Secret's values: `data` base64-decoded, `stringData` over it (as the API server merges)."""
    out: dict[str, bytes] = {}
    data, strings = obj.get("data") or {}, obj.get("stringData") or {}
    if not isinstance(data, Mapping) or not isinstance(strings, Mapping):
        return out, "data and stringData must be mappings"
    for key, value in data.items():
        try:
            out[str(key)] = base64.b64decode(str(value), validate=True)
        except (binascii.Error, ValueError):
            return out, f"data.{key} is not base64"
    out.update((str(k), str(v).encode()) for k, v in strings.items())
    return out, None


def _covers(names: tuple[str, ...], host: str) -> bool:
    if host in names:
        return True
    if host.startswith("*."):
        return False
    _, dot, parent = host.partition(".")
    return bool(dot) and f"*.{parent}" in names
