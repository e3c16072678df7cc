"""DNS values shared by the plan and the providers: record sets, changes, and the ownership TXT.

Names are absolute, lower case, without the trailing dot (`www.example.test`, `*.apps.example.test`).
Values are canonical text: compressed IP addresses for A/AAAA, the presentation form otherwise. A
TXT value is its character-strings, each quoted (`"v=spf1 " "-all"`; RFC 1035 section 5.1
escapes: backslash-quote, backslash-backslash, backslash and three digits for bytes outside
printable ASCII), so two values compare as the lists of byte strings they are, and bytes that are
not UTF-8 survive a read and a rewrite. A record set is compared as a whole (TTL and values), as
RFC 2136 updates replace it.

Ownership (the external-dns TXT registry's idea, RFC 2136-safe): a name passerelle publishes has a
TXT record at `_passerelle.<name>` (a wildcard's `*` spelt `_wildcard`) holding
`heritage=passerelle,passerelle/owner=<ownerId>,passerelle/resource=<kind>/<namespace>/<name>`.
Only names whose TXT names this ownerId are ever changed or deleted; a TXT value that claims
passerelle heritage but is not exactly those three fields makes the name nobody's (`malformed`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

OWNERSHIP_LABEL = "_passerelle"
WILDCARD_LABEL = "_wildcard"
HERITAGE = "passerelle"
ADDRESS_RRTYPES = ("A", "AAAA")  # record types; kube/nodes.py ADDRESS_TYPES are Node address kinds
# Data that makes a name someone else's when no ownership record of ours is there.
OCCUPYING_TYPES = frozenset({"A", "AAAA", "CNAME"})


@dataclass(frozen=True, slots=True, kw_only=True, order=True)
class RRset:
    name: str
    type: str
    ttl: int
    values: tuple[str, ...]  # sorted, canonical

    def __post_init__(self) -> None:
        if tuple(sorted(set(self.values))) != self.values:
            raise ValueError(f"RRset {self.name} {self.type}: values must be sorted and distinct")
        if not self.values:
            raise ValueError(f"RRset {self.name} {self.type}: an RRset holds at least one record")

    def __str__(self) -> str:
        shown = ", ".join(self.values)
        return f"{self.name} {self.ttl} {self.type} {shown}"


def rrset(name: str, type: str, ttl: int, values: object) -> RRset:
    """An RRset from any iterable of values (sorted and deduplicated here)."""
    return RRset(name=name, type=type, ttl=ttl, values=tuple(sorted(set(values))))  # type: ignore[call-overload]


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


@dataclass(frozen=True, slots=True, kw_only=True, order=True)
class Change:
    """Replace `before` (None: the set must not exist) by `after` (None: delete it).

    `before` is also the prerequisite a provider checks (RFC 2136 §2.4.2/§2.4.3): a change
    computed from a state that moved meanwhile is refused rather than applied over it.
    """

    zone: str
    name: str
    type: str
    before: RRset | None = None
    after: RRset | None = None
    # For an address change: the ownership TXT as read, a prerequisite too (the name must still
    # be ours when its addresses change, even if its TXT itself does not change).
    guard: RRset | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.before is None and self.after is None:
            raise ValueError("a change needs a before or an after")

    @property
    def host(self) -> str:
        """The name this change is about: its own, or the one its ownership TXT records."""
        return owned_host(self.name) or self.name

    @property
    def action(self) -> Action:
        if self.before is None:
            return Action.CREATE
        return Action.DELETE if self.after is None else Action.UPDATE

    def __str__(self) -> str:
        if self.after is None:
            return f"delete {self.before}"
        if self.before is None:
            return f"create {self.after}"
        return f"update {self.before} -> {self.after.ttl} {self.after.type} {', '.join(self.after.values)}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ZoneState:
    """What a provider read from one zone: the record sets of the types the plan looks at."""

    zone: str
    rrsets: tuple[RRset, ...]


def ownership_name(name: str) -> str:
    first, dot, rest = name.partition(".")
    if first == "*":
        first = WILDCARD_LABEL
    return f"{OWNERSHIP_LABEL}.{first}{dot}{rest}"


def owned_host(registry: str) -> str | None:
    """The name an ownership TXT is about (`_passerelle._wildcard.x` -> `*.x`); None if it is none."""
    prefix, dot, rest = registry.partition(".")
    if prefix != OWNERSHIP_LABEL or not dot:
        return None
    first, dot, tail = rest.partition(".")
    return f"{'*' if first == WILDCARD_LABEL else first}{dot}{tail}"


def ownership_text(owner: str, resource: str) -> str:
    return f"heritage={HERITAGE},{HERITAGE}/owner={owner},{HERITAGE}/resource={resource}"


def ownership_value(owner: str, resource: str) -> str:
    """The ownership TXT record's value (presentation form, strings of at most 255 bytes)."""
    return txt_value(chunk(ownership_text(owner, resource).encode()))


