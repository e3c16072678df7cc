"""Does a stop fit in the pod's termination grace period? The stop's worst case, the pod's budget.

When a pod is deleted the kubelet runs the container's preStop hook, sends SIGTERM, and kills
the container once `spec.terminationGracePeriodSeconds` (30 s unless set) have passed since the
deletion, preStop included. A router killed mid-drain drops in-flight requests, and one killed
before /ping turned 503 may still be in DNS. So at start, with the Kubernetes provider, the router
reads its own Pod (named by $POD_NAME/$POD_NAMESPACE, as kube/draining.py) and compares: the
longest stop this configuration can take (`stop_budget`: a SIGTERM drain's timeout, DNS wait and
accept grace, then graceTimeout) plus the preStop sleep against the grace period. When it does not
fit, a warning and a Problem on the Pod say by how much and what to change. The comparison is pure
(`read_termination`, `grace_problem`); `check_grace_period` is its shell.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from passerelle.kube.client import ApiClient, KubeError
from passerelle.kube.draining import OwnPod
from passerelle.model import ObjectRef, Problem, Severity

if TYPE_CHECKING:
    from passerelle.settings import Settings

log = logging.getLogger("passerelle.drain")

DEFAULT_GRACE_PERIOD = 30.0  # Kubernetes' default terminationGracePeriodSeconds


@dataclass(frozen=True, slots=True, kw_only=True)
class Budget:
    """The longest a stop can take from SIGTERM to exit, by step, in seconds."""

    leave_dns: float = 0.0  # dnsSync.drain.timeout: the removal not confirmed (the server down)
    dns_wait: float = 0.0  # dnsSync.drain.dnsWait (the ttl): resolvers forget the node
    accept_grace: float = 0.0  # dnsSync.drain.acceptGrace: /ping at 503, still serving
    grace: float  # graceTimeout: in-flight requests finish

    @property
    def total(self) -> float:
        return self.leave_dns + self.dns_wait + self.accept_grace + self.grace

    def describe(self) -> str:
        steps = (
            ("dnsSync.drain.timeout", self.leave_dns),
            ("dnsSync.drain.dnsWait", self.dns_wait),
            ("dnsSync.drain.acceptGrace", self.accept_grace),
            ("graceTimeout", self.grace),
        )
        return " + ".join(f"{name} {value:g}s" for name, value in steps if value or name == "graceTimeout")


def stop_budget(settings: Settings) -> Budget:
    """The worst case of a SIGTERM under `settings`: a drain when SIGTERM drains (fixed `target`
    addresses skip leaving DNS and its wait: DNS never named the node), then graceTimeout."""
    sync, grace = settings.dnsSync, settings.graceTimeout
    kubernetes = settings.providers.kubernetes is not None
    if sync is None or not sync.drain.on_sigterm(kubernetes=kubernetes):
        return Budget(grace=grace)
    if isinstance(sync.target, list):
        return Budget(accept_grace=sync.drain.acceptGrace, grace=grace)
    return Budget(
        leave_dns=sync.drain.timeout,
        dns_wait=sync.dns_wait(),
        accept_grace=sync.drain.acceptGrace,
        grace=grace,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Termination:
    """What a Pod's spec allows a stop: its grace period and the preStop sleep spent in it."""

    grace_period: float  # spec.terminationGracePeriodSeconds
    pre_stop: float  # the longest preStop sleep of its containers (0: none, or not a sleep)


def read_termination(pod: Mapping[str, Any]) -> Termination:
    """From a Pod object. A preStop counts when it is a `sleep` action or `exec: [sleep, N]` (what
    deploy/ uses); the kubelet runs each container's hook before its SIGTERM, so the longest one is
    taken (the router's container is not named by the downward API)."""
    spec = pod.get("spec") or {}
    raw = spec.get("terminationGracePeriodSeconds")
    grace = float(raw) if isinstance(raw, int | float) and not isinstance(raw, bool) else DEFAULT_GRACE_PERIOD
    sleeps = [_pre_stop_sleep(c) for c in spec.get("containers") or [] if isinstance(c, Mapping)]
    return Termination(grace_period=grace, pre_stop=max(sleeps, default=0.0))


def _pre_stop_sleep(container: Mapping[str, Any]) -> float:
    hook = ((container.get("lifecycle") or {}).get("preStop")) or {}
    if not isinstance(hook, Mapping):
        return 0.0
    seconds = (hook.get("sleep") or {}).get("seconds")
    if isinstance(seconds, int) and not isinstance(seconds, bool):
        return float(seconds)
    command = (hook.get("exec") or {}).get("command") or []
    if isinstance(command, list) and len(command) == 2 and str(command[0]).rsplit("/", 1)[-1] == "sleep":
        try:
            return float(command[1])
        except (TypeError, ValueError):
            return 0.0
    return 0.0


def grace_problem(budget: Budget, termination: Termination, ref: ObjectRef) -> Problem | None:
    """A warning when the stop's worst case (after the preStop) outlasts the grace period."""
    need = termination.pre_stop + budget.total
    if need <= termination.grace_period:
        return None
    pre_stop = f"the preStop sleep {termination.pre_stop:g}s + " if termination.pre_stop else ""
    return Problem(
        ref=ref,
        severity=Severity.WARNING,
        message=(
            f"terminationGracePeriodSeconds {termination.grace_period:g} is shorter than the longest stop, "
            f"{need:g}s ({pre_stop}{budget.describe()}): the kubelet may kill the router mid-drain, "
            f"cutting in-flight requests; raise terminationGracePeriodSeconds to at least {need:g} "
            f"or shorten those settings (docs/kubernetes.md#stopping)"
        ),
    )


async def check_grace_period(
    client: ApiClient, pod: OwnPod, budget: Budget, report: Callable[[Problem], object]
) -> None:
    """Read the own Pod and `report` a Problem (and log it) when a stop may not fit its grace period.
    Best effort: without $POD_NAME, or when the Pod cannot be read, it only logs why."""
    if not pod.name:
        log.info("no $POD_NAME: the termination grace period is not checked against the drain")
        return
    try:
        termination = read_termination(await client.get(pod.path))
    except KubeError as e:
        log.warning(
            "cannot read pod %s/%s to check its termination grace period: %s", pod.namespace, pod.name, e
        )
        return
    ref = ObjectRef(kind="Pod", namespace=pod.namespace, name=pod.name)
    problem = grace_problem(budget, termination, ref)
    if problem is not None:
        log.warning("%s", problem)
        report(problem)
        return
    log.info(
        "pod %s/%s: terminationGracePeriodSeconds %g covers the longest stop, %gs",
        pod.namespace, pod.name, termination.grace_period, termination.pre_stop + budget.total,
    )  # fmt: skip
