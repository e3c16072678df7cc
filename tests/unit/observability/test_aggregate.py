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
    assert totals.upstream == {("r", "s", "ns", "ing"): (3, 1)}


GONE = ["web", "gone", "s2", "ns", "old", "GET", "200"]


def two_routers() -> Totals:
    totals = Totals((1.0,))
    totals.add(
        0, {"requests": [row(1, 0.1, [1, 0]), row(2, 0.1, [2, 0], GONE), row(1, 0.1, [1, 0], [""] * 7)]}
    )
    totals.add(0, {"upstream": [["r", "s", "ns", "ing", 1, 0], ["gone", "s2", "ns", "old", 1, 1]]})
    return totals


def test_a_retired_routers_series_go_after_the_next_scrape_has_shown_them() -> None:
    totals = two_routers()
    totals.scraped(totals.copy())  # someone scrapes
    totals.retire({("r", "s")})  # a configuration without `gone`
    assert len(totals.requests) == 3  # still there: no scrape has shown the last counts yet
    shown = totals.copy()
    totals.scraped(shown)
    assert {k[1] for k in totals.requests} == {"r", ""}  # no router's requests always stay
    assert set(totals.upstream) == {("r", "s", "ns", "ing")}
    assert len(shown.requests) == 3  # the copy the scrape rendered still had them


def test_counts_that_arrive_during_a_scrape_are_shown_by_the_next_one() -> None:
    totals = two_routers()
    totals.scraped(totals.copy())
    totals.retire({("r", "s")})
    shown = totals.copy()
    totals.add(1, {"requests": [row(5, 0.1, [5, 0], GONE)]})  # a worker still on the old version
    totals.scraped(shown)
    assert totals.requests[tuple(GONE)][0] == 7  # not dropped: `shown` had 2, not 7
    totals.scraped(totals.copy())
    assert tuple(GONE) not in totals.requests


def test_a_router_whose_service_changed_is_retired_and_nothing_goes_before_a_configuration() -> None:
    totals = two_routers()
    totals.scraped(totals.copy())
    assert len(totals.requests) == 3  # no configuration yet: nothing is retired
    totals.retire({("r", "s"), ("gone", "s3")})  # same router, another service
    totals.scraped(totals.copy())
    assert tuple(GONE) not in totals.requests


def test_while_nothing_scrapes_a_retired_routers_series_go_at_once() -> None:
    totals = two_routers()
    totals.retire({("r", "s")})
    assert {k[1] for k in totals.requests} == {"r", ""}


def test_a_copy_does_not_see_later_reports() -> None:
    totals = two_routers()
    copy = totals.copy()
    totals.add(0, {"requests": [row(4, 0.1, [4, 0])], "connections": {"web": {"h2": 1}}})
    assert copy.requests[tuple(LABELS)][0] == 1 and totals.requests[tuple(LABELS)][0] == 5
    assert copy.open_connections() == {} and totals.open_connections() == {("web", "h2"): 1}


def test_a_report_with_one_bad_row_adds_nothing() -> None:
    totals = Totals((1.0,))
    with pytest.raises(ValueError, match="expected"):
        totals.add(0, {"requests": [row(1, 0.1, [1, 0]), row(1, 0.1, [1])]})
    assert totals.requests == {}


def test_a_late_report_for_a_retired_router_is_shown_once_more_then_dropped() -> None:
    totals = two_routers()
    totals.scraped(totals.copy())
    totals.retire({("r", "s")})
    totals.scraped(totals.copy())
    assert tuple(GONE) not in totals.requests
    totals.add(1, {"requests": [row(3, 0.1, [3, 0], GONE)]})  # in flight during the reload
    shown = totals.copy()
    assert shown.requests[tuple(GONE)][0] == 3  # the next scrape shows it
    totals.scraped(shown)
    assert tuple(GONE) not in totals.requests
    totals.scraped(totals.copy())  # nothing retired is left: nothing changes
    assert {k[1] for k in totals.requests} == {"r", ""}
