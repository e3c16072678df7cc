"""labelSelector and fieldSelector, as the API server parses them (the subset clients send).

Labels: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a` (exists), `!a`, comma-joined
(AND). Fields: `path=value`, `path==value`, `path!=value`, comma-joined, where `path` is a dotted
path into the object (`metadata.name`, `metadata.namespace`, `type` for Secrets, `spec.nodeName`).
A selector that does not parse is a 400 BadRequest, as from the real server.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

Selector = Callable[[Mapping[str, Any]], bool]

_SET = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EQ = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*(==|=|!=)\s*([A-Za-z0-9_./-]*)\s*$")
_KEY = re.compile(r"^\s*(!?)\s*([A-Za-z0-9_./-]+)\s*$")


class SelectorError(ValueError):
    pass


def _split(text: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    if current.strip():
        parts.append(current)
    return parts


def label_selector(text: str) -> Selector:
    tests: list[Callable[[Mapping[str, str]], bool]] = []
    for term in _split(text or ""):
        if m := _SET.match(term):
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",") if v.strip()}
            if op == "in":
                tests.append(lambda labels, k=key, vs=values: labels.get(k) in vs)
            else:
                tests.append(lambda labels, k=key, vs=values: labels.get(k) not in vs)
        elif m := _EQ.match(term):
            key, op, value = m.groups()
            if op == "!=":
                tests.append(lambda labels, k=key, v=value: labels.get(k) != v)
            else:
                tests.append(lambda labels, k=key, v=value: labels.get(k) == v)
        elif m := _KEY.match(term):
            negate, key = m.group(1) == "!", m.group(2)
            tests.append(lambda labels, k=key, n=negate: (k in labels) != n)
        else:
            raise SelectorError(f"unable to parse requirement: {term.strip()!r}")

    def matches(obj: Mapping[str, Any]) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(test(labels) for test in tests)

    return matches


def _field(obj: Mapping[str, Any], path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if value is None:
        return ""
    return str(value).lower() if isinstance(value, bool) else str(value)


# Field labels the real server accepts, by kind (every kind also has metadata.name/namespace).
FIELDS = {
    "Secret": {"type"},
    "Pod": {"spec.nodeName", "spec.serviceAccountName", "status.phase", "status.podIP"},
    "Node": {"spec.unschedulable"},
    "Event": {
        "involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
        "involvedObject.apiVersion", "reason", "type", "source",
    },
}  # fmt: skip


def field_selector(text: str, kind: str = "") -> Selector:
    tests: list[tuple[str, bool, str]] = []
    allowed = {"metadata.name", "metadata.namespace"} | FIELDS.get(kind, set())
    for term in _split(text or ""):
        m = _EQ.match(term)
        if not m or not m.group(1):
            raise SelectorError(f"invalid selector: {term.strip()!r}; can't understand it")
        path, op, value = m.groups()
        if path not in allowed:
            raise SelectorError(f"field label not supported: {path}")
        tests.append((path, op != "!=", value))

    def matches(obj: Mapping[str, Any]) -> bool:
        return all((_field(obj, path) == value) == equal for path, equal, value in tests)

    return matches
