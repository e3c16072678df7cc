"""The middleware registry: Middleware `spec` key -> value class, and the union of the values.

Each value is one class with `kind` and `to_dict()`/`from_dict()` (so configurations cross to the
workers); `KINDS` maps a Traefik Middleware's `spec` key to its pure parser (raising ValueError
phrased for the object's author), which may give a value of another class: `addPrefix` and
`replacePath` are a `urlRewrite`, Traefik's `headers` a `headers` (traefik_kinds.py). Adding a
value class: add it to `MiddlewareSpec` and `SPECS` (the codec's table). Kinds Traefik has and
passerelle does not are reported by `parse_middleware` and skipped, and so is a `headers` with
options passerelle does not do yet; `requestRedirect` only comes from Gateway API filters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from passerelle.middlewares import traefik_kinds
from passerelle.middlewares.headers import Headers
from passerelle.middlewares.ip_allow_list import IpAllowList
from passerelle.middlewares.pass_tls_client_cert import PassTLSClientCert
from passerelle.middlewares.redirect_regex import RedirectRegex
from passerelle.middlewares.redirect_scheme import RedirectScheme
from passerelle.middlewares.request_redirect import RequestRedirect
from passerelle.middlewares.strip_prefix import StripPrefix
from passerelle.middlewares.url_rewrite import UrlRewrite

# a tagged union by `kind`
MiddlewareSpec = (
    RedirectScheme
    | PassTLSClientCert
    | Headers
    | UrlRewrite
    | RequestRedirect
    | StripPrefix
    | IpAllowList
    | RedirectRegex
)

KINDS: dict[str, Callable[[Any], MiddlewareSpec]] = {
    "redirectScheme": RedirectScheme.from_middleware,
    "passTLSClientCert": PassTLSClientCert.from_middleware,
    "stripPrefix": StripPrefix.from_middleware,
    "addPrefix": traefik_kinds.add_prefix,
    "replacePath": traefik_kinds.replace_path,
    "headers": traefik_kinds.headers,
    "ipAllowList": IpAllowList.from_middleware,
    "ipWhiteList": IpAllowList.from_middleware,  # its name before Traefik 3
    "redirectRegex": RedirectRegex.from_middleware,
}  # parsed from Traefik Middleware objects
SPECS: dict[str, type[MiddlewareSpec]] = {
    cls.kind: cls
    for cls in (
        RedirectScheme,
        PassTLSClientCert,
        Headers,
        UrlRewrite,
        RequestRedirect,
        StripPrefix,
        IpAllowList,
        RedirectRegex,
    )
}  # every kind a configuration may hold (the codec's table)

# Traefik's HTTP middlewares (docs/content/reference/routing-configuration/http/middlewares/overview.md):
# recognised, not supported yet. Any other key is unknown.
KNOWN_KINDS = frozenset(
    {
        "addPrefix", "basicAuth", "buffering", "chain", "circuitBreaker", "compress", "contentType",
        "digestAuth", "encodedCharacters", "errors", "forwardAuth", "grpcWeb", "headers", "ipAllowList",
        "ipWhiteList", "inFlightReq", "passTLSClientCert", "plugin", "rateLimit", "redirectRegex",
        "redirectScheme", "replacePath", "replacePathRegex", "retry", "stripPrefix", "stripPrefixRegex",
    }
)  # fmt: skip
MIDDLEWARE_API_VERSIONS = frozenset({"traefik.io/v1alpha1", "traefik.containo.us/v1alpha1"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Unsupported:
    """A Middleware of a kind passerelle does not implement (yet): reported, then skipped."""

    kind: str
    known: bool  # a Traefik kind, as opposed to a key nobody defines
    options: tuple[str, ...] = ()  # of a kind passerelle has: the options it does not do yet


def parse_middleware(spec: Any) -> MiddlewareSpec | Unsupported:
    """A Middleware object's `spec`; raises ValueError saying what is wrong with it."""
    if not isinstance(spec, Mapping) or len(spec) != 1:
        raise ValueError("spec must hold exactly one middleware kind, e.g. `redirectScheme: {...}`")
    [(kind, body)] = spec.items()
    parse = KINDS.get(kind)
    if parse is None:
        return Unsupported(kind=str(kind), known=kind in KNOWN_KINDS)
    if kind == "headers":
        lacking = traefik_kinds.unsupported_headers_options(body)
        if lacking:
            return Unsupported(kind="headers", known=True, options=tuple(lacking))
    try:
        return parse(body)
    except ValueError as e:
        message = str(e).removeprefix(f"{kind}: ")  # some parsers name the kind themselves
        raise ValueError(f"spec.{kind}: {message}") from None
