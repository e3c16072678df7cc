"""Record values: ownership names and texts, change kinds, RRset invariants."""

from __future__ import annotations

import pytest

from passerelle.dnssync.records import (
    Action,
    Change,
    RRset,
    malformed,
    owner_of,
    ownership_name,
    ownership_text,
    rrset,
    txt_strings,
    txt_value,
)
from passerelle.dnssync.rfc2136 import _batches, by_host


@pytest.mark.parametrize(
    "name, registry",
    [
        ("www.example.test", "_passerelle.www.example.test"),
        ("*.apps.example.test", "_passerelle._wildcard.apps.example.test"),
        ("example.test", "_passerelle.example.test"),
    ],
)
def test_ownership_name(name: str, registry: str) -> None:
    assert ownership_name(name) == registry


@pytest.mark.parametrize(
    "text, owner",
    [
        (ownership_text("cluster-a", "ingress/ns/app"), "cluster-a"),
        ("heritage=external-dns,external-dns/owner=cluster-a", None),  # not ours to read
        ("v=spf1 -all", None),
        ("heritage=passerelle", None),
        (
            "heritage=passerelle,passerelle/owner=a,passerelle/owner=b,passerelle/resource=x",
            None,
        ),  # duplicate
        ("heritage=passerelle,passerelle/owner=a,passerelle/resource=x,extra=1", None),  # extra key
        ("heritage=passerelle,passerelle/owner=a", None),  # missing resource
        ("heritage=passerelle,passerelle/owner=,passerelle/resource=x", None),  # empty owner
        ("passerelle/owner=a,heritage=passerelle,passerelle/resource=x", None),  # heritage not first
    ],
)
def test_owner_of(text: str, owner: str | None) -> None:
    value = txt_value([text.encode()])
    assert owner_of(value) == owner
    assert malformed(value) is (owner is None and text.startswith("heritage=passerelle"))
    assert owner_of(txt_value([text[:10].encode(), text[10:].encode()])) == owner  # split strings: one text


@pytest.mark.parametrize(
    "strings, value",
    [
        ([b"v=spf1 -all"], '"v=spf1 -all"'),
        ([b"v=spf1 ", b"-all"], '"v=spf1 " "-all"'),  # two strings: not the same value as one
        ([b'say "hi" \\ there'], '"say \\"hi\\" \\\\ there"'),
        ([b"\xff\x00caf\xc3\xa9"], '"\\255\\000caf\\195\\169"'),  # not UTF-8: kept byte for byte
        ([b""], '""'),
    ],
)
def test_txt_values_are_their_strings(strings: list[bytes], value: str) -> None:
    assert txt_value(strings) == value
    assert txt_strings(value) == strings


@pytest.mark.parametrize("value", ["unquoted", '"open', '"a" b'])
def test_malformed_txt_values_are_refused(value: str) -> None:
    with pytest.raises(ValueError):
        txt_strings(value)
    assert owner_of(value) is None


def test_rrsets_are_canonical_and_changes_know_their_action() -> None:
    a = rrset("x.example.test", "A", 30, ["10.0.0.2", "10.0.0.1", "10.0.0.1"])
    assert a.values == ("10.0.0.1", "10.0.0.2")
    with pytest.raises(ValueError):
        RRset(name="x", type="A", ttl=1, values=("b", "a"))
    with pytest.raises(ValueError):
        rrset("x", "A", 1, [])
    assert Change(zone="z", name="x", type="A", after=a).action is Action.CREATE
    assert Change(zone="z", name="x", type="A", before=a).action is Action.DELETE
    assert Change(zone="z", name="x", type="A", before=a, after=a).action is Action.UPDATE


def test_batches_keep_a_names_changes_together() -> None:
    def group(name: str, n: int) -> list[Change]:
        return [
            Change(zone="z", name=name, type=t, after=rrset(name, t, 1, ["v"]))
            for t in ["A", "AAAA", "TXT"][:n]
        ]

    names = [group("a", 3), group("b", 2), group("c", 1), group("d", 3)]
    batches = [[g[0].name for g in batch] for batch in _batches(names, 4, 10**6, len)]
    assert batches == [["a"], ["b", "c"], ["d"]]  # never split a name, never over 4 unless one name is


def test_a_names_ownership_txt_travels_with_it() -> None:
    def change(name: str, rtype: str) -> Change:
        return Change(zone="z", name=name, type=rtype, after=rrset(name, rtype, 1, ["v"]))

    changes = [
        change("_passerelle.b.z", "TXT"),
        change("a.z", "A"),
        change("_passerelle._wildcard.a.z", "TXT"),
        change("b.z", "AAAA"),
        change("*.a.z", "A"),
        change("_passerelle.a.z", "TXT"),
        change("b.z", "A"),
    ]
    assert [[(c.name, c.type) for c in group] for group in by_host(changes)] == [
        [("*.a.z", "A"), ("_passerelle._wildcard.a.z", "TXT")],
        [("_passerelle.a.z", "TXT"), ("a.z", "A")],
        [("_passerelle.b.z", "TXT"), ("b.z", "A"), ("b.z", "AAAA")],
    ]
