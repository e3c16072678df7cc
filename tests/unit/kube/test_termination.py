"""The stop's worst case from the settings, the Pod's grace period and preStop, and the warning."""

from __future__ import annotations

from typing import Any

import pytest

from passerelle.kube.termination import Budget, Termination, grace_problem, read_termination, stop_budget
from passerelle.model import ObjectRef, Severity
from passerelle.settings import parse_settings

KUBE = "providers: {kubernetes: {}}\n"
MANIFESTS = "providers: {manifests: {directory: /m}}\n"
SYNC = "dnsSync:\n  zones: [example.test]\n  provider: {rfc2136: {server: 192.0.2.53}}\n"


@pytest.mark.parametrize(
    ("config", "budget"),
    [
        (KUBE, Budget(grace=10)),  # no dnsSync: SIGTERM stops, in-flight requests get graceTimeout
        (KUBE + SYNC, Budget(leave_dns=60, dns_wait=60, accept_grace=10, grace=10)),  # drains by default
        (MANIFESTS + SYNC, Budget(grace=10)),  # outside a cluster SIGTERM stops unless asked
        (MANIFESTS + SYNC + "  drain: {onSigterm: true}\n", Budget(leave_dns=60, dns_wait=60, accept_grace=10, grace=10)),
        (KUBE + SYNC + "  drain: {onSigterm: false}\n", Budget(grace=10)),
        (
            KUBE + SYNC + "  ttl: 5\n  drain: {timeout: 20s, dnsWait: 3s, acceptGrace: 2s}\ngraceTimeout: 4s\n",
            Budget(leave_dns=20, dns_wait=3, accept_grace=2, grace=4),
        ),
        (KUBE + SYNC + "  target: [192.0.2.10]\n", Budget(accept_grace=10, grace=10)),  # DNS never named the node
    ],
)  # fmt: skip
def test_the_stop_budget_follows_what_sigterm_does(config: str, budget: Budget) -> None:
    assert stop_budget(parse_settings(config)) == budget


def container(**lifecycle: Any) -> dict[str, Any]:
    return (
        {"name": "passerelle", "lifecycle": {"preStop": lifecycle}} if lifecycle else {"name": "passerelle"}
    )


@pytest.mark.parametrize(
    ("spec", "termination"),
    [
        ({"containers": [container()]}, Termination(grace_period=30, pre_stop=0)),  # Kubernetes' default
        ({"terminationGracePeriodSeconds": 170, "containers": [container(exec={"command": ["sleep", "5"]})]},
         Termination(grace_period=170, pre_stop=5)),
        ({"terminationGracePeriodSeconds": 60, "containers": [container(sleep={"seconds": 7})]},
         Termination(grace_period=60, pre_stop=7)),
        ({"containers": [container(exec={"command": ["/bin/sleep", "3"]}), container(sleep={"seconds": 9})]},
         Termination(grace_period=30, pre_stop=9)),  # the longest hook of any container
        ({"containers": [container(exec={"command": ["sh", "-c", "sleep 5"]})]},
         Termination(grace_period=30, pre_stop=0)),  # not a plain sleep: its length is unknown
        ({"terminationGracePeriodSeconds": "x", "containers": [container(exec={"command": ["sleep", "x"]})]},
         Termination(grace_period=30, pre_stop=0)),
        ({}, Termination(grace_period=30, pre_stop=0)),
    ],
)  # fmt: skip
def test_read_termination(spec: dict[str, Any], termination: Termination) -> None:
    assert read_termination({"spec": spec}) == termination


POD = ObjectRef(kind="Pod", namespace="passerelle", name="passerelle-x7k2p")
DRAIN = Budget(leave_dns=60, dns_wait=60, accept_grace=10, grace=20)


def test_a_stop_that_fits_is_no_problem() -> None:
    assert grace_problem(DRAIN, Termination(grace_period=155, pre_stop=5), POD) is None
    assert grace_problem(Budget(grace=20), Termination(grace_period=30, pre_stop=5), POD) is None


def test_a_stop_longer_than_the_grace_period_is_a_warning_on_the_pod() -> None:
    problem = grace_problem(DRAIN, Termination(grace_period=35, pre_stop=5), POD)
    assert problem is not None and problem.ref == POD and problem.severity is Severity.WARNING
    assert problem.message.startswith(
        "terminationGracePeriodSeconds 35 is shorter than the longest stop, 155s (the preStop sleep 5s + "
        "dnsSync.drain.timeout 60s + dnsSync.drain.dnsWait 60s + dnsSync.drain.acceptGrace 10s + "
        "graceTimeout 20s): the kubelet may kill the router mid-drain"
    )
    assert "raise terminationGracePeriodSeconds to at least 155" in problem.message
    short = grace_problem(Budget(grace=40), Termination(grace_period=30, pre_stop=0), POD)
    assert short is not None and "than the longest stop, 40s (graceTimeout 40s)" in short.message
