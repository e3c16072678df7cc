"""Kubernetes label selectors, as `kubectl get -l` reads them: `role=ingress,zone!=b,gpu,!spot`.

Equality (`=`, `==`, `!=`), existence (`key`, `!key`) and sets (`key in (a,b)`, `key notin (a)`),
all of which must hold. A mapping (a DaemonSet's `nodeSelector: {role: ingress}`) is equality on
each key. An empty selector matches everything.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_SET = re.compile(rf"^\s*(?P<key>{_KEY})\s+(?P<op>in|notin)\s+\((?P<values>[^)]*)\)\s*$")
_EQ = re.compile(rf"^\s*(?P<key>{_KEY})\s*(?P<op>==|=|!=)\s*(?P<value>{_VALUE})\s*$")
_EXISTS = re.compile(rf"^\s*(?P<neg>!?)\s*(?P<key>{_KEY})\s*$")
_VALUE_ONLY = re.compile(rf"^{_VALUE}$")


@dataclass(frozen=True, slots=True, kw_only=True)
class Requirement:
    key: str
    op: str  # "in", "notin", "exists", "!exists" (equality is "in"/"notin" of one value)
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.op == "exists":
            return self.key in labels
        if self.op == "!exists":
            return self.key not in labels
        if self.op == "in":
            return labels.get(self.key) in self.values
        return labels.get(self.key) not in self.values  # notin: a missing key matches, as in Kubernetes


@dataclass(frozen=True, slots=True, kw_only=True)
class Selector:
    requirements: tuple[Requirement, ...] = ()
    text: str = ""

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    def __str__(self) -> str:
        return self.text or "(everything)"


def parse_selector(raw: str | Mapping[str, str]) -> Selector:
    """Raises ValueError naming the part that is not a requirement."""
    if isinstance(raw, Mapping):
        requirements = []
        for key, value in raw.items():
            if not re.fullmatch(_KEY, str(key)) or not _VALUE_ONLY.match(str(value)):
                raise ValueError(f"{key}={value}: not a label key and value")
            requirements.append(Requirement(key=str(key), op="in", values=frozenset({str(value)})))
        return Selector(requirements=tuple(requirements), text=",".join(f"{k}={v}" for k, v in raw.items()))
    requirements = [_requirement(part) for part in _split(raw) if part.strip()]
    return Selector(requirements=tuple(requirements), text=raw.strip())


def _split(text: str) -> list[str]:
    """Commas separate requirements, except inside the parentheses of a set."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts


def _requirement(part: str) -> Requirement:
    if match := _SET.match(part):
        values = frozenset(v.strip() for v in match["values"].split(",") if v.strip())
        if not values or not all(_VALUE_ONLY.match(v) for v in values):
            raise ValueError(f"{part.strip()!r}: a set needs label values, as in `zone in (a,b)`")
        return Requirement(key=match["key"], op=match["op"], values=values)
    if match := _EQ.match(part):
        op = "notin" if match["op"] == "!=" else "in"
        return Requirement(key=match["key"], op=op, values=frozenset({match["value"]}))
    if match := _EXISTS.match(part):
        return Requirement(key=match["key"], op="!exists" if match["neg"] else "exists")
    raise ValueError(f"{part.strip()!r} is not a label requirement (key=value, key!=value, key, !key)")
