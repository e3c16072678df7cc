"""Leader election decisions, table-driven: who writes the Lease, and what."""

from __future__ import annotations

import datetime

import pytest

from passerelle.kube.lease import Record, decide, micro_time, read_record

WALL = datetime.datetime(2026, 12, 1, 12, 0, 0, 123456, tzinfo=datetime.UTC)
OTHER = Record(
    holder="b",
    duration=15,
    renewed="2026-12-01T11:59:59.000000Z",
    acquired="2026-12-01T11:00:00.000000Z",
    transitions=3,
    resource_version="7",
)


@pytest.mark.parametrize(
    ("record", "observed_for", "writes", "leads", "transitions"),
    [
        (None, 0.0, True, True, 0),  # no Lease: create it
        (Record(holder="a", duration=15, acquired="t0", transitions=2), 0.0, True, True, 2),  # ours: renew
        (OTHER, 0.0, False, False, None),  # someone else's, just renewed
        (OTHER, 14.9, False, False, None),  # still within its duration on our clock
        (OTHER, 15.0, True, True, 4),  # unchanged for a whole duration: take it over
        (Record(holder="", duration=1, transitions=4), 0.0, True, True, 5),  # released: take it at once
    ],
)
def test_decide(
    record: Record | None, observed_for: float, writes: bool, leads: bool, transitions: int | None
) -> None:
    decision = decide(record, identity="a", duration=15, observed_for=observed_for, wall=WALL)
    assert (decision.write is not None, decision.leads) == (writes, leads)
    if decision.write is not None:
        assert decision.write["holderIdentity"] == "a"
        assert decision.write["renewTime"] == "2026-12-01T12:00:00.123456Z"
        assert decision.write["leaseDurationSeconds"] == 15
        assert decision.write["leaseTransitions"] == transitions


def test_renewing_keeps_the_acquire_time() -> None:
    mine = Record(holder="a", duration=15, acquired="2026-12-01T10:00:00.000000Z")
    assert (
        decide(mine, identity="a", duration=15, observed_for=0, wall=WALL).write["acquireTime"]
        == mine.acquired
    )  # type: ignore[index]


def test_read_record_and_micro_time() -> None:
    lease = {
        "metadata": {"resourceVersion": "9"},
        "spec": {"holderIdentity": "x", "leaseDurationSeconds": 10, "leaseTransitions": 1},
    }
    assert read_record(lease) == Record(holder="x", duration=10, transitions=1, resource_version="9")
    assert read_record({}) == Record()
    assert micro_time(WALL) == "2026-12-01T12:00:00.123456Z"
