"""A token bucket: `burst` writes at once, then `rate` per second (Events and Ingress status).

A bad rollout of a thousand Ingresses, or a DaemonSet rollout that changes every Ingress's
addresses, must not turn into a thousand API writes in a second: each write takes a token.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class TokenBucket:
    def __init__(self, burst: int, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        if burst < 1 or rate <= 0:
            raise ValueError("a token bucket needs burst >= 1 and rate > 0")
        self.burst, self.rate = burst, rate
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()

    def available(self) -> int:
        """Whole tokens there are now."""
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.rate)
        self._at = now
        return int(self._tokens)

    def take(self) -> bool:
        """Take one token if there is one."""
        if self.available() < 1:
            return False
        self._tokens -= 1
        return True

    async def acquire(self) -> None:
        """Take one token, waiting for it if need be."""
        while not self.take():
            await asyncio.sleep((1 - self._tokens) / self.rate)
