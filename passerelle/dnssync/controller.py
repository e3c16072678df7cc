"""DnsSync: the loop that reads the zones, plans, and (as leader) applies, on change and on a timer.

Inputs arrive by two calls that only record and wake: `observe(snapshot)` from the provider (Nodes
and Pods change without changing the routing configuration) and `served(version)` from the
watcher (the hosts being served). Nothing is planned before both have arrived once, so a process
that is starting never mistakes "not loaded yet" for "no Ingress". A failed read or write is retried
with exponential backoff (1 s doubling up to the interval); the failure is a Problem and shows in
`health()` (what metrics export) until a reconcile succeeds. One reconcile runs at a time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType

from passerelle.control.leadership import Leadership
from passerelle.control.watcher import Version
from passerelle.dnssync.desired import PlanOptions, node_verdicts, settling
from passerelle.dnssync.plan import Plan, plan
from passerelle.dnssync.provider import Conflict, DnsProvider, ProviderError
from passerelle.dnssync.records import ADDRESS_RRTYPES, Change, RRset, ZoneState, owner_of, ownership_name
from passerelle.kube.snapshot import ClusterSnapshot
from passerelle.model import DynamicConfig, Problem

log = logging.getLogger("passerelle.dnssync")


@dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    first_retry: float = 1.0  # seconds; doubles on each consecutive failure, up to the interval
    coalesce: float = 0.1  # after a wake-up, let a burst of snapshots settle

    def retry(self, attempt: int, limit: float) -> float:
        """The pause before retry `attempt` (1, 2, ...)."""
        return min(limit, self.first_retry * 2.0 ** min(attempt - 1, 30))


@dataclass(frozen=True, slots=True, kw_only=True)
class Health:
    """DNS sync's state for the API and metrics (counters only grow)."""

    leader: bool = False
    healthy: bool = True  # the last reconcile succeeded (or none was due yet)
    last_success: float | None = None  # time.time() of the last successful reconcile
    consecutive_failures: int = 0
    failures_total: int = 0
    reconciles_total: int = 0
    changes_total: int = 0  # record sets created, updated or deleted
    last_error: str = ""
    names: int = 0  # managed names in the last plan
    addresses: tuple[str, ...] = ()  # published addresses in the last plan
    errors_by_reason: dict[str, int] = field(default_factory=dict)  # unreachable, refused, conflict, ...
    withheld: int = 0  # names the mass-deletion guard held back in the last plan
    guard_trips_total: int = 0  # reconciles whose deletions the guard withheld


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    plan: Plan | None = None  # None: not ready (no snapshot or configuration yet)
    applied: int = 0  # changes applied (0 when not the leader), those of a failed apply included
    messages: int = 0  # messages/calls the successful applies took
    errors: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()  # each error's ProviderError.reason ("internal" for a bug)
    conflict: bool = False  # the zone moved under the plan: re-read soon
    states: Mapping[str, ZoneState] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def ok(self) -> bool:
        return not self.errors


class DrainResult(StrEnum):
    REMOVED = "removed"  # this node's addresses are out of every owned name (or never were in)
    NOT_IN_DNS = "not-in-dns"  # fixed targets: DNS never named this node
    KEPT = "kept"  # the last eligible node: its addresses stay (not removed, by design)
    UNKNOWN_NODE = "unknown-node"  # failure: no selected Node has this process's node name
    TIMEOUT = "timeout"  # failure: not confirmed before the drain's timeout


@dataclass(frozen=True, slots=True, kw_only=True)
class DrainReport:
    result: DrainResult
    detail: str

    @property
    def failed(self) -> bool:
        return self.result in (DrainResult.UNKNOWN_NODE, DrainResult.TIMEOUT)


