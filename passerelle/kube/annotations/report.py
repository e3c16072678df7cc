"""What became of each annotation key of an Ingress: honoured, ignored, or unknown.

Keys under the prefixes passerelle reads (`passerelle.io/`, `traefik.ingress.kubernetes.io/`,
`ingress.kubernetes.io/`, and Traefik 1.7's old label names `traefik.frontend.`, `traefik.backend.`)
are reported; others (`kubectl.kubernetes.io/...`, another controller's)
are none of our business. *Honoured*: passerelle does what the key says. *Ignored*: a key Traefik
or passerelle defines that passerelle does not implement yet, a value it cannot read, or a key
another one overrides; the note says which. *Unknown*: under our prefixes but defined by nobody,
usually a typo.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

PREFIXES = (
    "passerelle.io/", "traefik.ingress.kubernetes.io/", "ingress.kubernetes.io/", "traefik.frontend.",
    "traefik.backend.",
)  # fmt: skip


class KeyStatus(StrEnum):
    HONOURED = "honoured"
    IGNORED = "ignored"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True, kw_only=True, order=True)
class KeyReport:
    key: str
    status: KeyStatus
    note: str = ""

    def __str__(self) -> str:
        return f"{self.key} ({self.note})" if self.note else self.key


@dataclass(frozen=True, slots=True, kw_only=True)
class AnnotationReport:
    keys: tuple[KeyReport, ...] = ()

    def of(self, status: KeyStatus) -> tuple[KeyReport, ...]:
        return tuple(k for k in self.keys if k.status is status)

    def message(self) -> str | None:
        """One line for a warning Problem, or None when every key was honoured."""
        ignored, unknown = self.of(KeyStatus.IGNORED), self.of(KeyStatus.UNKNOWN)
        if not ignored and not unknown:
            return None
        parts = []
        for status, keys in (
            (KeyStatus.HONOURED, self.of(KeyStatus.HONOURED)),
            (KeyStatus.IGNORED, ignored),
            (KeyStatus.UNKNOWN, unknown),
        ):
            if keys:
                parts.append(f"{status}: {', '.join(map(str, keys))}")
        return "annotations " + "; ".join(parts)


def parse_bool(value: str) -> bool | None:
    """Go's strconv.ParseBool, which Traefik uses for every boolean annotation; None if invalid."""
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    return None


def parse_list(value: str) -> tuple[str, ...]:
    """A comma-separated list (`web, websecure`), blanks dropped, order kept."""
    return tuple(item.strip() for item in value.split(",") if item.strip())
