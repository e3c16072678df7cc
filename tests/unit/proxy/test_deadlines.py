"""The coarse clock the hot path sets deadlines from (proxy/deadlines.py)."""

from __future__ import annotations

import asyncio

from passerelle.proxy.deadlines import Deadlines


class Member:
    def __init__(self) -> None:
        self.deadline = 0.0
        self.fired = 0

    def on_deadline(self) -> None:
        self.fired += 1


def test_a_deadline_from_the_coarse_clock_fires_and_is_not_early() -> None:
    loop = asyncio.new_event_loop()
    try:
        deadlines = Deadlines(loop, tick=0.05)
        member = Member()
        deadlines.add(member)
        deadlines._sweep()
        assert loop.time() <= deadlines.now <= loop.time() + 0.05
        start = loop.time()
        member.deadline = deadlines.now + 0.1  # a 0.1 s timeout, set as the hot path sets it
        while not member.fired:
            loop.run_until_complete(asyncio.sleep(0.01))
        assert 0.1 <= loop.time() - start  # never early
        assert member.deadline == 0.0
        deadlines.stop()
    finally:
        loop.close()
