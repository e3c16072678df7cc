"""What a worker counts about its exchanges, and the report it ships to the control plane.

The hot path is `Recorder.exchange`, called once when an exchange is over: one dict lookup keyed by
a small tuple of objects whose hashes are cached or identity-based (entry point, route, method
bytes, status int), then a few in-place additions to a plain list, the histogram bucket found by
`bisect`. Labels are not made per request: `report()` turns the keys into label values, and it
hands over the counts since the previous report (deltas) and starts afresh, so the control plane
only ever adds (observability/aggregate.py) and what it holds survives this process.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from time import perf_counter
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from passerelle.proxy.connection import Exchange
    from passerelle.proxy.dataplane import EntryPoint, Route

# llhttp knows ~35 methods and an HTTP/2 `:method` may be anything: the label takes these, or OTHER.
METHODS = frozenset({b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"CONNECT", b"OPTIONS", b"TRACE", b"PATCH"})
CLIENT_CLOSED = 499  # nginx's code for an exchange the client gave up before a response began
NO_ROUTE = ("", "", "", "")  # router, service, namespace, ingress of a request no router took
COUNT, SUM, BYTES_IN, BYTES_OUT, BUCKETS = 0, 1, 2, 3, 4  # a request cell: these, then the buckets


class ExchangeLog(Protocol):
    """The access log as the recorder sees it (observability/accesslog.py)."""

    def record(
        self,
        ex: Exchange,
        entry: EntryPoint,
        conn: Any,
        protocol: str,
        status: int,
        sent: int,
        duration: float,
    ) -> None: ...
    def close(self) -> None: ...


def method_label(method: bytes) -> str:
    return method.decode("latin-1") if method in METHODS else "OTHER"


def local_status(answer: bytes) -> tuple[int, int]:
    """(status, body length) of a response passerelle wrote itself (`HTTP/1.1 404 ...`)."""
    return int(answer[9:12]), len(answer) - answer.find(b"\r\n\r\n") - 4


class Recorder:
    """A worker's counters (None when metrics are off) and its access log (None when off)."""

    __slots__ = ("_bounds", "_zeros", "requests", "upstream", "log")

    def __init__(self, buckets: Sequence[float], *, counting: bool, log: ExchangeLog | None = None) -> None:
        self._bounds = tuple(buckets)
        self._zeros = [0] * (len(self._bounds) + 1)  # the last bucket is +Inf
        self.requests: dict[tuple[Any, ...], list[Any]] | None = {} if counting else None
        self.upstream: dict[Route, list[int]] = {}  # errors, retries
        self.log = log

    # -- hot path ------------------------------------------------------------------------------
    def exchange(self, ex: Exchange, entry: EntryPoint, conn: Any, protocol: str) -> None:
        duration = perf_counter() - ex.start
        local = ex.local
        if local is None:
            status = ex.status or CLIENT_CLOSED
            sent = ex.sent
        else:
            status, sent = local_status(local)
        requests = self.requests
        if requests is not None:
            key = (entry, ex.route, ex.method, status)
            cell = requests.get(key)
            if cell is None:
                cell = requests[key] = [0, 0.0, 0, 0, *self._zeros]
            cell[0] += 1
            cell[1] += duration
            cell[2] += ex.received
            cell[3] += sent
            cell[4 + bisect_left(self._bounds, duration)] += 1
        if self.log is not None:
            self.log.record(ex, entry, conn, protocol, status, sent, duration)

    # -- cold paths ----------------------------------------------------------------------------
    def rejected(self, entry: EntryPoint, status: int) -> None:
        """A request refused before it was one (malformed, too large, too slow): counted, no router."""
        requests = self.requests
        if requests is not None:
            key = (entry, None, b"", status)
            cell = requests.get(key)
            if cell is None:
                cell = requests[key] = [0, 0.0, 0, 0, *self._zeros]
            cell[0] += 1
            cell[4] += 1

    def connect_failed(self, route: Route | None) -> None:
        if route is not None and self.requests is not None:
            self.upstream.setdefault(route, [0, 0])[0] += 1

    def retried(self, route: Route | None) -> None:
        if route is not None and self.requests is not None:
            self.upstream.setdefault(route, [0, 0])[1] += 1

    def report(self) -> dict[str, Any]:
        """The counts since the last report, as label values and numbers; counting starts afresh."""
        requests, upstream = self.requests or {}, self.upstream
        if self.requests is not None:
            self.requests = {}
        self.upstream = {}
        rows = []
        for (entry, route, method, status), cell in requests.items():
            labels = route.labels if route is not None else NO_ROUTE
            rows.append(
                [entry.options.name, *labels, method_label(method) if method else "", str(status), *cell]
            )
        failures = [[*route.labels, *counts] for route, counts in upstream.items()]
        return {"requests": rows, "upstream": failures}

    def pending(self) -> bool:
        return bool(self.requests or self.upstream)
