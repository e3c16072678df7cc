"""Router names: readable, made of what a router serves, and unique across one configuration (pure).

Ingress and Gateway API routers share one set: `default-shop-www-example-com--` and an HTTPRoute's
`default-shop-r0-m0-web-any` never collide, and a second `x` becomes `x-2`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_NOT_NAME = re.compile(r"[^A-Za-z0-9]+")


class UniqueNames:
    __slots__ = ("_taken",)

    def __init__(self, taken: set[str] | None = None) -> None:
        """`taken`: the set to keep the names in; it may answer `in` for more names than it holds
        (kube/fragments.py: those of the other Ingresses)."""
        self._taken: set[str] = set() if taken is None else taken

    def reserve(self, names: Iterable[str]) -> None:
        """Names taken already (another translation's routers)."""
        self._taken.update(names)

    def make(self, name: str) -> str:
        """`name` with every run of other characters as one `-`, numbered if already taken."""
        base = _NOT_NAME.sub("-", name).strip("-")
        candidate, n = base, 1
        while candidate in self._taken:
            n += 1
            candidate = f"{base}-{n}"
        self._taken.add(candidate)
        return candidate
