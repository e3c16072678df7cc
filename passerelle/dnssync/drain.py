"""Drain: leave DNS, wait for resolvers to forget, refuse health checks, then stop.

The order is the point (nobody sequences it today, see docs/dns-sync.md): 1. this node's
addresses leave every managed name (DnsSync.drain_node, retried until `timeout`); 2. wait
`dns_wait` (the records' TTL: caches may still send clients here until it runs out; not with
fixed `targets`, where DNS never named this node); 3. `/ping`
answers 503, so load balancers and the kubelet stop sending; 4. after `accept_grace`, `stop()`:
listeners close and in-flight requests get the usual `graceTimeout`. Without DNS sync, steps 1
and 2 are skipped. `request()` starts a drain (from `passerelle drain` or SIGTERM); a second
request changes nothing.

Step 1's result (a DrainResult) is in `status()`: `removed`, `not-in-dns` (fixed targets), `kept`
(the last eligible node keeps its addresses: a warning), or a failure, `unknown-node` (no selected
Node has this process's node name) or `timeout`. A failure does not stop the drain (the node is
going away regardless) but is logged as an error and makes `passerelle drain` exit 1.

With the Kubernetes provider, step 1 starts with `mark` (kube/draining.py): this replica annotates
its own Pod `passerelle.io/draining: "true"`, leader or not, so that the Lease holder drops its
node (a standby cannot write DNS itself). Its outcome is `annotation` in `status()`: "written",
or "failed" with `annotationDetail` (logged as an error; `passerelle drain` exits 1), "" without.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Any

from passerelle.dnssync.controller import DnsSync, DrainReport, DrainResult

log = logging.getLogger("passerelle.drain")


class Phase(StrEnum):
    SERVING = "serving"
    LEAVING_DNS = "leaving-dns"
    WAITING_TTL = "waiting-ttl"
    REFUSING = "refusing"  # /ping is 503, requests still served
    STOPPING = "stopping"


class Drain:
    def __init__(
        self,
        *,
        dns: DnsSync | None,
        dns_wait: float,
        timeout: float,
        accept_grace: float,
        stop: Callable[[], None],
        mark: Callable[[], Awaitable[str]] | None = None,
    ) -> None:
        self._dns = dns
        self._dns_wait = dns_wait
        self._timeout = timeout
        self._accept_grace = accept_grace
        self._stop = stop
        self._requested = asyncio.Event()
        self.phase = Phase.SERVING
        self._since: dict[str, float] = {}
        self._dns_report: DrainReport | None = None
        self._mark = mark
        self._mark_error: str | None = None  # None: not attempted

    @property
    def refusing(self) -> bool:
        return self.phase in (Phase.REFUSING, Phase.STOPPING)

    def request(self) -> None:
        if not self._requested.is_set():
            log.info("drain requested")
        self._requested.set()

    def status(self) -> dict[str, Any]:
        """`dns`: "" until DNS is done, then a DrainResult; `dnsFailed` for unknown-node/timeout."""
        report = self._dns_report
        return {
            "phase": str(self.phase),
            "since": self._since,
            "dns": str(report.result) if report else "",
            "dnsDetail": report.detail if report else "",
            "dnsFailed": bool(report and report.failed),
            "annotation": "" if self._mark_error is None else "failed" if self._mark_error else "written",
            "annotationDetail": self._mark_error or "",
        }

    async def run(self) -> None:
        await self._requested.wait()
        if self._dns is not None:
            self._enter(Phase.LEAVING_DNS)
            if self._mark is not None:
                self._mark_error = await self._mark()
                if self._mark_error:
                    log.error("drain: %s; going on", self._mark_error)
            report = await self._dns.drain_node(self._timeout)
            self._dns_report = report
            if report.failed:
                log.error("drain: DNS %s: %s; going on", report.result, report.detail)
            elif report.result is DrainResult.KEPT:
                log.warning("drain: DNS %s: %s; going on", report.result, report.detail)
            else:
                log.info("drain: DNS %s: %s", report.result, report.detail)
            if report.result is not DrainResult.NOT_IN_DNS:  # fixed VIPs: nothing for caches to forget
                log.info("drain: waiting %gs (TTL) before /ping answers 503", self._dns_wait)
                self._enter(Phase.WAITING_TTL)
                await asyncio.sleep(self._dns_wait)
        self._enter(Phase.REFUSING)
        log.info("drain: /ping answers 503; closing listeners in %gs", self._accept_grace)
        await asyncio.sleep(self._accept_grace)
        self._enter(Phase.STOPPING)
        self._stop()

    def _enter(self, phase: Phase) -> None:
        self.phase = phase
        self._since[str(phase)] = time.time()
