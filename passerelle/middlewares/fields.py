"""The one check every Traefik Middleware parser starts with: an object, of known keys only."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def object_of(spec: Any, known: frozenset[str], shape: str) -> Mapping[str, Any]:
    """`spec` as a mapping; raises ValueError naming `shape` (what it must be), or the first
    unknown key and the known ones."""
    if not isinstance(spec, Mapping):
        raise ValueError(f"must be an object {shape}")
    unknown = sorted(set(spec) - known)
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")
    return spec
