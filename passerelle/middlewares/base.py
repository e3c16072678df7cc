"""The middleware registry: Middleware `spec` key -> value class, and the union of the values.

Each kind is one class with `kind` (its `spec` key), `from_middleware(body)` (the pure parser,
raising ValueError phrased for the object's author) and `to_dict()`/`from_dict()` (so
configurations cross to the workers). Adding a kind: add its class to `MiddlewareSpec` and to `KINDS`. Kinds
Traefik has and passerelle does not are reported by `parse_middleware` and skipped. Kinds that only
translation makes (from Gateway API filters: `headers`, `urlRewrite`, `requestRedirect`) have no
Traefik parser yet: they are in `SPECS`, which the codec reads, and not in `KINDS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from passerelle.middlewares.headers import Headers
from passerelle.middlewares.pass_tls_client_cert import PassTLSClientCert
from passerelle.middlewares.redirect_scheme import RedirectScheme
from passerelle.middlewares.request_redirect import RequestRedirect
from passerelle.middlewares.url_rewrite import UrlRewrite

# a tagged union by `kind`
MiddlewareSpec = RedirectScheme | PassTLSClientCert | Headers | UrlRewrite | RequestRedirect

KINDS: dict[str, type[RedirectScheme | PassTLSClientCert]] = {
    cls.kind: cls for cls in (RedirectScheme, PassTLSClientCert)
}  # parsed from Traefik Middleware objects
SPECS: dict[str, type[MiddlewareSpec]] = {
    cls.kind: cls for cls in (RedirectScheme, PassTLSClientCert, Headers, UrlRewrite, RequestRedirect)
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


def parse_middleware(spec: Any) -> MiddlewareSpec | Unsupported:
    """A Middleware object's `spec`; raises ValueError saying what is wrong with it."""
    if not isinstance(spec, Mapping) or len(spec) != 1:
        raise ValueError("spec must hold exactly one middleware kind, e.g. `redirectScheme: {...}`")
    [(kind, body)] = spec.items()
    cls = KINDS.get(kind)
    if cls is None:
        return Unsupported(kind=str(kind), known=kind in KNOWN_KINDS)
    try:
        return cls.from_middleware(body)
    except ValueError as e:
        message = str(e).removeprefix(f"{kind}: ")  # some parsers name the kind themselves
        raise ValueError(f"spec.{kind}: {message}") from None
