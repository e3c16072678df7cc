"""DNS values shared by the plan and the providers: record sets, changes, and the ownership TXT.

Names are absolute, lower case, without the trailing dot (`www.example.test`, `*.apps.example.test`).
Values are canonical text: compressed IP addresses for A/AAAA, the decoded string for TXT, the
presentation form otherwise. A record set is compared as a whole (TTL and values), as RFC 2136
updates replace it.

Ownership (the external-dns TXT registry's idea, RFC 2136-safe): a name passerelle publishes has a
TXT record at `_passerelle.<name>` (a wildcard's `*` spelt `_wildcard`) holding
`heritage=passerelle,passerelle/owner=<ownerId>,passerelle/resource=<kind>/<namespace>/<name>`.
Only names whose TXT names this ownerId are ever changed or deleted.
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
        shown = ", ".join(f'"{v}"' if self.type == "TXT" else v for v in self.values)
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


_FIELDS = ("heritage", f"{HERITAGE}/owner", f"{HERITAGE}/resource")


def owner_of(text: str) -> str | None:
    """The ownerId in an ownership TXT value; None when the text is not a well-formed one (exactly
    the three fields, each once, heritage first: anything else is nobody's, see `malformed`)."""
    parts = [part.partition("=") for part in text.split(",")]
    keys = [key for key, _, _ in parts]
    if len(parts) != 3 or sorted(keys) != sorted(_FIELDS) or keys[0] != "heritage":
        return None
    fields = {key: value for key, _, value in parts}
    if fields["heritage"] != HERITAGE or not fields[f"{HERITAGE}/owner"]:
        return None
    return fields[f"{HERITAGE}/owner"]


def malformed(text: str) -> bool:
    """A TXT value that claims passerelle heritage but is not a well-formed ownership record
    (a duplicated, missing or extra field): it makes the name nobody's to change."""
    claims = text == f"heritage={HERITAGE}" or text.startswith(f"heritage={HERITAGE},")
    return claims and owner_of(text) is None


def in_zone(name: str, zone: str) -> bool:
    return name == zone or name.endswith("." + zone)
