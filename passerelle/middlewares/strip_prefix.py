"""stripPrefix: take a prefix off the request path before it goes upstream (Traefik's middleware).

As Traefik does (`pkg/middlewares/stripprefix`): the first of `prefixes` the path starts with, by
characters (`/api` also strips `/apix` to `/x`), is taken off; a path left without a leading slash
gets one (`/` when nothing is left); the prefix goes upstream in `X-Forwarded-Prefix` (replacing
any the client sent: Traefik adds to it). A path that starts with none of them goes as it came. The
query is kept. Traefik's deprecated `forceSlash` is accepted and changes nothing here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from passerelle.http.redirect import path_of
from passerelle.middlewares.fields import object_of
from passerelle.middlewares.headers import edit_head

FORWARDED_PREFIX = b"X-Forwarded-Prefix"
_KEYS = frozenset({"prefixes", "forceSlash"})


@dataclass(frozen=True, slots=True, kw_only=True)
class StripPrefix:
    kind: ClassVar[str] = "stripPrefix"

    prefixes: tuple[str, ...]

    def __post_init__(self) -> None:
        for prefix in self.prefixes:
            if not prefix.startswith("/") or any(c in prefix for c in " ?#\t\r\n"):
                raise ValueError(f"prefix {prefix!r} must be an absolute path")

    def strip(self, path: bytes) -> tuple[bytes, bytes] | None:
        """(the path without the first prefix it starts with, that prefix), or None."""
        for prefix in self.prefixes:
            raw = prefix.encode("latin-1")
            if path.startswith(raw):
                rest = path[len(raw) :]
                return (rest if rest[:1] == b"/" else b"/" + rest), raw
        return None

    def apply_to_head(self, head: bytes) -> bytes:
        return edit_head(head, (self,))

    def edit(
        self, start: bytes, fields: list[tuple[bytes, bytes]]
    ) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        method, _, rest = start.partition(b" ")
        target, _, version = rest.rpartition(b" ")
        path, question, query = (target if target[:1] == b"/" else path_of(target)).partition(b"?")
        stripped = self.strip(path)
        if stripped is None:
            return start, fields
        fields = [(n, v) for n, v in fields if n.lower() != b"x-forwarded-prefix"]
        fields.append((FORWARDED_PREFIX, stripped[1]))
        return b"%s %s%s%s %s" % (method, stripped[0], question, query, version), fields

    @classmethod
    def from_middleware(cls, spec: Any) -> StripPrefix:
        """The value of a Middleware's `spec.stripPrefix`."""
        spec = object_of(spec, _KEYS, "with `prefixes`")
        prefixes = spec.get("prefixes")
        if not isinstance(prefixes, list) or not prefixes or not all(isinstance(p, str) for p in prefixes):
            raise ValueError("`prefixes` must be a list of paths")
        return cls(prefixes=tuple(p.strip() for p in prefixes))

    def to_dict(self) -> dict[str, Any]:
        return {"prefixes": list(self.prefixes)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StripPrefix:
        return cls(prefixes=tuple(data["prefixes"]))
