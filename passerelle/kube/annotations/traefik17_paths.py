"""Traefik 1.7's path, header and allow-list annotations of an Ingress, and the middlewares they make.

1.7 builds each path's frontend rule from `rule-type` (`PathPrefix` by default, `Path`,
`PathPrefixStrip`, `PathStrip`), then `rewrite-target`, then `request-modifier` (`getRuleForPath`,
`provider/kubernetes/kubernetes.go` [T1.7]); `custom-request-headers` and `custom-response-headers`
(`Name:value||Name2:value2`, names canonicalised, entries without `:` skipped; an empty value
deletes the header) become its headers middleware. passerelle reads them so:

- `Path`/`PathStrip` match the path exactly, `PathPrefix`/`PathPrefixStrip` as a prefix — for the
  paths whose pathType is ImplementationSpecific (every path of a v1beta1 Ingress, which has no
  pathType): an explicit `Exact` or `Prefix` pathType says how it matches. Prefixes match element
  by element, as every Ingress prefix here does (1.7 compared characters: `/foo` matched `/foobar`).
- The `*Strip` types take the matched path off (`/foo/bar` -> `/bar`, `/foo` -> `/`) and send it in
  `X-Forwarded-Prefix`, as 1.7's stripPrefix does (its value as written in the Ingress).
- `rewrite-target: /x` replaces the matched prefix (1.7's `ReplacePathRegex: ^<path>(.*) /x$1`;
  for a path written with a trailing slash 1.7 glued the rest on without one, `/xbar`: here
  `/x/bar`); the original path goes in `X-Replaced-Path`.
- `request-modifier`: `AddPrefix: /p` puts `/p` in front, `ReplacePath: /p` replaces the whole path
  (with `X-Replaced-Path`), applied after the above. `ReplacePathRegex` is not supported yet.
- `whitelist-source-range: 10.0.0.0/8, 192.168.1.7` answers 403 to clients outside those ranges
  (middlewares/ip_allow_list.py: the connection's address, before anything else of the chain).
  A range that does not parse, or an empty list, is an error where 1.7 let everyone in;
  `whitelist-x-forwarded-for: "true"` (the address from X-Forwarded-For) is not supported yet.
- Values 1.7 refuses (another rule type, a modifier it does not know), `rule-type: ReplacePath`
  (deprecated in 1.7; not supported), ReplacePathRegex, and rewrite-target with a `*Strip` type
  (whose result would depend on the order of the two) make the Ingress not served, with the reason:
  serving its paths unchanged would send the backends paths they do not expect.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from passerelle.kube.annotations.report import parse_bool, parse_list
from passerelle.middlewares.headers import HeaderEdits, Headers
from passerelle.middlewares.ip_allow_list import IpAllowList
from passerelle.middlewares.url_rewrite import FULL, PREFIX, PathRewrite, UrlRewrite

KEYS = frozenset(
    {"rule-type", "rewrite-target", "request-modifier", "custom-request-headers", "custom-response-headers",
     "whitelist-source-range", "whitelist-x-forwarded-for"}
)  # fmt: skip
RULE_TYPES = {"PathPrefix": (False, False), "Path": (True, False), "PathPrefixStrip": (False, True),
              "PathStrip": (True, True)}  # fmt: skip  # name -> (exact, strip)
FORWARDED_PREFIX = "X-Forwarded-Prefix"


@dataclass(frozen=True, slots=True, kw_only=True)
class PathModifiers:
    """What the keys ask of each path of one Ingress; `error` non-empty: it is not served."""

    exact: bool = False  # rule-type Path or PathStrip (ImplementationSpecific paths match exactly)
    strip: bool = False  # rule-type PathStrip or PathPrefixStrip
    rewrite_target: str | None = None
    add_prefix: str | None = None
    replace_path: str | None = None
    headers: Headers | None = None  # custom-request-headers / custom-response-headers
    allow: IpAllowList | None = None  # whitelist-source-range
    error: str = ""


def read(value: Callable[[str], str | None]) -> PathModifiers:
    """The modifiers, from `value(name)`: the winning spelling's value of a 1.7 key, or None."""
    try:
        exact, strip = _rule_type(value("rule-type"))
        target = _path(value("rewrite-target"), "rewrite-target")
        if target is not None and strip:
            raise ValueError("rewrite-target must not be used together with a *Strip rule-type")
        add_prefix, replace_path = _modifier(value("request-modifier"))
        headers = Headers(
            request=_custom_headers(value("custom-request-headers"), "custom-request-headers"),
            response=_custom_headers(value("custom-response-headers"), "custom-response-headers"),
        )
        allow = _allow_list(value("whitelist-source-range"), value("whitelist-x-forwarded-for"))
    except ValueError as e:
        return PathModifiers(error=str(e))
    return PathModifiers(
        exact=exact,
        strip=strip,
        rewrite_target=target,
        add_prefix=add_prefix,
        replace_path=replace_path,
        headers=headers if headers.request or headers.response else None,
        allow=allow,
    )


