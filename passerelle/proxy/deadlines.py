"""Coarse timeouts without a timer per request.

Each connection keeps a `deadline` (event-loop time, 0 for none) and reassigns it as it moves
between states; one periodic sweep calls `on_deadline()` on the expired ones. The HTTP/1.1 hot
path sets deadlines from `Deadlines.now`, a coarse clock the sweep moves on (the loop's time at
the last sweep plus one tick, so a deadline from it is not early while the loop keeps up), not
from `loop.time()`, a method call per deadline. A timeout fires up to two ticks late, which is
fine for limits measured in seconds, and the per-request cost is one float assignment.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

log = logging.getLogger("passerelle.proxy")


class HasDeadline(Protocol):
    deadline: float

    def on_deadline(self) -> None: ...


class Deadlines:
    def __init__(self, loop: asyncio.AbstractEventLoop, tick: float = 0.25) -> None:
        self._loop = loop
        self._tick = tick
        self._members: set[HasDeadline] = set()
        self._handle: asyncio.TimerHandle | None = None
        self.now = loop.time() + tick  # the coarse clock (see the module docstring)

    def add(self, member: HasDeadline) -> None:
        self._members.add(member)

    def discard(self, member: HasDeadline) -> None:
        self._members.discard(member)

    def start(self) -> None:
        self._handle = self._loop.call_later(self._tick, self._sweep)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _sweep(self) -> None:
        self._handle = self._loop.call_later(self._tick, self._sweep)  # first: one failure stops nothing
        now = self._loop.time()
        self.now = now + self._tick
        expired = [m for m in self._members if 0 < m.deadline <= now]
        for member in expired:
            member.deadline = 0.0
            try:
                member.on_deadline()
            except Exception:
                log.exception("timeout handling failed; the connection is closed")
                transport = getattr(member, "transport", None)
                if transport is not None:
                    transport.abort()
