"""Ingress TLS -> certificates and per-host TLS options (pure, part of translate()).

Certificates come from `kubernetes.io/tls` Secrets named in `spec.tls[].secretName`, in the
Ingress's namespace (`data` base64 or `stringData`, keys `tls.crt` and `tls.key`). A Secret that is
missing, of another type, or holds a bad or mismatched pair is an error Problem on the Ingress;
its hosts get whatever certificate matches them otherwise, usually the default one, and the
Ingress is still served. An expired certificate is served with a warning (a renewal may be late).

A host's TLS option is named by `passerelle.io/tls-options` or Traefik's
`traefik.ingress.kubernetes.io/router.tls.options` and applies to every host of the Ingress
(rules and spec.tls): a static option or a TLSOption object (tlsoptions.py says how names
resolve). Two Ingresses naming different options for one host: the oldest wins (as for routes)
and the later one gets a Problem. An Ingress naming an undefined or invalid option is not served
at all (ingress.py asks `tls_option_error` before it builds routers), as Traefik disables it.
The version carries the TLSOption definitions that hosts use, and a `default` one. Parsed
Secrets are remembered by object identity, as Translator does for Ingresses: loading an RSA key
costs about a millisecond.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from passerelle.kube.acme import AcmeTranslation, certificate_requests
from passerelle.kube.objects import IngressSpec, IngressTLS
from passerelle.kube.snapshot import ClusterSnapshot, Object
from passerelle.kube.tlsoptions import OptionIndex, ReadCA
from passerelle.model import (
    Certificate,
    ClientCA,
    HostOptions,
    ObjectRef,
    Problem,
    Report,
    Router,
    Severity,
    TlsConfig,
)
from passerelle.tls.options import DEFAULT, TlsOptions, options_reference
from passerelle.tls.store import CertificateError, Parsed, parse_ca_bundle, parse_pair

SECRET_TYPE = "kubernetes.io/tls"
OPTIONS_ANNOTATIONS = ("passerelle.io/tls-options", "traefik.ingress.kubernetes.io/router.tls.options")


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsTranslation:
    """Static names translation checks against.

    options: the TLS option names defined (`tls.options`, and `default`); None accepts any name
        (`passerelle check` without a static configuration).
    ca_secrets: (option, "namespace/name") for options whose clientAuth.caSecret names a Secret.
    static_default: `tls.options.default` is set (a TLSOption `default` then does not replace it).
    default_secret: "namespace/name" of tls.defaultCertificate.secret, or "".
    acme: certificate resolvers and entry point defaults (kube/acme.py).
    """

    options: frozenset[str] | None = None
    static_default: bool = False
    ca_secrets: tuple[tuple[str, str], ...] = ()
    default_secret: str = ""
    acme: AcmeTranslation = AcmeTranslation()


def tls_options_of(annotations: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(option name as written, warning): the TLS option an Ingress names, passerelle's key first."""
    values = [
        (key, annotations[key].strip()) for key in OPTIONS_ANNOTATIONS if annotations.get(key, "").strip()
    ]
    if not values:
        return None, None
    name = values[0][1]
    if len(values) == 2 and options_reference(values[1][1]) != options_reference(name):
        return name, f"{values[0][0]} ({values[0][1]!r}) overrides {values[1][0]} ({values[1][1]!r})"
    return name, None


def tls_option_error(spec: IngressSpec, index: OptionIndex) -> str | None:
    """Why an Ingress must not be served, when it names a TLS option that is not defined or is
    invalid; else None.

    Traefik disables a router whose TLS option is unknown: serving its hosts with the entry point's
    option instead would turn a typo in `router.tls.options: mtls` into a host without mTLS.
    ingress.py's builder checks this before making routers."""
    written, _ = tls_options_of(spec.annotations)
    return None if written is None else index.resolve(written, spec.namespace).error or None


