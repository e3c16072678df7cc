"""Retry delays with "equal jitter": half of each delay fixed, half drawn at random.

One policy for everything that retries against a remote party (the Kubernetes API, an ACME CA):
`base` doubling on each consecutive failure up to `cap`, so that replicas and names that failed
together do not retry in step. The draw is passed in, so that tests can fix it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    """Delays between retries: `base` doubling up to `cap` seconds, each drawn in [d/2, d]."""

    base: float = 0.25
    cap: float = 30.0

    def delay(self, attempt: int, draw: float) -> float:
        """The pause after failure `attempt` + 1 (0 for the first); `draw` in [0, 1)."""
        ceiling = min(self.cap, self.base * float(2 ** min(attempt, 30)))
        return ceiling / 2 + ceiling / 2 * draw
