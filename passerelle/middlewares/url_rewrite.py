"""urlRewrite: change the request's Host and path before it goes upstream.

The Gateway API's URLRewrite filter (`hostname`; `path` of type ReplaceFullPath or
ReplacePrefixMatch), and what Traefik's `replacePath`, `stripPrefix` and `addPrefix` middlewares
amount to. `PathRewrite` is also the path part of a requestRedirect. ReplacePrefixMatch replaces
the path prefix the route matched, element-wise: prefix `/foo` with `/bar` makes `/foo/x` into
`/bar/x` and `/foo` into `/bar`; replacing with `/` makes `/foo/x` into `/x`. The query is kept.
With `replaced_path` (Traefik's replacePath and 1.7's rewrite-target), the path the request came
with goes upstream in `X-Replaced-Path`, replacing any the client sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from passerelle.http.redirect import is_authority, path_of
from passerelle.middlewares.headers import edit_head

REPLACED_PATH = b"X-Replaced-Path"  # Traefik's name (replacePath, replacePathRegex)
REPLACED_PATH_LOWER = REPLACED_PATH.lower()
FULL = "ReplaceFullPath"
PREFIX = "ReplacePrefixMatch"


@dataclass(frozen=True, slots=True, kw_only=True)
class PathRewrite:
    """type FULL: the path becomes `value`. type PREFIX: `matched` (the route's path prefix) becomes `value`."""

    type: str
    value: str
    matched: str = "/"

    def __post_init__(self) -> None:
        if self.type not in (FULL, PREFIX):
            raise ValueError(f"path rewrite type {self.type!r} must be {FULL} or {PREFIX}")
        if not self.value.startswith("/") or not self.matched.startswith("/"):
            raise ValueError(f"path rewrite {self.value!r} must be an absolute path")

    def apply(self, path: str) -> str:
        """The new path for a request path (without query) that the route matched."""
        if self.type == FULL:
            return self.value
        rest = path[len(self.matched.rstrip("/")) :]
        return (self.value.rstrip("/") + rest) or "/"

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "value": self.value, "matched": self.matched}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PathRewrite:
        return cls(type=data["type"], value=data["value"], matched=data["matched"])


def rewrite_target(path: PathRewrite, target: bytes) -> bytes:
    """A request-target with its path rewritten, as origin-form with any query (an absolute-form
    target's authority is dropped: the Host header was routed; `*` becomes `/`)."""
    if target[:1] != b"/":
        target = path_of(target)
    raw, question, query = target.partition(b"?")
    return path.apply(raw.decode("latin-1")).encode("latin-1") + question + query


@dataclass(frozen=True, slots=True, kw_only=True)
class UrlRewrite:
    kind: ClassVar[str] = "urlRewrite"

    host: str | None = None
    path: PathRewrite | None = None
    replaced_path: bool = False  # X-Replaced-Path: the original path (with `path` only)

    def __post_init__(self) -> None:
        if self.host is not None and not is_authority(self.host):
            raise ValueError(f"hostname {self.host!r} must be a host name")

    def apply_to_head(self, head: bytes) -> bytes:
        """The upstream request head with its request-target and Host rewritten."""
        return edit_head(head, (self,))

    def edit(
        self, start: bytes, fields: list[tuple[bytes, bytes]]
    ) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        if self.path is not None:
            method, _, rest = start.partition(b" ")
            target, _, version = rest.rpartition(b" ")
            start = b"%s %s %s" % (method, rewrite_target(self.path, target), version)
            if self.replaced_path:
                original = (target if target[:1] == b"/" else path_of(target)).partition(b"?")[0]
                fields = [(n, v) for n, v in fields if n.lower() != REPLACED_PATH_LOWER]
                fields.append((REPLACED_PATH, original))
        if self.host is not None:
            host = self.host.encode()
            fields = [(n, host) if n.lower() == b"host" else (n, v) for n, v in fields]
        return start, fields

    def to_dict(self) -> dict[str, Any]:
        path = None if self.path is None else self.path.to_dict()
        return {"host": self.host, "path": path, "replacedPath": self.replaced_path}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UrlRewrite:
        path = data["path"]
        return cls(
            host=data["host"],
            path=None if path is None else PathRewrite.from_dict(path),
            replaced_path=bool(data.get("replacedPath", False)),
        )