class DnsSync:
    def __init__(
        self,
        *,
        options: PlanOptions,
        provider: DnsProvider,
        leadership: Leadership,
        interval: float,
        node_name: str = "",
        settle: float = 0.0,
        backoff: Backoff = Backoff(),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.options = options
        self.provider = provider
        self.leadership = leadership
        self.interval = interval
        self.node_name = node_name
        self.settle = settle
        self.backoff = backoff
        self._clock = clock
        self._eligible_since: dict[str, float] = {}  # node -> when it last became eligible
        self._settled_at: float | None = None  # clock() when the next held node's settle ends
        self._snapshot: ClusterSnapshot | None = None
        self._config: DynamicConfig | None = None
        self._draining: frozenset[str] = frozenset()
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._health = Health()
        self._problems: tuple[Problem, ...] = ()
        self._last_error = ""

    # -- inputs ------------------------------------------------------------------------------
    def observe(self, snapshot: ClusterSnapshot) -> None:
        self._snapshot = snapshot
        self._wake.set()

    def served(self, version: Version) -> None:
        """A watcher listener: the served configuration changed."""
        self.serve(version.config)

    def serve(self, config: DynamicConfig) -> None:
        self._config = config
        self._wake.set()

    def wake(self) -> None:
        """Reconcile now (a Lease implementation calls this when leadership is gained)."""
        self._wake.set()

    # -- state -------------------------------------------------------------------------------
    def health(self) -> Health:
        return self._health

    def problems(self) -> tuple[Problem, ...]:
        return self._problems

    @property
    def draining(self) -> frozenset[str]:
        return self._draining

    # -- work --------------------------------------------------------------------------------
    async def run(self) -> None:
        while True:
            outcome = await self.reconcile()
            failures = self._health.consecutive_failures
            if outcome.conflict and failures <= 1:
                delay = self.backoff.coalesce  # re-read at once: the first conflict is someone else's write
            elif failures:
                delay = self.backoff.retry(failures, self.interval)
            else:
                delay = self.interval
                if self._settled_at is not None:  # a held node joins when its settle time ends
                    delay = max(self.backoff.coalesce, min(delay, self._settled_at - self._clock()))
            if failures:
                await asyncio.sleep(delay)  # not cut short by wake-ups: back off from a sick server
            else:
                # asyncio.timeout, not wait_for: on Python 3.11, wait_for swallows a cancellation
                # that comes as the event is set (a snapshot arriving as SIGTERM does), and the
                # stop then waited for the next interval (gh-86296).
                try:
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
                except TimeoutError:
                    pass
                else:
                    await asyncio.sleep(self.backoff.coalesce)
            self._wake.clear()

    async def reconcile(self, *, write: bool = True, force: bool = False) -> Outcome:
        """Read every zone, plan, and apply when `write` and leader. Never raises ProviderError.
        `force`: this once, deletions past maxDeletePercent go ahead (`passerelle dnssync --force`)."""
        async with self._lock:
            try:
                outcome = await self._reconcile(write, force)
            except Exception as e:  # a bug must not stop DNS sync, nor the router with it
                log.exception("dns: reconcile failed")
                outcome = Outcome(errors=(f"internal error: {type(e).__name__}: {e}",), reasons=("internal",))
        self._record(outcome)
        return outcome

    async def _reconcile(self, write: bool, force: bool) -> Outcome:
        snapshot, config = self._snapshot, self._config
        if snapshot is None or config is None:
            return Outcome()
        leader = self.leadership.is_leader()
        if write and not leader:
            return Outcome()  # a standby replica does not even read: the leader keeps DNS
        states: dict[str, ZoneState] = {}
        errors: list[str] = []
        reasons: list[str] = []
        for zone in self.options.zones:
            try:
                states[zone] = await self.provider.read(zone)
            except ProviderError as e:
                errors.append(str(e))
                reasons.append(e.reason)
        held = self._hold(snapshot, states)
        options = replace(self.options, force=True) if force else self.options
        result = await asyncio.to_thread(  # pure, on immutable inputs; thousands of names take a while
            plan, config, snapshot, states, options, draining=self._draining, held=held
        )
        applied, messages, conflict = 0, 0, False
        if write and result.changes and self.leadership.is_leader():
            for zone in self.options.zones:
                changes = [c for c in result.changes if c.zone == zone]
                if not changes:
                    continue
                done: Sequence[Change] = changes
                try:
                    messages += await self.provider.apply(zone, changes)
                except ProviderError as e:
                    done = e.applied
                    conflict = conflict or isinstance(e, Conflict)
                    errors.append(
                        f"{e} ({len(e.applied)} of {len(changes)} changes were applied before)"
                        if e.applied
                        else str(e)
                    )
                    reasons.append(e.reason)
                applied += len(done)
                for change in done:
                    log.info("dns: %s", change)
        return Outcome(
            plan=result,
            applied=applied,
            messages=messages,
            errors=tuple(errors),
            reasons=tuple(reasons),
            conflict=conflict,
            states=states,
        )

    def _record(self, outcome: Outcome) -> None:
        h = replace(self._health, leader=self.leadership.is_leader())
        if outcome.plan is None and outcome.ok:
            self._health = h  # not ready, or a standby: nothing was attempted
            return
        problems = list(outcome.plan.problems) if outcome.plan else []
        for problem in problems:
            if problem not in self._problems:  # each logged once, as the watcher does
                log.warning("%s", problem)
        h = replace(
            h, reconciles_total=h.reconciles_total + 1, changes_total=h.changes_total + outcome.applied
        )
        if outcome.plan is not None:
            withheld = outcome.plan.withheld
            h = replace(
                h,
                names=len(outcome.plan.wanted),
                addresses=outcome.plan.addresses,
                withheld=withheld,
                guard_trips_total=h.guard_trips_total + (1 if withheld else 0),
            )
        if outcome.reasons:
            counts = dict(h.errors_by_reason)
            for reason in outcome.reasons:
                counts[reason] = counts.get(reason, 0) + 1
            h = replace(h, errors_by_reason=counts)
        if outcome.ok:
            if self._last_error:
                log.info("dns: zones reachable again, in sync")
            self._last_error = ""
            h = replace(h, healthy=True, last_success=self._clock(), consecutive_failures=0, last_error="")
        else:
            error = "; ".join(outcome.errors)
            if error != self._last_error:
                log.warning("dns: %s; nothing else changed, retrying", error)
            self._last_error = error
            failures = h.consecutive_failures + 1
            h = replace(
                h,
                healthy=False,
                consecutive_failures=failures,
                failures_total=h.failures_total + 1,
                last_error=error,
            )
            problems.append(
                Problem(
                    ref=self.options.ref, message=f"DNS not in sync ({failures} attempts, retrying): {error}"
                )
            )
        self._health = h
        self._problems = tuple(problems)

    def _hold(self, snapshot: ClusterSnapshot, states: Mapping[str, ZoneState]) -> frozenset[str]:
        """Nodes eligible again too recently (a flapping node): out of DNS until they settle."""
        now = self._clock()
        verdicts = node_verdicts(snapshot, self.options, self._draining)
        eligible = {v.name for v in verdicts if not v.excluded}
        for name in list(self._eligible_since):
            if name not in eligible:
                del self._eligible_since[name]  # leaving is immediate, and restarts the clock
        for name in eligible:
            self._eligible_since.setdefault(name, now)
        if self.options.targets or self.settle <= 0:
            self._settled_at = None
            return frozenset()
        published = frozenset(
            a for state in states.values() for a in _owned_addresses(state, self.options.owner)
        )
        held = settling(verdicts, self._eligible_since, now, self.settle, published)
        self._settled_at = min(held.values(), default=None)
        return frozenset(held)

    async def drain_node(self, timeout: float) -> DrainReport:
        """Take this node out of DNS, retrying with backoff until `timeout`. REMOVED once no owned
        name holds its addresses (or none did); KEPT when it is the last eligible node (its
        addresses stay: see plan.py); UNKNOWN_NODE when the selector picks no node of this name
        (a wrong nodeName: the host name of a pod is not its node's); TIMEOUT when it ran out.
        `timeout` bounds the whole step, an attempt in flight included (a server that accepts and
        never answers): the pod's grace period is sized on it (kube/termination.py)."""
        self._draining = self._draining | {self.node_name}
        if self.options.targets:
            return DrainReport(result=DrainResult.NOT_IN_DNS, detail="fixed targets: this node is not in DNS")
        errors: list[str] = []  # the last attempt's, for a timeout's detail
        try:
            async with asyncio.timeout(timeout):
                return await self._leave(errors)
        except TimeoutError:
            why = "; ".join(errors) or "its addresses are still published"
            return DrainReport(
                result=DrainResult.TIMEOUT, detail=f"not confirmed out of DNS within {timeout:g}s: {why}"
            )

    async def _leave(self, errors: list[str]) -> DrainReport:
        attempt = 0
        while True:
            outcome = await self.reconcile(write=True)
            if outcome.plan is None and not self.leadership.is_leader():
                outcome = await self.reconcile(write=False)  # a standby: watch the leader remove us
            errors[:] = outcome.errors
            if outcome.ok and outcome.applied:
                continue  # read back at once: the states of this outcome are from before the write
            if outcome.plan is not None and not any(v.name == self.node_name for v in outcome.plan.nodes):
                return DrainReport(
                    result=DrainResult.UNKNOWN_NODE,
                    detail=(
                        f"no Node {self.node_name!r} matches nodeSelector {self.options.node_selector}: "
                        f"set dnsSync.nodeName, or NODE_NAME from the pod's spec.nodeName (the host "
                        f"name of a pod is the pod's name, not its node's)"
                    ),
                )
            if outcome.ok and outcome.plan is not None:
                addresses = next(v.addresses for v in outcome.plan.nodes if v.name == self.node_name)
                if not _published(outcome.states, self.options.owner, addresses):
                    return DrainReport(
                        result=DrainResult.REMOVED, detail=f"node {self.node_name} is out of DNS"
                    )
                if self.leadership.is_leader() and set(addresses) >= set(outcome.plan.addresses):
                    log.warning(
                        "dns: %s is the last eligible node: its addresses stay in DNS", self.node_name
                    )
                    return DrainReport(
                        result=DrainResult.KEPT,
                        detail=f"node {self.node_name} is the last eligible node: its addresses stay in DNS",
                    )
            attempt += 1
            await asyncio.sleep(self.backoff.retry(attempt, self.backoff.first_retry * 32))


def _owned(state: ZoneState, owner: str) -> list[RRset]:
    """The A/AAAA sets of the names `owner` owns."""
    owned = {r.name for r in state.rrsets if r.type == "TXT" and owner in map(owner_of, r.values)}
    return [r for r in state.rrsets if r.type in ADDRESS_RRTYPES and ownership_name(r.name) in owned]


def _owned_addresses(state: ZoneState, owner: str) -> set[str]:
    return {a for r in _owned(state, owner) for a in r.values}


def _published(states: Mapping[str, ZoneState], owner: str, addresses: tuple[str, ...]) -> list[str]:
    """The owned names that still hold any of `addresses`."""
    wanted = set(addresses)
    return [r.name for state in states.values() for r in _owned(state, owner) if wanted & set(r.values)]
