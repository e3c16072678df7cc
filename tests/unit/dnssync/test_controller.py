"""DnsSync.run stops when cancelled, even when a wake-up comes at the same moment (no sockets:
nothing is loaded, so no zone is read)."""

from __future__ import annotations

import asyncio

import pytest

from passerelle.control.leadership import AlwaysLeader
from passerelle.dnssync.controller import DnsSync
from passerelle.dnssync.desired import PlanOptions
from passerelle.dnssync.rfc2136 import Rfc2136Options, Rfc2136Provider


@pytest.mark.parametrize("woken", [True, False])
async def test_run_ends_when_cancelled_even_as_it_is_woken(woken: bool) -> None:
    """A snapshot arriving (wake) as SIGTERM cancels the task: with asyncio.wait_for on 3.11 the
    cancellation was swallowed and the task waited for its next interval (60 s) before stopping."""
    sync = DnsSync(
        options=PlanOptions(zones=("example.test",), owner="a"),
        provider=Rfc2136Provider(Rfc2136Options(server="192.0.2.53")),  # never asked: nothing loaded
        leadership=AlwaysLeader(),
        interval=60,
    )
    task = asyncio.ensure_future(sync.run())
    for _ in range(5):
        await asyncio.sleep(0)  # the first reconcile (not ready), then waiting for a wake-up
    if woken:
        sync.wake()
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=2)
    if not done:
        task.cancel()  # again, so that the test does not leave it behind
    assert task in done and task.cancelled()
