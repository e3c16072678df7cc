"""The provider seam: how DNS sync reads a zone and applies changes to it, and how it fails.

A provider is two coroutines. `read(zone)` returns the zone's A, AAAA, CNAME and TXT record sets
(all of them: the plan needs to see records it does not own, to leave them alone). `apply(zone,
changes)` applies changes whose `before` is the state they were planned from: a provider must
refuse a change whose `before` no longer holds (raise `Conflict`) rather than overwrite it, and
should apply all changes of one name together or not at all (the ownership TXT and the addresses
move as one). Everything else a provider does is its own business: `rfc2136.py` speaks RFC 2136
to an authoritative server; a LanDB or external-dns-webhook provider would map the same two calls
onto `landb-alias` metadata or `GET/POST /records`.

Failures are one small tree, mapped at the provider's boundary: `Unreachable` (retried),
`Refused` (the server said no: credentials or permissions; retried, the operator must act),
`Conflict` (the zone moved under the plan: re-read and re-plan). An `apply` is atomic per name,
not per call: the error's `applied` lists the changes made before it failed (the next reconcile
re-reads, so nothing is applied twice). Messages are for the operator and name the server and
the zone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from passerelle.dnssync.records import Change, ZoneState


class ProviderError(Exception):
    """DNS sync could not read or change a zone.

    `applied`: the changes the failed `apply` did make before it failed (a provider that sends
    several messages may lose the server after some were applied); empty for a read.
    """

    reason = "error"  # the metrics' label (passerelle_dnssync_errors): each subclass names its own

    def __init__(self, message: str, *, applied: tuple[Change, ...] = ()) -> None:
        super().__init__(message)
        self.applied = applied


class Unreachable(ProviderError):
    """The server did not answer (down, timed out, connection refused)."""

    reason = "unreachable"


class Refused(ProviderError):
    """The server answered no: a bad TSIG key, no permission to transfer or update the zone."""

    reason = "refused"


class Conflict(ProviderError):
    """A change's prerequisite no longer holds: the zone changed since it was read."""

    reason = "conflict"


class DnsProvider(Protocol):
    def describe(self) -> str:
        """One line for logs and the plan: `rfc2136 127.0.0.1:53 (TSIG key passerelle)`."""
        ...

    async def read(self, zone: str) -> ZoneState: ...

    async def apply(self, zone: str, changes: Sequence[Change]) -> int:
        """Apply `changes`; returns how many messages/calls it took. A change's `host` groups it
        with the other changes of its name (its ownership TXT included)."""
        ...
