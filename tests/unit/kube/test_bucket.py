"""The token bucket Events and Ingress status share, on a clock the test moves."""

from __future__ import annotations

import pytest

from passerelle.kube.bucket import TokenBucket


def test_burst_then_rate_per_second_never_above_burst() -> None:
    now = [0.0]
    bucket = TokenBucket(3, 2.0, clock=lambda: now[0])
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    now[0] = 0.4  # 0.8 of a token
    assert not bucket.take()
    now[0] = 0.5
    assert bucket.take() and not bucket.take()
    now[0] = 100.0
    assert bucket.available() == 3


async def test_acquire_waits_for_the_next_token() -> None:
    bucket = TokenBucket(1, 50.0)
    await bucket.acquire()
    await bucket.acquire()  # 20 ms later
    assert bucket.available() == 0


def test_nonsense_is_refused() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0, 1.0)
