"""Which client-certificate headers a route asks for, and how an Ingress author says so.

A `ClientCertSpec` is the whole request: a compatibility level (which header family and format),
whether to send the certificate itself, and which fields of it (`InfoFields`, `None` meaning "no
info header"). It is a frozen value: hashable, comparable, and JSON-ready through
`to_json`/`from_json` so it can travel inside the routing snapshot to the workers.

Three dialects build one, each with strict decoding (an unknown key or a wrong type is a
`ClientCertSpecError` naming the key, phrased for the Ingress author):

* `from_traefik17_annotation` - `[traefik.]ingress.kubernetes.io/pass-client-tls-cert`, YAML with
  all-lower-case keys (`pem`, `infos: {notafter, notbefore, sans, subject, issuer}`), exactly the
  struct Traefik 1.7 decoded with yaml.v2. 1.7 silently ignored camelCase keys; we reject them and
  name the lower-case spelling.
* `from_middleware` - `spec.passTLSClientCert` of a `traefik.io` / `traefik.containo.us`
  Middleware: `pem`, `info: {notAfter, notBefore, sans, serialNumber, subject, issuer}`.
* `from_passerelle_annotations` - `passerelle.io/client-cert-headers` (the level) and
  `passerelle.io/client-cert-fields` (a comma list in Traefik 3's vocabulary).

`from_annotations` decides between the Ingress annotations; docs/client-certificates.md is the
user-facing description of all of it.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

import yaml


class CompatLevel(StrEnum):
    """The header family and format a backend expects (docs/client-certificates.md shows each)."""

    TRAEFIK3 = "traefik3"  # X-Forwarded-Tls-Client-Cert[-Info], Traefik >= 2.9.4 and 3.x
    TRAEFIK17 = "traefik1.7"  # X-Forwarded-Tls-Client-Cert[-Infos], Traefik 1.7.7 - 1.7.34
    RFC9440 = "rfc9440"  # Client-Cert / Client-Cert-Chain structured-field byte sequences
    NGINX = "nginx"  # ingress-nginx's ssl-client-* headers


class ClientCertSpecError(ValueError):
    """A client-certificate configuration the Ingress author must fix; becomes a Problem on it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DNFields:
    """Parts of a distinguished name to include (Traefik's issuer options; RFC 3739 §3.1.1)."""

    country: bool = False
    province: bool = False
    locality: bool = False
    organization: bool = False
    common_name: bool = False
    serial_number: bool = False  # the DN serialNumber attribute (2.5.4.5), not the certificate serial
    domain_component: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class SubjectFields(DNFields):
    """The subject adds organizationalUnit (Traefik >= 2.6; the issuer has no such option)."""

    organizational_unit: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class InfoFields:
    """What goes into the info header. An all-false InfoFields still sends the header, empty."""

    not_after: bool = False
    not_before: bool = False
    sans: bool = False
    serial_number: bool = False  # the certificate serial, in decimal (Traefik >= 2.2)
    subject: SubjectFields = SubjectFields()
    issuer: DNFields = DNFields()


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientCertSpec:
    """The client-certificate headers one route asks for.

    `pem`: send the certificate itself (X-Forwarded-Tls-Client-Cert, or nginx's ssl-client-cert).
    `info`: the fields of the info header, None for no info header. rfc9440 always sends the
    certificate and chain and ignores both; nginx always sends the verify and DN headers and
    reads only `pem`; traefik1.7 has no place for `serial_number` or `organizational_unit`.
    """

    level: CompatLevel = CompatLevel.TRAEFIK3
    pem: bool = False
    info: InfoFields | None = None

    def to_json(self) -> dict[str, Any]:
        """Traefik 3's middleware shape plus "level"; every flag written, so diffs read well."""
        return {"level": str(self.level), "pem": self.pem, "info": _dump(self.info, _TRAEFIK3)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ClientCertSpec:
        rest = dict(data)
        level = _level(rest.pop("level", None), "level")
        return _parse(rest, _TRAEFIK3, "client-cert spec", level)


# -- dialects: key spellings -> attribute names, one table per nesting level -------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _Dialect:
    info: str  # the key that holds the info mapping
    info_keys: Mapping[str, str]
    subject_keys: Mapping[str, str]
    issuer_keys: Mapping[str, str]
    hint: str = ""  # appended to "unknown key" messages


_T3_DN = {
    "country": "country",
    "province": "province",
    "locality": "locality",
    "organization": "organization",
    "commonName": "common_name",
    "serialNumber": "serial_number",
    "domainComponent": "domain_component",
}
_TRAEFIK3 = _Dialect(
    info="info",
    info_keys={
        "notAfter": "not_after",
        "notBefore": "not_before",
        "sans": "sans",
        "serialNumber": "serial_number",
    },
    subject_keys=_T3_DN | {"organizationalUnit": "organizational_unit"},
    issuer_keys=_T3_DN,
)
# yaml.v2 matched Traefik 1.7's struct fields by their lower-cased Go names (the json tags were
# not read), so these are the only spellings 1.7 honoured (provider/kubernetes getPassTLSClientCert).
_T17_DN = {key.lower(): attr for key, attr in _T3_DN.items()}
_TRAEFIK17 = _Dialect(
    info="infos",
    info_keys={"notafter": "not_after", "notbefore": "not_before", "sans": "sans"},
    subject_keys=_T17_DN,
    issuer_keys=_T17_DN,
    hint=" (Traefik 1.7 silently ignored such keys; its keys are all lower-case)",
)


def _parse(data: object, dialect: _Dialect, where: str, level: CompatLevel) -> ClientCertSpec:
    top = _mapping(data, where, ("pem", dialect.info), dialect.hint)
    pem = _bool(top.get("pem"), f"{where}: pem")
    raw_info = top.get(dialect.info)
    if raw_info is None:  # absent or null: no info header, as a nil pointer was in Traefik
        return ClientCertSpec(level=level, pem=pem, info=None)
    at = f"{where}: {dialect.info}"
    nested = ("subject", "issuer")
    info = _mapping(raw_info, at, (*dialect.info_keys, *nested), dialect.hint)
    flags = {attr: _bool(info.get(key), f"{at}.{key}") for key, attr in dialect.info_keys.items()}
    subject = _flags(info.get("subject"), dialect.subject_keys, f"{at}.subject", dialect.hint)
    issuer = _flags(info.get("issuer"), dialect.issuer_keys, f"{at}.issuer", dialect.hint)
    fields_ = InfoFields(**flags, subject=SubjectFields(**subject), issuer=DNFields(**issuer))
    return ClientCertSpec(level=level, pem=pem, info=fields_)


def _flags(data: object, keys: Mapping[str, str], where: str, hint: str) -> dict[str, bool]:
    if data is None:
        return {}
    given = _mapping(data, where, tuple(keys), hint)
    return {keys[key]: _bool(value, f"{where}.{key}") for key, value in given.items()}


def _mapping(data: object, where: str, allowed: tuple[str, ...], hint: str) -> Mapping[str, object]:
    if not isinstance(data, Mapping):
        raise ClientCertSpecError(f"{where} must be a mapping with keys {_list(allowed)}, not {_kind(data)}")
    for key in data:
        if key not in allowed:
            raise ClientCertSpecError(f"{where}: unknown key {key!r}{_suggest(key, allowed)}{hint}")
    return data


def _bool(value: object, where: str) -> bool:
    if value is None:  # `key:` with no value; yaml.v2 and Kubernetes both read it as unset
        return False
    if not isinstance(value, bool):
        raise ClientCertSpecError(f"{where} must be true or false, not {_kind(value)}")
    return value


def _suggest(key: object, allowed: tuple[str, ...]) -> str:
    text = str(key)
    same_letters = [k for k in allowed if k.lower() == text.lower()]
    close = same_letters or difflib.get_close_matches(text, allowed, n=1)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f"; expected one of {_list(allowed)}"


def _kind(value: object) -> str:
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def _list(keys: tuple[str, ...]) -> str:
    return ", ".join(keys)


def _dump(info: InfoFields | None, dialect: _Dialect) -> dict[str, Any] | None:
    if info is None:
        return None
    out: dict[str, Any] = {key: getattr(info, attr) for key, attr in dialect.info_keys.items()}
    out["subject"] = {key: getattr(info.subject, attr) for key, attr in dialect.subject_keys.items()}
    out["issuer"] = {key: getattr(info.issuer, attr) for key, attr in dialect.issuer_keys.items()}
    return out


def _level(value: object, where: str) -> CompatLevel:
    if isinstance(value, str) and value in _LEVELS:
        return _LEVELS[value]
    raise ClientCertSpecError(f"{where} must be one of {_list(tuple(_LEVELS))}, not {_kind(value)}")


_LEVELS = {str(level): level for level in CompatLevel}


# -- the three dialects -------------------------------------------------------------------------

TRAEFIK17_ANNOTATIONS = (
    "ingress.kubernetes.io/pass-client-tls-cert",  # 1.7 tried the bare prefix first
    "traefik.ingress.kubernetes.io/pass-client-tls-cert",
)
LEVEL_ANNOTATION = "passerelle.io/client-cert-headers"
FIELDS_ANNOTATION = "passerelle.io/client-cert-fields"


def from_traefik17_annotation(value: str, *, level: CompatLevel = CompatLevel.TRAEFIK17) -> ClientCertSpec:
    """The Traefik 1.7 `pass-client-tls-cert` annotation value.

    The level defaults to traefik1.7: a backend written against 1.7 parses `-Infos` with 1.7's
    separators, so that is what an unchanged Ingress keeps getting.
    """
    where = "pass-client-tls-cert"
    try:
        data = yaml.safe_load(value)
    except yaml.YAMLError as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ClientCertSpecError(f"{where} is not valid YAML: {first}") from None
    return _parse(data, _TRAEFIK17, where, level)


def from_middleware(spec: Mapping[str, Any], *, level: CompatLevel = CompatLevel.TRAEFIK3) -> ClientCertSpec:
    """`spec.passTLSClientCert` of a Traefik 2/3 Middleware (traefik.io or traefik.containo.us)."""
    return _parse(spec, _TRAEFIK3, "passTLSClientCert", level)


# passerelle.io/client-cert-fields names: Traefik 3's keys, dotted under subject/issuer, plus the
# groups "info", "subject" and "issuer"; each maps to dotted attribute paths ("subject.common_name").
_TOP = {key: f"info.{attr}" for key, attr in _TRAEFIK3.info_keys.items()}
_SUBJECT = {f"subject.{key}": f"subject.{attr}" for key, attr in _TRAEFIK3.subject_keys.items()}
_ISSUER = {f"issuer.{key}": f"issuer.{attr}" for key, attr in _TRAEFIK3.issuer_keys.items()}
_FIELD_NAMES: dict[str, tuple[str, ...]] = {
    "pem": ("pem",),
    **{name: (path,) for name, path in (_TOP | _SUBJECT | _ISSUER).items()},
    "info": (*_TOP.values(), *_SUBJECT.values(), *_ISSUER.values()),
    "subject": tuple(_SUBJECT.values()),
    "issuer": tuple(_ISSUER.values()),
}
_GROUPS = frozenset({"info", "subject", "issuer"})
# The DN keys people write from habit, for "did you mean" only.
_DN_KEYS = {
    "c": "country",
    "st": "province",
    "l": "locality",
    "o": "organization",
    "ou": "organizationalUnit",
    "cn": "commonName",
    "sn": "serialNumber",
    "dc": "domainComponent",
}

# What each level can render, as the same dotted attribute paths; rfc9440 takes no fields.
_RENDERS: dict[CompatLevel, frozenset[str]] = {
    CompatLevel.TRAEFIK3: frozenset(_FIELD_NAMES["info"]) | {"pem"},
    CompatLevel.TRAEFIK17: (
        frozenset(_FIELD_NAMES["info"]) - {"info.serial_number", "subject.organizational_unit"}
    )
    | {"pem"},
    CompatLevel.RFC9440: frozenset(),
    CompatLevel.NGINX: frozenset({"pem"}),
}
_WHY_NOT = {
    CompatLevel.TRAEFIK17: "Traefik 1.7 had no certificate serialNumber and no organizationalUnit",
    CompatLevel.RFC9440: "rfc9440 always sends Client-Cert and Client-Cert-Chain and nothing else",
    CompatLevel.NGINX: "nginx always sends ssl-client-verify and the two DNs; only pem adds ssl-client-cert",
}


def from_passerelle_annotations(level: str | None, fields: str | None) -> ClientCertSpec:
    """`passerelle.io/client-cert-headers` (default traefik3) and `passerelle.io/client-cert-fields`.

    Without the fields annotation the route gets everything its level can send.
    """
    chosen = CompatLevel.TRAEFIK3 if level is None else _level(level.strip(), LEVEL_ANNOTATION)
    allowed = _RENDERS[chosen]
    if fields is None:
        return _from_paths(chosen, allowed)
    paths: set[str] = set()
    for raw in fields.split(","):
        name = raw.strip()
        if not name:
            continue
        if name not in _FIELD_NAMES:
            raise ClientCertSpecError(f"{FIELDS_ANNOTATION}: unknown field {name!r}{_suggest_field(name)}")
        wanted = set(_FIELD_NAMES[name])
        if name in _GROUPS:  # a group means "all of it that this level has"
            wanted &= allowed
        if not wanted or not wanted <= allowed:
            why = _WHY_NOT.get(chosen, "")
            raise ClientCertSpecError(
                f"{FIELDS_ANNOTATION}: {name!r} cannot be sent at level {chosen}: {why}"
            )
        paths |= wanted
    if not paths:
        raise ClientCertSpecError(f"{FIELDS_ANNOTATION} is empty; name at least one field, e.g. 'pem'")
    return _from_paths(chosen, frozenset(paths))


def _suggest_field(name: str) -> str:
    head, dot, tail = name.rpartition(".")
    tail = _DN_KEYS.get(tail.lower(), tail)  # "subject.CN" -> "subject.commonName"
    if not dot and tail in _TRAEFIK3.subject_keys and tail not in _TRAEFIK3.info_keys:
        head, dot = "subject", "."  # a bare "commonName" most likely means the subject's
    return _suggest(head + dot + tail, tuple(_FIELD_NAMES))


def _from_paths(level: CompatLevel, paths: frozenset[str]) -> ClientCertSpec:
    def part(prefix: str) -> dict[str, bool]:
        return {p.split(".", 1)[1]: True for p in paths if p.startswith(prefix + ".")}

    info_paths = {p for p in paths if p != "pem"}
    info = None
    if info_paths:
        info = InfoFields(
            **part("info"), subject=SubjectFields(**part("subject")), issuer=DNFields(**part("issuer"))
        )
    return ClientCertSpec(level=level, pem="pem" in paths, info=info)


def from_annotations(annotations: Mapping[str, str]) -> ClientCertSpec | None:
    """The spec an Ingress's annotations ask for, or None when they ask for none.

    passerelle's fields annotation wins over the 1.7 annotation; the level annotation applies to
    whichever selection is used (so it can move a 1.7 Ingress to traefik3 without rewriting it).
    """
    level = annotations.get(LEVEL_ANNOTATION)
    fields_ = annotations.get(FIELDS_ANNOTATION)
    if fields_ is not None or (level is not None and not _has_traefik17(annotations)):
        return from_passerelle_annotations(level, fields_)
    for name in TRAEFIK17_ANNOTATIONS:
        if name in annotations:
            spec = from_traefik17_annotation(annotations[name])
            if level is None:
                return spec
            # Fields the new level has no place for are dropped, not reported: the author chose
            # that level knowing its format, and the docs list what each level carries.
            return replace(spec, level=_level(level.strip(), LEVEL_ANNOTATION))
    return None


def _has_traefik17(annotations: Mapping[str, str]) -> bool:
    return any(name in annotations for name in TRAEFIK17_ANNOTATIONS)


def field_names() -> tuple[str, ...]:
    """The names `passerelle.io/client-cert-fields` accepts, in documentation order."""
    return tuple(_FIELD_NAMES)
