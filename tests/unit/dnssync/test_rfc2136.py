"""The UPDATE messages rfc2136.py builds (no sockets): prerequisites and packing by size."""

from __future__ import annotations

import dns.exception
import dns.name
import dns.rdatatype
import pytest

from passerelle.dnssync.records import Change, ownership_name, ownership_value, rrset
from passerelle.dnssync.rfc2136 import MAX_MESSAGE_BYTES, _batches, _message, _size, by_host

ZONE = "example.test"
TXT = rrset(
    ownership_name("app.example.test"), "TXT", 30, [ownership_value("cluster-a", "ingress/default/app")]
)


def prerequisites(changes: list[Change]) -> list[tuple[str, str, int]]:
    """(name, type, number of records) of each prerequisite of the message."""
    update = _message(ZONE, changes)
    return [
        (r.name.to_text(omit_final_dot=True), dns.rdatatype.to_text(r.rdtype), len(r))
        for r in update.prerequisite
    ]


def test_an_address_update_requires_the_ownership_txt_as_read() -> None:
    before = rrset("app.example.test", "A", 30, ["10.0.0.1"])
    after = rrset("app.example.test", "A", 30, ["10.0.0.1", "10.0.0.2"])
    change = Change(zone=ZONE, name="app.example.test", type="A", before=before, after=after, guard=TXT)
    assert prerequisites([change]) == [
        ("_passerelle.app.example.test", "TXT", 1),  # present, value dependent: still ours
        ("app.example.test", "A", 1),
    ]


def test_a_txt_changed_in_the_same_message_is_its_own_prerequisite() -> None:
    after = rrset("app.example.test", "A", 30, ["10.0.0.1"])
    new_txt = rrset(TXT.name, "TXT", 60, TXT.values)
    changes = [
        Change(zone=ZONE, name="app.example.test", type="A", before=None, after=after, guard=TXT),
        Change(zone=ZONE, name=TXT.name, type="TXT", before=TXT, after=new_txt),
    ]
    assert sorted(prerequisites(changes)) == [
        ("_passerelle.app.example.test", "TXT", 1),
        ("app.example.test", "A", 0),  # does not exist
        ("app.example.test", "CNAME", 0),  # nor a CNAME, which would make the server drop the add
    ]


def test_batches_are_packed_by_encoded_size() -> None:
    """Large TXT values: 300 names of ~1 KiB each must not go in one 300-change message (over
    64 KiB, more than TCP's length prefix can carry)."""
    changes = []
    for i in range(300):
        name = f"h{i:03}.example.test"
        value = ownership_value("cluster-a", "ingress/default/" + "x" * 1000)
        changes.append(
            Change(
                zone=ZONE,
                name=ownership_name(name),
                type="TXT",
                after=rrset(ownership_name(name), "TXT", 30, [value]),
            )
        )
    names = by_host(changes)
    batches = list(_batches(names, 1000, MAX_MESSAGE_BYTES, lambda g: _size(ZONE, g)))
    assert len(batches) > 1 and sum(len(b) for b in batches) == 300
    for batch in batches:
        wire = _message(ZONE, [c for g in batch for c in g]).to_wire()
        assert len(wire) <= MAX_MESSAGE_BYTES + 512, len(wire)
    with pytest.raises(dns.exception.TooBig):  # what a count-only batch would have sent
        _message(ZONE, changes).to_wire()


def test_size_is_what_a_name_adds() -> None:
    group = [Change(zone=ZONE, name=TXT.name, type="TXT", after=TXT)]
    alone = len(_message(ZONE, group).to_wire())
    assert 0 < _size(ZONE, group) < alone
    assert dns.name.from_text(ZONE) == _message(ZONE, group).origin


def test_the_secret_is_not_in_the_repr() -> None:
    from passerelle.dnssync.rfc2136 import Rfc2136Options

    options = Rfc2136Options(server="192.0.2.53", key_name="k", secret="c2VjcmV0LXZhbHVl")
    assert "c2VjcmV0LXZhbHVl" not in repr(options) and "key_name='k'" in repr(options)
