"""Traefik Middleware kinds read into passerelle's own values: addPrefix and replacePath become a
urlRewrite, headers a headers edit. Pure parsers, raising ValueError phrased for the object's author.

- `addPrefix: {prefix: /p}` puts `/p` in front of the path (Traefik: `prefix + path`).
- `replacePath: {path: /p}` makes the path `/p` and sends the original in `X-Replaced-Path`.
- `headers`: `customRequestHeaders` and `customResponseHeaders` (name: value; an empty value
  removes the header, as in Traefik), and the security headers that are a fixed response header:
  `frameDeny` / `customFrameOptionsValue` (X-Frame-Options), `contentTypeNosniff`,
  `browserXssFilter` / `customBrowserXSSValue`, `contentSecurityPolicy`,
  `contentSecurityPolicyReportOnly`, `referrerPolicy`, `permissionsPolicy`, `featurePolicy`. The
  options that depend on the request (HSTS, which Traefik sends on TLS requests only, CORS,
  allowedHosts, the SSL redirect family, hostsProxyHeaders, isDevelopment) are not supported yet:
  such a middleware is reported and left out of the chain, as a kind passerelle lacks is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from passerelle.middlewares.headers import HeaderEdits, Headers
from passerelle.middlewares.url_rewrite import FULL, PREFIX, PathRewrite, UrlRewrite

# Security options that are one fixed response header: option -> (header, value when true, or None
# when the option's own value is the header's value).
_STATIC: dict[str, tuple[str, str | None]] = {
    "frameDeny": ("X-Frame-Options", "DENY"),
    "customFrameOptionsValue": ("X-Frame-Options", None),
    "contentTypeNosniff": ("X-Content-Type-Options", "nosniff"),
    "browserXssFilter": ("X-XSS-Protection", "1; mode=block"),
    "customBrowserXSSValue": ("X-XSS-Protection", None),
    "contentSecurityPolicy": ("Content-Security-Policy", None),
    "contentSecurityPolicyReportOnly": ("Content-Security-Policy-Report-Only", None),
    "referrerPolicy": ("Referrer-Policy", None),
    "permissionsPolicy": ("Permissions-Policy", None),
    "featurePolicy": ("Feature-Policy", None),
}
_CUSTOM = ("customRequestHeaders", "customResponseHeaders")


def add_prefix(spec: Any) -> UrlRewrite:
    """A Middleware's `spec.addPrefix`."""
    prefix = _only(spec, "prefix")
    return UrlRewrite(path=PathRewrite(type=PREFIX, value=prefix, matched="/"))


def replace_path(spec: Any) -> UrlRewrite:
    """A Middleware's `spec.replacePath`."""
    return UrlRewrite(path=PathRewrite(type=FULL, value=_only(spec, "path")), replaced_path=True)


def unsupported_headers_options(spec: Any) -> list[str]:
    """The options of a `spec.headers` passerelle does not do yet (the middleware is then skipped)."""
    if not isinstance(spec, Mapping):
        return []
    return sorted(str(k) for k in spec if k not in _STATIC and k not in _CUSTOM)


def headers(spec: Any) -> Headers:
    """A Middleware's `spec.headers`, of the options unsupported_headers_options leaves."""
    if not isinstance(spec, Mapping):
        raise ValueError("must be an object (customRequestHeaders, customResponseHeaders, frameDeny, ...)")
    request = _custom(spec.get("customRequestHeaders"), "customRequestHeaders")
    response = dict(_custom(spec.get("customResponseHeaders"), "customResponseHeaders"))
    for option in _STATIC:  # in this order: customFrameOptionsValue overrides frameDeny, as in Traefik
        if option not in spec:
            continue
        name, fixed = _STATIC[option]
        value = spec[option]
        if fixed is not None:
            if not isinstance(value, bool):
                raise ValueError(f"`{option}` {value!r} must be true or false")
            if value:
                response[name.lower()] = (name, fixed)
        elif not isinstance(value, str):
            raise ValueError(f"`{option}` {value!r} must be a string")
        elif value:
            response[name.lower()] = (name, value)
    return Headers(request=_edits(request.values()), response=_edits(response.values()))


def _only(spec: Any, key: str) -> str:
    raw = spec.get(key) if isinstance(spec, Mapping) and set(spec) == {key} else None
    if not isinstance(raw, str):
        raise ValueError(f"must be an object with one key, `{key}` (a path)")
    value = raw.strip()
    if not value.startswith("/") or any(c in value for c in " ?#\t\r\n"):
        raise ValueError(f"`{key}` {raw!r} must be an absolute path")
    return value


def _custom(fields: Any, option: str) -> dict[str, tuple[str, str]]:
    """name (lower-case) -> (name, value) of a customRequestHeaders / customResponseHeaders map."""
    if fields is None:
        return {}
    if not isinstance(fields, Mapping) or not all(isinstance(v, str) for v in fields.values()):
        raise ValueError(f"`{option}` must map header names to string values")
    return {str(name).lower(): (str(name), value) for name, value in fields.items()}


def _edits(fields: Any) -> HeaderEdits:
    pairs = list(fields)
    return HeaderEdits(set=tuple((n, v) for n, v in pairs if v), remove=tuple(n for n, v in pairs if not v))
