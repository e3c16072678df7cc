"""What `passerelle dnssync` asks a running router under the Kubernetes provider (docs/dns-sync.md).

In a cluster the zones are written by the Lease holder, not by a command: so `--force` and
`--dry-run` are POST actions on the router's loopback API (who may call them: api/server.py),
run in the pod with `kubectl exec`. `force` lets one reconcile through the mass-deletion guard
(maxDeletePercent) and only the leader takes it: any other replica answers 409 naming the
holder, so the operator knows which pod to exec into. `dry_run` reads the zones and plans
without writing, on any replica. Both answer JSON: the plan's lines (plan.describe), the
changes applied, the errors.
"""

from __future__ import annotations

from typing import Any

from passerelle.dnssync.controller import DnsSync, Outcome
from passerelle.dnssync.plan import describe

Answered = tuple[int, dict[str, Any]]  # HTTP status, JSON body


async def force(dns: DnsSync) -> Answered:
    if not dns.leadership.is_leader():
        return _not_leader(dns)
    outcome = await dns.reconcile(force=True)
    if outcome.plan is None and outcome.ok:  # leadership lost meanwhile, or nothing loaded yet
        return _not_leader(dns) if not dns.leadership.is_leader() else _not_ready()
    return _answered(dns, outcome, dry_run=False)


async def dry_run(dns: DnsSync) -> Answered:
    outcome = await dns.reconcile(write=False)
    if outcome.plan is None and outcome.ok:
        return _not_ready()
    return _answered(dns, outcome, dry_run=True)


def _answered(dns: DnsSync, outcome: Outcome, *, dry_run: bool) -> Answered:
    body = {
        "provider": dns.provider.describe(),
        "dryRun": dry_run,
        "plan": describe(outcome.plan, dns.options) if outcome.plan is not None else [],
        "applied": outcome.applied,
        "errors": list(outcome.errors),
    }
    return (200 if outcome.ok else 502), body


def _not_leader(dns: DnsSync) -> Answered:
    holder = str(getattr(dns.leadership, "holder", "") or "")
    where = f"the Lease holder {holder!r}" if holder else "the Lease holder (none right now)"
    return 409, {
        "message": f"this replica does not write DNS, {where} does: run it in that pod",
        "holder": holder,
    }


def _not_ready() -> Answered:
    return 503, {
        "message": "nothing to plan yet: the cluster snapshot or the first configuration has not arrived"
    }