def path_middlewares(mods: PathModifiers, written: str, matched: str) -> tuple[UrlRewrite | Headers, ...]:
    """The request edits of one path (`written` as in the Ingress, `matched` the prefix the router
    matches), in the order 1.7 applies them: strip or rewrite-target, then request-modifier."""
    out: list[UrlRewrite | Headers] = []
    if mods.strip:
        out.append(UrlRewrite(path=PathRewrite(type=PREFIX, value="/", matched=matched)))
        out.append(Headers(request=HeaderEdits(set=((FORWARDED_PREFIX, written),))))
    elif mods.rewrite_target is not None:
        rewrite = PathRewrite(type=PREFIX, value=mods.rewrite_target.rstrip("/") or "/", matched=matched)
        out.append(UrlRewrite(path=rewrite, replaced_path=True))
    if mods.add_prefix is not None:
        out.append(UrlRewrite(path=PathRewrite(type=PREFIX, value=mods.add_prefix, matched="/")))
    elif mods.replace_path is not None:
        out.append(UrlRewrite(path=PathRewrite(type=FULL, value=mods.replace_path), replaced_path=True))
    return tuple(out)


def _rule_type(raw: str | None) -> tuple[bool, bool]:
    if raw is None:
        return False, False
    found = RULE_TYPES.get(raw.strip())
    if found is None:
        if raw.strip() == "ReplacePath":
            raise ValueError(
                "rule-type ReplacePath (deprecated in Traefik 1.7) is not supported: use request-modifier"
            )
        raise ValueError(f"rule-type {raw!r} is not one of {', '.join(RULE_TYPES)}")
    return found


def _path(raw: str | None, key: str) -> str | None:
    if raw is None or not raw.strip():
        return None
    path = raw.strip()
    if not path.startswith("/") or any(c in path for c in " ?#\t\r\n"):
        raise ValueError(f"{key} {raw!r} is not an absolute path")
    return path


def _modifier(raw: str | None) -> tuple[str | None, str | None]:
    """(AddPrefix value, ReplacePath value) of a request-modifier (`Type: value`)."""
    if raw is None:
        return None, None
    kind, colon, value = raw.strip().rstrip(" :").partition(":")
    kind = kind.strip()
    if not colon or not value.strip():
        raise ValueError(
            f"request-modifier {raw!r} is missing its type or value (AddPrefix: /p, ReplacePath: /p)"
        )
    if kind == "ReplacePathRegex":
        raise ValueError("request-modifier ReplacePathRegex is not supported yet")
    if kind not in ("AddPrefix", "ReplacePath"):
        raise ValueError(f"request-modifier {kind!r} is not AddPrefix or ReplacePath")
    path = _path(value, f"request-modifier {kind}")
    return (path, None) if kind == "AddPrefix" else (None, path)


def _allow_list(ranges: str | None, forwarded_for: str | None) -> IpAllowList | None:
    if forwarded_for is not None and parse_bool(forwarded_for.strip()) is not False:
        raise ValueError(
            f"whitelist-x-forwarded-for {forwarded_for!r}: the address from X-Forwarded-For is not supported yet"
        )
    if ranges is None:
        return None
    try:
        return IpAllowList(source_range=tuple(parse_list(ranges)))
    except ValueError as e:
        raise ValueError(f"whitelist-source-range {ranges!r}: {e}") from None


def _custom_headers(raw: str | None, key: str) -> HeaderEdits:
    """1.7's `Name:value||Name2:value2`: set each (the last of a name wins), remove those with ""."""
    if raw is None:
        return HeaderEdits()
    fields: dict[str, tuple[str, str]] = {}
    for entry in raw.split("||"):
        name, colon, value = entry.partition(":")
        if colon and name.strip():
            fields[name.strip().lower()] = (_canonical(name.strip()), value.strip())
    if not fields:
        raise ValueError(f"{key} {raw!r} holds no Name:value entry")
    try:
        return HeaderEdits(
            set=tuple((n, v) for n, v in fields.values() if v),
            remove=tuple(n for n, v in fields.values() if not v),
        )
    except ValueError as e:
        raise ValueError(f"{key}: {e}") from e


def _canonical(name: str) -> str:
    """Go's http.CanonicalHeaderKey: `x-my-header` -> `X-My-Header`; a name with a space (not a
    field name, so an error later) is left as it is, as Go leaves it."""
    if " " in name:
        return name
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))
