"""The control plane's sums: deltas add up whichever worker sent them; gauges go with their worker."""

from __future__ import annotations

import pytest

from passerelle.observability.aggregate import Totals

LABELS = ["web", "r", "s", "ns", "ing", "GET", "200"]


def row(count: int, seconds: float, buckets: list[int], labels: list[str] = LABELS) -> list[object]:
    return [*labels, count, seconds, 0, count * 10, *buckets]


def test_deltas_from_several_workers_add_up_and_survive_a_dead_one() -> None:
    totals = Totals((0.1, 1.0))
    totals.add(0, {"requests": [row(2, 0.1, [2, 0, 0])], "connections": {"web": {"http/1.1": 3}}})
    totals.add(1, {"requests": [row(1, 2.0, [0, 0, 1])], "connections": {"web": {"http/1.1": 1, "h2": 2}}})
    totals.add(0, {"requests": [row(1, 0.5, [0, 1, 0])]})
    assert totals.open_connections() == {("web", "http/1.1"): 4, ("web", "h2"): 2}
    totals.worker_gone(0)
    assert totals.open_connections() == {("web", "http/1.1"): 1, ("web", "h2"): 2}
    [(key, h)] = totals.histograms().items()
    assert key == tuple(LABELS)
    assert (h.count, h.seconds, h.bytes_out, h.cumulative) == (4, pytest.approx(2.6), 40, (2, 3, 4))


def test_dropped_labels_are_summed_over() -> None:
    totals = Totals((1.0,))
    totals.add(0, {"requests": [row(1, 0.1, [1, 0]), row(2, 0.2, [2, 0], [*LABELS[:1], "r2", *LABELS[2:]])]})
    keep = (True, False, True, False, False, True, True)  # no router labels (namespace, ingress with it)
    [(key, h)] = totals.histograms(keep).items()
    assert key == ("web", "s", "GET", "200") and h.count == 3


def test_a_row_of_another_bucket_layout_is_refused() -> None:
    totals = Totals((0.1, 1.0))
    with pytest.raises(ValueError, match="fields"):
        totals.add(0, {"requests": [row(1, 0.1, [1, 0])]})
    totals.add(0, {"upstream": [["r", "s", "ns", "ing", 2, 1]]})
    totals.add(1, {"upstream": [["r", "s", "ns", "ing", 1, 0]]})
    assert totals.upstream == {("r", "s", "ns", "ing"): [3, 1]}
