"""Reading objects whose shape nothing checked: a manifest file has no schema, so any field may
hold any JSON value. Readers that validate (objects.py, gateway_objects.py) report what is wrong;
the others read through these, so that a wrong type counts as absent instead of raising, and the
per-object containment in translation (`MALFORMED`) turns what is left into a Problem on that object.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# What reading a malformed object can raise; caught per object, reported on it.
MALFORMED = (TypeError, AttributeError, KeyError, ValueError, IndexError)


def mapping(value: Any) -> Mapping[str, Any]:
    """`value` if it is an object, else an empty one."""
    return value if isinstance(value, Mapping) else {}


def items(value: Any) -> list[Any]:
    """`value` if it is a list, else an empty one."""
    return value if isinstance(value, list) else []


def text(value: Any) -> str:
    """`value` if it is a string, else ""."""
    return value if isinstance(value, str) else ""


def not_an_object(obj: Any) -> str | None:
    """What keeps a document from being a Kubernetes object as the API server would hand it over
    (`kind`, `metadata.name`, and metadata's other fields of their types), or None. Readers may
    then trust `metadata`: its name and namespace are strings, labels and annotations map strings
    to strings."""
    meta = obj.get("metadata") if isinstance(obj, Mapping) else None
    if not isinstance(meta, Mapping) or not text(obj.get("kind")) or not text(meta.get("name")):
        return "is not a Kubernetes object (kind and metadata.name required)"
    if not isinstance(meta.get("namespace", ""), str):
        return "is not a Kubernetes object: metadata.namespace must be a string"
    for field in ("labels", "annotations"):
        value = meta.get(field, {})
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            return f"is not a Kubernetes object: metadata.{field} must map strings to strings"
    return None