def chunk(data: bytes) -> list[bytes]:
    """Data as TXT strings of at most 255 bytes (RFC 1035 §3.3.14)."""
    return [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]


def txt_value(strings: list[bytes] | tuple[bytes, ...]) -> str:
    """TXT character-strings in presentation form, each quoted."""
    out = []
    for data in strings:
        text = "".join(
            "\\" + chr(b) if b in (0x22, 0x5C) else chr(b) if 0x20 <= b < 0x7F else f"\\{b:03d}" for b in data
        )
        out.append(f'"{text}"')
    return " ".join(out)


def txt_strings(value: str) -> list[bytes]:
    """The inverse of `txt_value`; ValueError on anything else."""
    out: list[bytes] = []
    i = 0
    while i < len(value):
        if value[i] == " ":
            i += 1
            continue
        if value[i] != '"':
            raise ValueError(f"TXT value {value!r}: expected a quoted string at {i}")
        data = bytearray()
        i += 1
        while i < len(value) and value[i] != '"':
            if value[i] == "\\":
                if value[i + 1 : i + 4].isdigit() and len(value[i + 1 : i + 4]) == 3:
                    data.append(int(value[i + 1 : i + 4]))
                    i += 4
                    continue
                i += 1
                if i >= len(value):
                    break
            data += value[i].encode()
            i += 1
        if i >= len(value):
            raise ValueError(f"TXT value {value!r}: unterminated string")
        out.append(bytes(data))
        i += 1
    return out


def txt_text(value: str) -> str:
    """A TXT value's strings joined and decoded (for reading what a record says); "" if malformed."""
    try:
        return b"".join(txt_strings(value)).decode("utf-8", "replace")
    except ValueError:
        return ""


_FIELDS = ("heritage", f"{HERITAGE}/owner", f"{HERITAGE}/resource")


def owner_of(value: str) -> str | None:
    """The ownerId in an ownership TXT value; None when it is not a well-formed one (exactly the
    three fields, each once, heritage first: anything else is nobody's, see `malformed`)."""
    text = txt_text(value)
    parts = [part.partition("=") for part in text.split(",")]
    keys = [key for key, _, _ in parts]
    if len(parts) != 3 or sorted(keys) != sorted(_FIELDS) or keys[0] != "heritage":
        return None
    fields = {key: value for key, _, value in parts}
    if fields["heritage"] != HERITAGE or not fields[f"{HERITAGE}/owner"]:
        return None
    return fields[f"{HERITAGE}/owner"]


def malformed(value: str) -> bool:
    """A TXT value that claims passerelle heritage but is not a well-formed ownership record
    (a duplicated, missing or extra field): it makes the name nobody's to change."""
    text = txt_text(value)
    claims = text == f"heritage={HERITAGE}" or text.startswith(f"heritage={HERITAGE},")
    return claims and owner_of(value) is None


def in_zone(name: str, zone: str) -> bool:
    return name == zone or name.endswith("." + zone)
