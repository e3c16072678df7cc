"""How the rfc2136 provider reads zones, against a real BIND 9: an unchanged SOA serial skips the
zone transfer (BIND's log counts the transfers it served), a full transfer comes back every
`full_transfer_every` reads, and after any write."""

from __future__ import annotations

import time

import dns.query
import dns.rcode
import dns.update

from passerelle.dnssync.records import Change, rrset
from passerelle.dnssync.rfc2136 import Rfc2136Options, Rfc2136Provider
from tests.integration.bind import KEY_NAME, Bind


def provider(bind: Bind, *, every: int) -> Rfc2136Provider:
    return Rfc2136Provider(
        Rfc2136Options(
            server="127.0.0.1", port=bind.port, key_name=KEY_NAME, secret=bind.secret,
            timeout=2.0, full_transfer_every=every,
        )
    )  # fmt: skip


def transfers(bind: Bind, expected: int) -> int:
    """The zone transfers BIND has served (its xfer-out log), once `expected` are logged (or 2 s)."""
    deadline = time.monotonic() + 2
    while True:
        count = bind.log().count("AXFR started")
        if count >= expected or time.monotonic() > deadline:
            return count
        time.sleep(0.02)


def names(state: object) -> set[str]:
    return {r.name for r in state.rrsets}  # type: ignore[attr-defined]


async def test_an_unchanged_serial_skips_the_transfer_until_the_full_one_is_due(bind: Bind) -> None:
    reader = provider(bind, every=3)
    first = await reader.read(bind.zone)
    assert "ns.example.test" in names(first) and transfers(bind, 1) == 1
    assert await reader.read(bind.zone) == first  # same serial: the last transfer's state
    assert transfers(bind, 2) == 1

    update = dns.update.UpdateMessage(bind.zone, keyring=bind.keyring())  # someone else's write
    update.add("foreign.example.test.", 30, "A", "198.51.100.8")
    assert dns.query.tcp(update, "127.0.0.1", port=bind.port, timeout=2).rcode() == dns.rcode.NOERROR
    second = await reader.read(bind.zone)  # the serial moved: transferred, and seen
    assert "foreign.example.test" in names(second) and transfers(bind, 2) == 2

    for _ in range(2):  # one read in 3 is a full transfer: this one, then two from it
        assert await reader.read(bind.zone) == second and transfers(bind, 3) == 2
    assert await reader.read(bind.zone) == second and transfers(bind, 3) == 3  # nothing changed: transferred


async def test_a_write_makes_the_next_read_transfer(bind: Bind) -> None:
    reader = provider(bind, every=100)
    await reader.read(bind.zone)
    await reader.read(bind.zone)
    assert transfers(bind, 2) == 1
    created = rrset("new.example.test", "A", 30, ["10.0.0.1"])
    change = Change(zone=bind.zone, name="new.example.test", type="A", before=None, after=created)
    assert await reader.apply(bind.zone, [change]) == 1
    state = await reader.read(bind.zone)
    assert "new.example.test" in names(state) and transfers(bind, 2) == 2


async def test_with_full_transfer_every_1_every_read_transfers(bind: Bind) -> None:
    reader = provider(bind, every=1)
    for _ in range(3):
        await reader.read(bind.zone)
    assert transfers(bind, 3) == 3
