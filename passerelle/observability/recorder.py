"""What a worker counts about its exchanges, and the report it ships to the control plane.

Each entry point of a worker has its Recorder. The hot path is `Recorder.exchange`, called once
when an exchange is over: chained dict subscripts (route, then method bytes, then status int:
keys whose hashes are identity-based or cached, ~190 instructions each under callgrind, where a
tuple key costs ~750 to build, hash and compare; GET, most requests, skips the method's level,
whose bytes are a fresh object each time and hashed anew) lead to the exchange's `Cell`, which
adds it up: count, seconds, bytes, and its histogram bucket, found with one comparison for the
fast requests (under the first bound) and a bisection for the others. Nothing is kept per request
(a duration list grew by one float per request until the report), and compiled (passerelle/
compiled.py) all of it is C arithmetic. `report()` turns the cells' keys into label values and
hands over the counts since the previous report (deltas), starting afresh, so the control plane
only ever adds (observability/aggregate.py) and what it holds survives this process. The
measurements are in docs/observability.md and benchmarks/README.md.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence
from http import HTTPStatus
from time import perf_counter
from typing import TYPE_CHECKING, Any, Final, Protocol

if TYPE_CHECKING:
    from passerelle.proxy.connection import Exchange
    from passerelle.proxy.dataplane import EntryPoint, Route
    from passerelle.proxy.dispatch import TlsPeer

# What exchanges are timed with (Exchange.start, and the end here). Final: compiled, a C global
# rather than a module-dictionary lookup on every call (~140 instructions each).
CLOCK: Final = perf_counter
# llhttp knows ~35 methods and an HTTP/2 `:method` may be anything: the label takes these, or OTHER.
METHODS = frozenset({b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"CONNECT", b"OPTIONS", b"TRACE", b"PATCH"})
CLIENT_CLOSED = 499  # nginx's code for an exchange the client gave up before a response began
STATUS_CODES = frozenset(s.value for s in HTTPStatus)
NO_ROUTE = ("", "", "", "")  # router, service, namespace, ingress of a request no router took
# A report's request row: labels, then these, then the bucket counts (the last one +Inf, not cumulative).
COUNT, SUM, BYTES_IN, BYTES_OUT, BUCKETS = 0, 1, 2, 3, 4


class Connection(Protocol):
    """A client connection as the recorder sees it (proxy/connection.py, proxy/h2.py)."""

    entry: EntryPoint
    peer: TlsPeer | None
    client: Any  # the peername
    protocol: str  # of its exchanges: HTTP/1.1 (HTTP/1.0 when Exchange.http11 is False) or HTTP/2.0


class ExchangeLog(Protocol):
    """The access log as the recorder sees it (observability/accesslog.py)."""

    def record(self, ex: Exchange, conn: Connection, status: int, sent: int, duration: float) -> None: ...
    def reopen(self) -> None: ...
    def close(self) -> None: ...


def method_label(method: bytes) -> str:
    return method.decode("latin-1") if method in METHODS else "OTHER"


def status_label(status: int) -> str:
    """The code as Traefik labels it, but only codes HTTP defines: an upstream chooses the
    status, and each made-up code would be a series forever. Others are their class ("5xx")."""
    if not status:
        return str(CLIENT_CLOSED)
    return str(status) if status in STATUS_CODES or status == CLIENT_CLOSED else f"{status // 100}xx"


def local_status(answer: bytes) -> tuple[int, int]:
    """(status, body length) of a response passerelle wrote itself (`HTTP/1.1 404 ...`)."""
    return int(answer[9:12]), len(answer) - answer.find(b"\r\n\r\n") - 4


def outcome(ex: Exchange) -> tuple[int, int]:
    """(status, response body bytes) of an exchange that is over; status 0 if no response began."""
    if ex.local is not None:
        return local_status(ex.local)
    try:
        return ex.status, ex.sent
    except AttributeError:  # no response began: the client gave up first (CLIENT_CLOSED)
        return 0, 0


class Cell:
    """The exchanges of one (route, method, status) since the last report, added up.

    `fast` counts those within the first bucket bound (nearly all: one comparison each); `slow`
    has one count per further bound, then +Inf, for the others.
    """

    __slots__ = ("bounds", "first", "count", "seconds", "sent", "received", "fast", "slow")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.first = bounds[0] if bounds else float("inf")
        self.count = 0
        self.seconds = 0.0
        self.sent = 0  # response body bytes
        self.received = 0  # request body bytes
        self.fast = 0
        self.slow = [0] * len(bounds)  # buckets 1.. and +Inf: len(bounds) of them

    def add(self, duration: float, sent: int, received: int) -> None:
        self.count += 1
        self.seconds += duration
        self.sent += sent
        self.received += received
        if duration <= self.first:
            self.fast += 1
        else:
            self.slow[bisect_left(self.bounds, duration) - 1] += 1

    def buckets(self) -> list[int]:
        """One count per bound (not cumulative), then +Inf: a report row's last fields (no bounds:
        `first` is +Inf, so `fast` is every count and `slow` empty)."""
        return [self.fast, *self.slow]


class Recorder:
    """A worker's counters: what `exchange` adds up for every exchange, until `report` takes them.

    This class counts only (the default: metrics on, access log off), with nothing on its way
    that it does not need; `LoggingRecorder` adds the access log.
    """

    __slots__ = ("entry", "_bounds", "counting", "requests", "gets", "upstream", "log")

    def __init__(self, entry: str, buckets: Sequence[float], *, counting: bool = True) -> None:
        self.entry = entry  # the entry point's name
        self._bounds = tuple(buckets)
        self.counting = counting
        self.requests: dict[Route | None, dict[bytes, dict[int, Cell]]] = {}
        self.gets: dict[Route | None, dict[int, Cell]] = {}
        self.upstream: dict[Route, list[int]] = {}  # errors, retries
        self.log: ExchangeLog | None = None

    # -- hot path ------------------------------------------------------------------------------
    def exchange(self, ex: Exchange, conn: Connection) -> None:
        duration = CLOCK() - ex.start
        if ex.local is None:  # outcome(), inlined: a call costs more than the rest of this branch
            try:  # free in Python 3.11 unless raised
                status = ex.status
                sent = ex.sent
            except AttributeError:  # no response began: the client gave up first (CLIENT_CLOSED)
                status = sent = 0
        else:
            status, sent = local_status(ex.local)
        try:  # subscripts, not .get(): cheaper, and the keys are nearly always there
            method = ex.method
            cell = (
                self.gets[ex.route][status] if method == b"GET" else self.requests[ex.route][method][status]
            )
        except KeyError:
            cell = self._cell(ex, status)
        cell.add(duration, sent, ex.received)

    def _cell(self, ex: Exchange, status: int) -> Cell:
        if ex.method == b"GET":
            by_status = self.gets.setdefault(ex.route, {})
        else:
            # A client chooses the method (HTTP/2 barely restricts it): one cell for all unknown
            # ones, or every new spelling would be a new table entry until the next report.
            method = ex.method if ex.method in METHODS else b"OTHER"
            by_status = self.requests.setdefault(ex.route, {}).setdefault(method, {})
        return self._cell_in(by_status, status)

    def _cell_in(self, by_status: dict[int, Cell], status: int) -> Cell:
        cell = by_status.get(status)
        if cell is None:
            cell = by_status[status] = Cell(self._bounds)
        return cell

    def count(self, ex: Exchange, conn: Connection, status: int, sent: int, duration: float) -> None:
        """What `exchange` does, for LoggingRecorder."""
        self._cell(ex, status).add(duration, sent, ex.received)

    # -- cold paths ----------------------------------------------------------------------------
    def rejected(self, status: int) -> None:
        """A request refused before it was one (malformed, too large, too slow): counted, no router."""
        if self.counting:
            self._cell_in(self.requests.setdefault(None, {}).setdefault(b"", {}), status).add(0.0, 0, 0)

    def connect_failed(self, route: Route | None) -> None:
        if route is not None and self.counting:
            self.upstream.setdefault(route, [0, 0])[0] += 1

    def retried(self, route: Route | None) -> None:
        if route is not None and self.counting:
            self.upstream.setdefault(route, [0, 0])[1] += 1

    def report(self) -> dict[str, Any]:
        """The counts since the last report, as label values and numbers; counting starts afresh.

        A request row: entrypoint, router, service, namespace, ingress, method, code, then count,
        seconds, request bytes, response bytes, and one count per bucket (not cumulative; +Inf last).
        """
        requests, upstream = self.requests, self.upstream
        for route, by_status in self.gets.items():
            requests.setdefault(route, {})[b"GET"] = by_status
        self.requests, self.gets, self.upstream = {}, {}, {}
        rows = []
        for route, method, status, cell in _cells(requests):
            labels = route.labels if route is not None else NO_ROUTE
            rows.append(
                [
                    self.entry,
                    *labels,
                    method_label(method) if method else "",
                    status_label(status),
                    cell.count,
                    cell.seconds,
                    cell.received,
                    cell.sent,
                    *cell.buckets(),
                ]
            )
        failures = [[*route.labels, *counts] for route, counts in upstream.items()]
        return {"requests": rows, "upstream": failures}


def _cells(
    requests: dict[Route | None, dict[bytes, dict[int, Cell]]],
) -> Iterator[tuple[Route | None, bytes, int, Cell]]:
    for route, by_method in requests.items():
        for method, by_status in by_method.items():
            for status, cell in by_status.items():
                yield route, method, status, cell


class LoggingRecorder(Recorder):
    """A Recorder that also writes each exchange to the access log (and counts, if `counting`)."""

    __slots__ = ()

    def __init__(self, entry: str, buckets: Sequence[float], *, counting: bool, log: ExchangeLog) -> None:
        super().__init__(entry, buckets, counting=counting)
        self.log = log

    def exchange(self, ex: Exchange, conn: Connection) -> None:
        duration = CLOCK() - ex.start
        status, sent = outcome(ex)
        if self.counting:
            self.count(ex, conn, status, sent, duration)
        assert self.log is not None
        self.log.record(ex, conn, status or CLIENT_CLOSED, sent, duration)
