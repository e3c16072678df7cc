"""The drain sequence's phases, without DNS and with fixed VIP targets (no sockets: nothing to remove)."""

from __future__ import annotations

import pytest

from passerelle.control.leadership import AlwaysLeader
from passerelle.dnssync.controller import DnsSync
from passerelle.dnssync.desired import PlanOptions
from passerelle.dnssync.drain import Drain
from passerelle.dnssync.rfc2136 import Rfc2136Options, Rfc2136Provider


def fixed_targets() -> DnsSync:
    """DNS sync of node n1 to a fixed VIP: no node to remove from DNS, no server ever asked."""
    return DnsSync(
        options=PlanOptions(zones=("example.test",), owner="a", targets=("192.0.2.10",)),
        provider=Rfc2136Provider(Rfc2136Options(server="192.0.2.53")),  # never asked
        leadership=AlwaysLeader(),
        interval=60,
        node_name="n1",
    )


async def run(drain: Drain, stopped: list[str]) -> list[str]:
    assert drain.phase == "serving" and not drain.refusing
    drain.request()
    drain.request()  # a second request changes nothing
    await drain.run()
    assert stopped == ["stop"] and drain.refusing
    return list(drain.status()["since"])


async def test_without_dns_sync_ping_turns_503_then_stop() -> None:
    stopped: list[str] = []
    drain = Drain(dns=None, dns_wait=30, timeout=60, accept_grace=0, stop=lambda: stopped.append("stop"))
    assert await run(drain, stopped) == ["refusing", "stopping"]  # no TTL to wait without DNS


async def test_fixed_targets_have_no_node_to_remove_nor_ttl_to_wait() -> None:
    stopped: list[str] = []
    sync = fixed_targets()
    drain = Drain(dns=sync, dns_wait=30, timeout=60, accept_grace=0, stop=lambda: stopped.append("stop"))
    assert await run(drain, stopped) == ["leaving-dns", "refusing", "stopping"]
    assert drain.status()["dns"] == "not-in-dns" and not drain.status()["dnsFailed"]
    assert sync.draining == {"n1"}


@pytest.mark.parametrize(
    ("error", "annotation"), [("", "written"), ("403 Forbidden: pods is forbidden", "failed")]
)
async def test_the_pod_mark_comes_first_and_its_outcome_is_in_the_status(error: str, annotation: str) -> None:
    """`mark` (kube/draining.py) runs before DNS; a failure is reported and the drain goes on."""
    stopped: list[str] = []
    sync = fixed_targets()
    order: list[str] = []

    async def mark() -> str:
        order.append(f"mark with {sync.draining or 'none'} draining")
        return error

    drain = Drain(
        dns=sync, dns_wait=0, timeout=60, accept_grace=0, stop=lambda: stopped.append("stop"), mark=mark
    )
    assert await run(drain, stopped) == ["leaving-dns", "refusing", "stopping"]
    status = drain.status()
    assert order == ["mark with none draining"]  # before drain_node marks this node draining
    assert (status["annotation"], status["annotationDetail"]) == (annotation, error)


async def test_without_a_mark_the_annotation_is_not_reported() -> None:
    stopped: list[str] = []
    drain = Drain(dns=None, dns_wait=0, timeout=60, accept_grace=0, stop=lambda: stopped.append("stop"))
    await run(drain, stopped)
    assert drain.status()["annotation"] == "" and drain.status()["annotationDetail"] == ""
