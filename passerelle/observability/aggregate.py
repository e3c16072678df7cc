"""The control plane's sums of what every worker reported: pure, no I/O, no clock.

Workers report deltas (observability/recorder.py), so a sum here only grows, whichever worker
the counts came from and whether it is still alive: a worker that dies and is restarted leaves its
reported counts behind, and its successor's are added to them. Gauges (open connections) are the
opposite: each worker's latest value, dropped when it dies, since its connections died with it.
A scrape reads one `Totals` between two reports, so every family in it agrees with the others.

Cells are tuples, replaced whole by `add`, never changed in place: `copy()` is a shallow copy that
a scrape renders in another thread while reports keep arriving on the event loop. Series of a
(router, service) pair that the configuration no longer has are dropped after a scrape has shown
them (`retire`, then `scraped`), as Traefik does, so churning Ingresses do not grow the scrape.
"""

from __future__ import annotations

from collections.abc import Sequence, Set
from dataclasses import dataclass
from operator import add
from typing import Any

from passerelle.observability.recorder import BUCKETS

RequestLabels = tuple[
    str, str, str, str, str, str, str
]  # entrypoint router service namespace ingress method code
UpstreamLabels = tuple[str, str, str, str]  # router service namespace ingress
LABELS = 7
Pair = tuple[str, str]  # router, service: a series lives while the configuration has its pair


@dataclass(frozen=True, slots=True, kw_only=True)
class Histogram:
    """One label set's requests: count, sum of seconds, bytes, and cumulative bucket counts."""

    count: int
    seconds: float
    bytes_in: int
    bytes_out: int
    cumulative: tuple[int, ...]  # one per bound, then +Inf (== count)


class Totals:
    def __init__(self, buckets: Sequence[float]) -> None:
        self.bounds = tuple(buckets)
        self._width = BUCKETS + len(self.bounds) + 1
        self.requests: dict[RequestLabels, tuple[Any, ...]] = {}
        self.upstream: dict[UpstreamLabels, tuple[int, int]] = {}
        self.connections: dict[int, dict[str, dict[str, int]]] = {}  # worker -> entrypoint -> protocol -> n
        self.reports = 0
        self.live: Set[Pair] | None = None  # None: no configuration yet, every series stays
        self.scrapes = 0
        self._retiring = False  # some series may be of a retired pair: `scraped` must look

    def add(self, worker: int, report: dict[str, Any]) -> None:
        """Add one worker report; a row of the wrong shape (another bucket layout) is an error."""
        width = LABELS + self._width
        requests = report.get("requests", ())
        for row in requests:  # checked first: a report that does not fit adds nothing
            if len(row) != width:
                raise ValueError(f"request row of {len(row)} fields, expected {width}")
        for row in requests:
            key: RequestLabels = tuple(row[:LABELS])
            cell = self.requests.get(key)
            values = tuple(row[LABELS:])
            if cell is None:
                self.requests[key] = values
                self._retiring |= self._retired(key[1], key[2])
            else:
                self.requests[key] = tuple(map(add, cell, values))
        for row in report.get("upstream", ()):
            key4: UpstreamLabels = tuple(row[:4])
            if key4 not in self.upstream:
                self._retiring |= self._retired(key4[0], key4[1])
            failed, retried = self.upstream.get(key4, (0, 0))
            self.upstream[key4] = (failed + row[4], retried + row[5])
        if "connections" in report:
            self.connections[worker] = report["connections"]
        self.reports += 1

    def copy(self) -> Totals:
        """These sums as they are now, for a scrape rendered in another thread (cells are shared:
        they are never changed in place)."""
        out = Totals(self.bounds)
        out.requests, out.upstream = dict(self.requests), dict(self.upstream)
        out.connections = dict(self.connections)  # each worker's is replaced whole, per report
        out.reports, out.live, out.scrapes = self.reports, self.live, self.scrapes
        return out

    def retire(self, live: Set[Pair]) -> None:
        """A new configuration with these (router, service) pairs: the series of others go after
        the next scrape (`scraped`); at once while nothing has ever scraped, to bound memory."""
        self.live = live
        self._retiring = True
        if not self.scrapes:
            self._drop(None)

    def scraped(self, shown: Totals) -> None:
        """`shown` (a `copy()`) was rendered: its series of retired pairs go, unless a report has
        added to them since (the sums differ from `shown`'s): those go after the next scrape."""
        self.scrapes += 1
        self._drop(shown)

    def _retired(self, router: str, service: str) -> bool:
        return self.live is not None and bool(router) and (router, service) not in self.live

    def _drop(self, shown: Totals | None) -> None:
        """Drop retired series (those `shown` has as they are now); a scan of every series, made
        only when a configuration or a new series may have retired some (`_retiring`)."""
        live = self.live
        if live is None or not self._retiring:
            return
        left = False
        for key in [k for k in self.requests if k[1] and (k[1], k[2]) not in live]:
            if shown is None or shown.requests.get(key) is self.requests[key]:
                del self.requests[key]
            else:
                left = True
        for key4 in [k for k in self.upstream if (k[0], k[1]) not in live]:
            if shown is None or shown.upstream.get(key4) is self.upstream[key4]:
                del self.upstream[key4]
            else:
                left = True
        self._retiring = left

    def worker_gone(self, worker: int) -> None:
        """Its connections are gone; its counts stay."""
        self.connections.pop(worker, None)

    def histograms(self, keep: Sequence[bool] = (True,) * LABELS) -> dict[tuple[str, ...], Histogram]:
        """Each label set (less the labels `keep` drops, summed over) with its cumulative buckets."""
        cells: dict[tuple[str, ...], list[Any]] = {}
        everything = all(keep)
        for labels, cell in self.requests.items():
            key = labels if everything else tuple(v for v, k in zip(labels, keep, strict=True) if k)
            into = cells.get(key)
            if into is None:
                cells[key] = list(cell)
            else:
                for i, value in enumerate(cell):
                    into[i] += value
        out = {}
        for key, summed in cells.items():
            running, cumulative = 0, []
            for n in summed[BUCKETS:]:
                running += n
                cumulative.append(running)
            out[key] = Histogram(
                count=summed[0],
                seconds=summed[1],
                bytes_in=summed[2],
                bytes_out=summed[3],
                cumulative=tuple(cumulative),
            )
        return out

    def open_connections(self) -> dict[tuple[str, str], int]:
        out: dict[tuple[str, str], int] = {}
        for entries in self.connections.values():
            for entry, protocols in entries.items():
                for protocol, n in protocols.items():
                    out[(entry, protocol)] = out.get((entry, protocol), 0) + n
        return out