def ca_reader(snapshot: ClusterSnapshot) -> ReadCA:
    """Reads the CA bundle (`ca.crt`, else `tls.ca`) of a Secret of the snapshot; the reason it
    cannot is "not found" or what is wrong with the Secret."""

    def read(namespace: str, name: str) -> tuple[str | None, str]:
        obj = snapshot.get("Secret", namespace, name)
        if obj is None:
            return None, "not found"
        data, bad = secret_data(obj)
        pem = data.get("ca.crt") or data.get("tls.ca") if bad is None else None
        if pem is None:
            return None, bad or "no ca.crt key"
        try:
            return parse_ca_bundle(pem), ""
        except CertificateError as e:
            return None, str(e)

    return read


class TlsTranslator:
    """The TLS part of a translation, remembering parsed Secrets for the next snapshot."""

    def __init__(self, options: TlsTranslation = TlsTranslation()) -> None:
        self._options = options
        self._parsed: dict[int, tuple[Object, Parsed | str]] = {}
        self._last_valid: dict[str, TlsOptions] = {}  # TLSOption definitions of the last snapshot

    def option_index(self, snapshot: ClusterSnapshot, problems: list[Problem]) -> OptionIndex:
        """The TLSOption objects of the snapshot, read (their Problems are appended); an invalid
        one that was valid in the last snapshot keeps that definition."""
        index = OptionIndex(
            snapshot,
            problems,
            ca_reader(snapshot),
            static=self._options.options,
            static_default=self._options.static_default,
            previous=self._last_valid,
        )
        self._last_valid = index.defined
        return index

    def translate(
        self,
        snapshot: ClusterSnapshot,
        specs: list[IngressSpec],
        problems: list[Problem],
        routers: tuple[Router, ...] | list[Router] = (),
        secrets: tuple[tuple[ObjectRef, str, str, str], ...] = (),
        index: OptionIndex | None = None,
    ) -> TlsConfig:
        """`specs` oldest first; problems are appended; `routers` say where Ingresses are served.
        `secrets`: (object, where, namespace, name) of other Secrets whose certificates are served
        (Gateway listeners' certificateRefs); a bad one is a Problem on that object.
        `index` is option_index()'s for this snapshot (made here when not given)."""
        if index is None:
            index = self.option_index(snapshot, problems)
        builder = _Builder(snapshot, self._options, self._parsed, problems, index)
        builder.default_certificate()
        for spec in specs:
            builder.add(spec)
        for ref, where, namespace, name in secrets:
            parsed, error = builder.certificate_of(namespace, name)
            if parsed is None:
                builder.report.add(ref, f"{where}: {error}; the default certificate is served instead")
                continue
            if parsed.expired:
                c = parsed.certificate
                builder.report.add(
                    ref, f"{where}: the certificate in {c.source} expired on {c.not_after}", Severity.WARNING
                )
            builder.certificates.setdefault(parsed.certificate.fingerprint, parsed.certificate)
        client_cas = builder.client_cas()
        self._parsed = builder.seen  # forget Secrets that left
        requests = certificate_requests(
            specs,
            builder.without_certificate,
            routers,
            self._options.acme,
            problems,
            secrets=builder.certificates.values(),
        )
        used = {claim.options for claim in builder.claims.values()} | {DEFAULT}
        return TlsConfig(
            certificates=tuple(builder.certificates.values()),
            hosts=tuple(sorted(builder.claims.values())),
            options=tuple(o for name, o in sorted(index.defined.items()) if name in used),
            client_cas=client_cas,
            requests=requests,
        )


