"""desired.py on its own: which eligible nodes settling holds out, and the addresses published."""

from __future__ import annotations

import pytest

from passerelle.dnssync.desired import NodeVerdict, addresses_of, settling


@pytest.mark.parametrize(
    "excluded, since, published, held",
    [
        ("", 100.0, set(), {"n2": 130.0}),  # eligible 10 s ago, not in DNS: held until 130
        ("", 70.0, set(), {}),  # eligible for 40 s: settled
        ("", 100.0, {"10.0.0.2"}, {}),  # already in DNS (a restarted controller): kept, not held
        ("NotReady", 100.0, set(), {}),  # ineligible: out anyway, nothing to hold
        ("", None, set(), {"n2": 140.0}),  # first seen now: held the whole settle time
    ],
    ids=["recent", "settled", "published", "ineligible", "new"],
)
def test_settling(excluded: str, since: float | None, published: set[str], held: dict[str, float]) -> None:
    verdicts = (
        NodeVerdict(name="n1", addresses=("10.0.0.1",)),
        NodeVerdict(name="n2", addresses=("10.0.0.2",), excluded=excluded),
    )
    times = {"n1": 0.0, **({"n2": since} if since is not None else {})}
    assert settling(verdicts, times, 110.0, 30.0, frozenset({"10.0.0.1", *published})) == held


def test_addresses_are_the_eligible_nodes_ipv4_first_in_numeric_order_once_each() -> None:
    nodes = (
        NodeVerdict(name="n1", addresses=("10.0.0.10", "fd00::2")),
        NodeVerdict(name="n2", addresses=("10.0.0.9", "fd00::10")),
        NodeVerdict(name="n3", addresses=("10.0.0.1",), excluded="NotReady"),
        NodeVerdict(name="n4", addresses=("10.0.0.9",)),
    )
    assert addresses_of(nodes) == ("10.0.0.9", "10.0.0.10", "fd00::2", "fd00::10")
    assert addresses_of(()) == ()
