"""The control plane's sums of what every worker reported: pure, no I/O, no clock.

Workers report deltas (observability/recorder.py), so a sum here only grows, whichever worker
the counts came from and whether it is still alive: a worker that dies and is restarted leaves its
reported counts behind, and its successor's are added to them. Gauges (open connections) are the
opposite: each worker's latest value, dropped when it dies, since its connections died with it.
A scrape reads one `Totals` between two reports, so every family in it agrees with the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from passerelle.observability.recorder import BUCKETS

RequestLabels = tuple[
    str, str, str, str, str, str, str
]  # entrypoint router service namespace ingress method code
UpstreamLabels = tuple[str, str, str, str]  # router service namespace ingress
LABELS = 7


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
        self.requests: dict[RequestLabels, list[Any]] = {}
        self.upstream: dict[UpstreamLabels, list[int]] = {}
        self.connections: dict[int, dict[str, dict[str, int]]] = {}  # worker -> entrypoint -> protocol -> n
        self.reports = 0

    def add(self, worker: int, report: dict[str, Any]) -> None:
        """Add one worker report; a row of the wrong shape (another bucket layout) is an error."""
        width = LABELS + self._width
        for row in report.get("requests", ()):
            if len(row) != width:
                raise ValueError(f"request row of {len(row)} fields, expected {width}")
            key: RequestLabels = tuple(row[:LABELS])
            cell = self.requests.get(key)
            values = row[LABELS:]
            if cell is None:
                self.requests[key] = list(values)
            else:
                for i, value in enumerate(values):
                    cell[i] += value
        for row in report.get("upstream", ()):
            key4: UpstreamLabels = tuple(row[:4])
            counts = self.upstream.setdefault(key4, [0, 0])
            counts[0] += row[4]
            counts[1] += row[5]
        if "connections" in report:
            self.connections[worker] = report["connections"]
        self.reports += 1

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
        for key, cell in cells.items():
            running, cumulative = 0, []
            for n in cell[BUCKETS:]:
                running += n
                cumulative.append(running)
            out[key] = Histogram(
                count=cell[0],
                seconds=cell[1],
                bytes_in=cell[2],
                bytes_out=cell[3],
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