class _Builder:
    def __init__(
        self,
        snapshot: ClusterSnapshot,
        options: TlsTranslation,
        parsed: dict[int, tuple[Object, Parsed | str]],
        problems: list[Problem],
        index: OptionIndex,
    ) -> None:
        self._snapshot = snapshot
        self._options = options
        self._index = index
        self._parsed = parsed
        self.report = Report(problems)
        self.seen: dict[int, tuple[Object, Parsed | str]] = {}
        self.certificates: dict[str, Certificate] = {}  # by fingerprint: one Secret named twice is one
        self.claims: dict[str, HostOptions] = {}
        # (namespace, name) -> indexes of its spec.tls entries that have no usable Secret
        self.without_certificate: dict[tuple[str, str], list[int]] = {}

    def default_certificate(self) -> None:
        if not self._options.default_secret:
            return
        namespace, name = self._options.default_secret.split("/")
        ref = ObjectRef(kind="Secret", namespace=namespace, name=name)
        parsed, error = self.certificate_of(namespace, name)
        if parsed is None:
            self.report.add(
                ref, f"tls.defaultCertificate: {error}; the generated default certificate is served"
            )
            return
        if parsed.expired:
            message = f"tls.defaultCertificate expired on {parsed.certificate.not_after}"
            self.report.add(ref, message, Severity.WARNING)
        default = dataclasses.replace(parsed.certificate, default=True)
        self.certificates[default.fingerprint + "/default"] = default

    def add(self, spec: IngressSpec) -> None:
        ref = ObjectRef(kind="Ingress", namespace=spec.namespace, name=spec.name)
        for i, entry in enumerate(spec.tls):
            # No Secret: those hosts get the default certificate, as ingress-nginx, or ACME's.
            if not entry.secret_name or not self._spec_tls(ref, spec.namespace, f"spec.tls[{i}]", entry):
                self.without_certificate.setdefault((spec.namespace, spec.name), []).append(i)
        written, warning = tls_options_of(spec.annotations)
        if warning:
            self.report.add(ref, warning, Severity.WARNING)
        if written is not None:
            option = self._index.resolve(written, spec.namespace)
            if not option.error:  # else ingress.py did not serve the Ingress, and reported why
                self._claim(ref, spec, option.name)

    def _spec_tls(self, ref: ObjectRef, namespace: str, where: str, entry: IngressTLS) -> bool:
        """Whether the entry's Secret is usable (an expired certificate is: it is served)."""
        parsed, error = self.certificate_of(namespace, entry.secret_name)
        if parsed is None:
            hosts = ", ".join(entry.hosts) or "its hosts"
            self.report.add(ref, f"{where}: {error}; the default certificate is served for {hosts}")
            return False
        c = parsed.certificate
        if parsed.expired:
            self.report.add(
                ref, f"{where}: the certificate in {c.source} expired on {c.not_after}", Severity.WARNING
            )
        for host in entry.hosts:
            if not _covers(c.names, host):
                names = ", ".join(c.names) or "no names"
                message = f"{where}: the certificate in {c.source} ({names}) does not cover {host}"
                self.report.add(ref, message, Severity.WARNING)
        self.certificates.setdefault(c.fingerprint, c)
        return True

    def _claim(self, ref: ObjectRef, spec: IngressSpec, option: str) -> None:
        hosts = [r.host for r in spec.rules if r.host] + [h for t in spec.tls for h in t.hosts]
        if not hosts:
            message = f"TLS option {option!r} is not applied: the Ingress names no host"
            self.report.add(ref, message, Severity.WARNING)
        source = f"Ingress {spec.namespace}/{spec.name}"
        for host in dict.fromkeys(hosts):
            claim = self.claims.setdefault(host, HostOptions(host=host, options=option, source=source))
            if claim.options != option:  # specs come oldest first: the older claim stays
                self.report.add(
                    ref,
                    f"TLS option {option!r} for {host} conflicts with {claim.options!r} set by "
                    f"{claim.source}, which is older and wins",
                )

    def client_cas(self) -> tuple[ClientCA, ...]:
        out = []
        read = ca_reader(self._snapshot)
        for option, secret in self._options.ca_secrets:
            namespace, name = secret.split("/")
            ref = ObjectRef(kind="Secret", namespace=namespace, name=name)
            where = f"tls.options.{option}.clientAuth.caSecret"
            pem, why = read(namespace, name)
            if pem is None:
                gone = "; no client certificate verifies against it" if why == "not found" else ""
                self.report.add(ref, f"{where}: {why}{gone}")
                continue
            out.append(ClientCA(options=option, pem=pem, source=f"Secret {secret}"))
        return tuple(out)

    def certificate_of(self, namespace: str, name: str) -> tuple[Parsed | None, str]:
        obj = self._snapshot.get("Secret", namespace, name)
        if obj is None:
            return None, f"Secret {namespace}/{name} not found"
        cached = self.seen.get(id(obj)) or self._parsed.get(id(obj))
        if cached is None or cached[0] is not obj:  # the object itself, not a new one at a reused id
            cached = (obj, _read_tls_secret(obj, f"Secret {namespace}/{name}"))
        self.seen[id(obj)] = cached
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
