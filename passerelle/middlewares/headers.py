"""headers: set, add and remove request and response header fields.

The Gateway API's RequestHeaderModifier and ResponseHeaderModifier filters (`set`, `add`,
`remove`, names case-insensitive), and the shape Traefik's `headers` middleware
(`customRequestHeaders`, `customResponseHeaders`) reads into later. Per the Gateway API
(HTTPHeaderFilter): `set` replaces every field of that name with one, `add` appends a field
(the values then read as a comma-joined list), `remove` drops every field of that name. They apply
in that order: set, add, remove. The transforms are pure: a request head in bytes (as the proxy
builds it for the upstream) or a response's field list in, the edited one out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

_CRLF = b"\r\n"
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 §5.1 field-name
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # no line breaks or controls in a value


@dataclass(frozen=True, slots=True, kw_only=True)
class HeaderEdits:
    """set/add: (name, value) pairs; remove: names. Names keep the author's spelling."""

    set: tuple[tuple[str, str], ...] = ()
    add: tuple[tuple[str, str], ...] = ()
    remove: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name, value in (*self.set, *self.add):
            _check(name)
            if _BAD_VALUE.search(value):
                raise ValueError(f"header {name}: the value must not hold control characters or line breaks")
        for name in self.remove:
            _check(name)

    def __bool__(self) -> bool:
        return bool(self.set or self.add or self.remove)

    def apply(self, fields: Sequence[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """The field list with the edits made (names compared case-insensitively)."""
        replaced = {name.lower().encode() for name, _ in self.set}
        dropped = {name.lower().encode() for name in self.remove}
        out = [(n, v) for n, v in fields if n.lower() not in replaced]
        out += [(name.encode(), value.encode()) for name, value in self.set]
        out += [(name.encode(), value.encode()) for name, value in self.add]
        return [(n, v) for n, v in out if n.lower() not in dropped]

    def edit(
        self, start: bytes, fields: list[tuple[bytes, bytes]]
    ) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        """A request head's (request line, fields) with the edits made to its fields."""
        return start, self.apply(fields)

    def apply_to_head(self, head: bytes) -> bytes:
        """A request head (`request line CRLF fields CRLF CRLF`) with the edits made to its fields."""
        return edit_head(head, (self,))

    def to_dict(self) -> dict[str, Any]:
        return {
            "set": [list(p) for p in self.set],
            "add": [list(p) for p in self.add],
            "remove": list(self.remove),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HeaderEdits:
        return cls(
            set=tuple((n, v) for n, v in data["set"]),
            add=tuple((n, v) for n, v in data["add"]),
            remove=tuple(data["remove"]),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Headers:
    kind: ClassVar[str] = "headers"

    request: HeaderEdits = HeaderEdits()
    response: HeaderEdits = HeaderEdits()

    def to_dict(self) -> dict[str, Any]:
        return {"request": self.request.to_dict(), "response": self.response.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Headers:
        return cls(
            request=HeaderEdits.from_dict(data["request"]), response=HeaderEdits.from_dict(data["response"])
        )


class HeadEdit(Protocol):
    """A request edit (headers, urlRewrite, stripPrefix): the head's (request line, fields) in and out."""

    def edit(
        self, start: bytes, fields: list[tuple[bytes, bytes]]
    ) -> tuple[bytes, list[tuple[bytes, bytes]]]: ...


def edit_head(head: bytes, edits: Iterable[HeadEdit]) -> bytes:
    """A request head with `edits` made in order: split into fields once, joined once."""
    start, fields = split_head(head)
    for edit in edits:
        start, fields = edit.edit(start, fields)
    return join_head(start, fields)


def split_head(head: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """(request line, fields) of a head built by the proxy (one field per line, no folding)."""
    lines = head.split(_CRLF)
    fields = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(b":")
            fields.append((name, value.strip()))
    return lines[0], fields


def join_head(start: bytes, fields: Sequence[tuple[bytes, bytes]]) -> bytes:
    return b"".join([start, _CRLF, *(b"%s: %s\r\n" % field for field in fields), _CRLF])


def _check(name: str) -> None:
    if not _TOKEN.fullmatch(name):
        raise ValueError(f"header name {name!r} is not a field name (RFC 9110 §5.1)")
