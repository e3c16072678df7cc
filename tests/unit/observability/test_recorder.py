"""The worker's counters: one cell per route, method and status; reports are deltas with labels."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from passerelle.http.errors import NOT_FOUND
from passerelle.observability.recorder import (
    Cell,
    Recorder,
    local_status,
    method_label,
    outcome,
    status_label,
)
from passerelle.proxy.connection import Exchange
from passerelle.proxy.dataplane import Route, Upstream

BOUNDS = (0.005, 0.1, 1.0)
ROUTE = Route("team-shop-shop-test", Upstream("team/shop:http"), source="Ingress team/shop")


def exchange(
    method: bytes = b"GET", route: Route | None = ROUTE, status: int | None = 200, sent: int = 10
) -> Exchange:
    ex = Exchange(method, b"", route, True, True, b"shop.test", b"/")
    if status is not None:
        ex.status, ex.sent = status, sent
    return ex


CONN = SimpleNamespace(entry=None, peer=None, client=("127.0.0.1", 1), protocol="HTTP/1.1")


def test_route_labels_name_the_ingress() -> None:
    assert ROUTE.labels == ("team-shop-shop-test", "team/shop:http", "team", "shop")
    assert Route("r", Upstream("s")).labels == ("r", "s", "", "")


@pytest.mark.parametrize(
    ("durations", "expected"),
    [
        ([], [0, 0, 0, 0]),
        ([0.001, 0.005, 0.004], [3, 0, 0, 0]),  # <= the bound counts in its bucket
        ([0.0051, 0.1, 0.5, 1.0, 7.0], [0, 2, 2, 1]),
        ([2.0, 0.0], [1, 0, 0, 1]),
    ],
)
def test_a_cell_counts_each_duration_in_its_bucket(durations: list[float], expected: list[int]) -> None:
    cell = Cell(BOUNDS)
    for duration in durations:
        cell.add(duration, 10, 1)
    assert cell.buckets() == expected
    assert (cell.count, cell.seconds, cell.sent, cell.received) == (
        len(durations),
        pytest.approx(sum(durations)),
        10 * len(durations),
        len(durations),
    )


def test_without_bounds_a_cell_has_only_the_inf_bucket() -> None:
    cell = Cell(())
    cell.add(0.5, 0, 0)
    cell.add(50.0, 0, 0)
    assert cell.buckets() == [2]


def test_report_gives_deltas_with_labels_and_starts_afresh() -> None:
    recorder = Recorder("web", BOUNDS)
    for duration_status in (200, 200, 404):
        ex = exchange(status=duration_status)
        recorder.exchange(ex, CONN)  # type: ignore[arg-type]
    posted = exchange(method=b"POST")
    posted.received = 1000
    recorder.exchange(posted, CONN)  # type: ignore[arg-type]
    recorder.exchange(exchange(method=b"BREW"), CONN)  # type: ignore[arg-type]
    recorder.exchange(exchange(route=None, status=None), CONN)  # type: ignore[arg-type]  # cut short
    recorder.rejected(431)
    recorder.connect_failed(ROUTE)
    recorder.connect_failed(ROUTE)
    recorder.retried(ROUTE)
    report = recorder.report()
    rows = {tuple(row[:7]): row[7:] for row in report["requests"]}
    shop = ("web", "team-shop-shop-test", "team/shop:http", "team", "shop")
    assert rows[(*shop, "GET", "200")][:4:2] == [2, 0]  # count, request bytes
    assert rows[(*shop, "GET", "200")][3] == 20  # response bytes
    assert rows[(*shop, "GET", "404")][0] == 1
    assert rows[(*shop, "POST", "200")][2] == 1000
    assert rows[(*shop, "OTHER", "200")][0] == 1
    assert rows[("web", "", "", "", "", "GET", "499")][0] == 1
    assert rows[("web", "", "", "", "", "", "431")][0] == 1
    for values in rows.values():
        assert sum(values[4:]) == values[0]  # buckets add up to the count
    assert report["upstream"] == [[*ROUTE.labels, 2, 1]]
    assert recorder.report() == {"requests": [], "upstream": []}


def test_metrics_off_counts_nothing_but_keeps_the_outcome() -> None:
    recorder = Recorder("web", BOUNDS, counting=False)
    recorder.rejected(400)
    recorder.connect_failed(ROUTE)
    assert recorder.report() == {"requests": [], "upstream": []}
    local = exchange(status=None)
    local.local = NOT_FOUND
    assert outcome(local) == (404, len(b"404 page not found\n"))
    assert outcome(exchange(status=None)) == (0, 0)


def test_local_status_and_method_labels() -> None:
    assert local_status(b"HTTP/1.1 301 Moved Permanently\r\nLocation: /\r\nContent-Length: 0\r\n\r\n") == (
        301,
        0,
    )
    assert [method_label(m) for m in (b"GET", b"PATCH", b"PROPFIND")] == ["GET", "PATCH", "OTHER"]


def test_methods_a_client_makes_up_share_one_cell() -> None:
    recorder = Recorder("web", BOUNDS)
    for i in range(100):
        recorder.exchange(exchange(method=b"X%d" % i), CONN)  # type: ignore[arg-type]
    assert list(recorder.requests[ROUTE]) == [b"OTHER"]
    rows = recorder.report()["requests"]
    assert [(row[5], row[6], row[7]) for row in rows] == [("OTHER", "200", 100)]


def test_status_labels_are_codes_http_defines_else_their_class() -> None:
    assert [status_label(s) for s in (200, 404, 499, 0, 599, 299, 103)] == [
        "200",
        "404",
        "499",
        "499",
        "5xx",
        "2xx",
        "103",
    ]
