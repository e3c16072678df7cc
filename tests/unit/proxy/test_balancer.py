from __future__ import annotations

from passerelle.proxy.balancer import RoundRobin


def test_round_robin_cycles_and_avoids_on_retry() -> None:
    rr = RoundRobin(["a", "b", "c"])
    assert [rr.pick() for _ in range(4)] == ["a", "b", "c", "a"]
    assert rr.pick(avoid="b") == "c"  # "b" was next: skip it
    assert rr.pick() == "a"
    assert RoundRobin([]).pick() is None
    single = RoundRobin(["only"])
    assert single.pick(avoid="only") == "only"  # nothing else to try
