"""HTTPRoute filters and matches -> middlewares and router conditions (pure).

RequestHeaderModifier and ResponseHeaderModifier become a `headers` middleware, URLRewrite a
`urlRewrite`, RequestRedirect a `requestRedirect` whose defaults are settled here, for the
listener's entry point (HTTPRequestRedirectFilter: no scheme means the listener's; no port means
the scheme's well-known one when a scheme is given, else the listener's). ReplacePrefixMatch
replaces the prefix of the match the router was made for. Other filter types (RequestMirror,
ExtensionRef, CORS, ...) raise Unsupported: the spec requires the rule not to be served without
them, so translation answers its requests with 500.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from passerelle.kube.gateway_objects import Filter, Match
from passerelle.kube.placement import EntryPointInfo
from passerelle.middlewares.base import MiddlewareSpec
from passerelle.middlewares.headers import HeaderEdits, Headers
from passerelle.middlewares.request_redirect import RequestRedirect
from passerelle.middlewares.url_rewrite import FULL, PREFIX, PathRewrite, UrlRewrite
from passerelle.model import PathMatch, PathType, RequestMatch

_WELL_KNOWN = {"http": 80, "https": 443}
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})


class Unsupported(ValueError):
    """A filter or match passerelle does not implement (the message names it)."""


def read_match(match: Match) -> tuple[PathMatch, RequestMatch | None]:
    """A match's path and conditions; raises ValueError (or Unsupported) saying what is wrong."""
    if match.path_type not in ("Exact", "PathPrefix"):
        if match.path_type == "RegularExpression":
            raise Unsupported("path type RegularExpression is not supported (use Exact or PathPrefix)")
        raise ValueError(f"path type {match.path_type!r} must be Exact, PathPrefix or RegularExpression")
    if not match.path.startswith("/"):
        raise ValueError(f"path {match.path!r} must start with '/'")
    path = PathMatch(type=PathType.EXACT if match.path_type == "Exact" else PathType.PREFIX, value=match.path)
    headers: dict[str, str] = {}
    for kind, name, value in match.headers:
        _exact(kind, f"header {name}")
        headers.setdefault(name.lower(), value)  # the first of equivalent names counts (HTTPHeaderMatch)
    query: dict[str, str] = {}
    for kind, name, value in match.query:
        _exact(kind, f"query parameter {name}")
        query.setdefault(name, value)
    method = match.method
    if method is not None and method not in METHODS:
        raise ValueError(f"method {method!r} must be one of {', '.join(sorted(METHODS))}")
    if method is None and not headers and not query:
        return path, None
    return path, RequestMatch(method=method, headers=tuple(headers.items()), query=tuple(query.items()))


def _exact(kind: str, what: str) -> None:
    if kind == "RegularExpression":
        raise Unsupported(f"{what}: RegularExpression matches are not supported (use Exact)")
    if kind != "Exact":
        raise ValueError(f"{what}: match type {kind!r} must be Exact or RegularExpression")


def filter_spec(f: Filter, match: Match, entrypoint: EntryPointInfo) -> MiddlewareSpec:
    """The middleware of one filter, for a router made from `match` on `entrypoint`."""
    body = f.body
    if f.type in ("RequestHeaderModifier", "ResponseHeaderModifier"):
        edits = _edits(body)
        return Headers(request=edits) if f.type == "RequestHeaderModifier" else Headers(response=edits)
    if f.type == "URLRewrite":
        host = body.get("hostname")
        return UrlRewrite(host=str(host) if host else None, path=_path(body.get("path"), match))
    if f.type == "RequestRedirect":
        scheme = body.get("scheme")
        if scheme is not None and scheme not in _WELL_KNOWN:
            raise ValueError(f"requestRedirect.scheme {scheme!r} must be http or https")
        port = body.get("port")
        if port is not None and (isinstance(port, bool) or not isinstance(port, int)):
            raise ValueError(f"requestRedirect.port {port!r} must be a port number")
        if port is None:
            port = _WELL_KNOWN[scheme] if scheme else entrypoint.port or _WELL_KNOWN[entrypoint.scheme]
        host = body.get("hostname")
        status = body.get("statusCode", 302)
        if isinstance(status, bool) or not isinstance(status, int):
            raise ValueError(f"requestRedirect.statusCode {status!r} must be a number")
        return RequestRedirect(
            scheme=scheme or entrypoint.scheme,
            port=port,
            host=str(host) if host else None,
            path=_path(body.get("path"), match),
            status_code=status,
        )
    raise Unsupported(f"filter type {f.type or '(none)'} is not supported")


def _edits(body: Mapping[str, Any]) -> HeaderEdits:
    def pairs(key: str) -> tuple[tuple[str, str], ...]:
        out = []
        for item in body.get(key) or []:
            if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
                raise ValueError(f"{key}: each entry must have a name and a value")
            out.append((item["name"], str(item.get("value", ""))))
        return tuple(out)

    remove = body.get("remove") or []
    if not isinstance(remove, list) or not all(isinstance(n, str) for n in remove):
        raise ValueError("remove: must be a list of header names")
    return HeaderEdits(set=pairs("set"), add=pairs("add"), remove=tuple(remove))


def _path(raw: Any, match: Match) -> PathRewrite | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ValueError("path: must be an object")
    kind = raw.get("type")
    if kind == FULL:
        return PathRewrite(type=FULL, value=str(raw.get("replaceFullPath", "")))
    if kind == PREFIX:
        if match.path_type != "PathPrefix":
            raise ValueError("ReplacePrefixMatch needs a PathPrefix match")
        return PathRewrite(type=PREFIX, value=str(raw.get("replacePrefixMatch", "/")), matched=match.path)
    raise ValueError(f"path.type {kind!r} must be {FULL} or {PREFIX}")
