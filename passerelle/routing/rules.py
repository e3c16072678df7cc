"""The matching semantics, as plain functions: the reference definition of what matches what."""

from __future__ import annotations

from passerelle.model import PathMatch, PathType


def normalize_host(host: str) -> str:
    """Host header -> the name routes are matched on: lower case, no port, no IPv6 brackets kept."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end > 0 else host
    return host.partition(":")[0]


def host_matches(rule_host: str | None, host: str) -> bool:
    """None matches every host; `*.example.com` matches exactly one extra, non-empty label."""
    if rule_host is None:
        return True
    if rule_host.startswith("*."):
        label, dot, rest = host.partition(".")
        return bool(label) and bool(dot) and rest == rule_host[2:]
    return host == rule_host


def path_matches(rule: PathMatch, path: str) -> bool:
    """Exact: the whole path. Prefix: element-wise, `/foo` matches `/foo`, `/foo/`, `/foo/bar`, not `/foobar`."""
    if rule.type is PathType.EXACT:
        return path == rule.value
    prefix = rule.value.rstrip("/")
    return prefix == "" or path == prefix or path.startswith(prefix + "/")


def request_path(target: str) -> str:
    """The path of a request target: origin-form or absolute-form, without the query."""
    if not target.startswith("/"):
        scheme, sep, rest = target.partition("://")
        target = "/" + rest.partition("/")[2] if sep else target
    return target.partition("?")[0]
