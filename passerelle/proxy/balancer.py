"""Round-robin over a service's servers, and weighted splits over services (pure: no I/O, just the choice)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class RoundRobin(Generic[T]):
    __slots__ = ("items", "_next")

    def __init__(self, items: Sequence[T]) -> None:
        self.items = tuple(items)
        self._next = 0

    def pick(self, avoid: T | None = None) -> T | None:
        """The next item in turn; with `avoid`, a different one when there is one (retries)."""
        items = self.items
        n = len(items)
        if n == 0:
            return None
        i = self._next
        item = items[i]
        if item is avoid and n > 1:
            i = (i + 1) % n
            item = items[i]
        self._next = (i + 1) % n
        return item


class Weighted(Generic[T]):
    """Smooth weighted round-robin (nginx's): each item in proportion to its weight, spread out
    (weights 2:1 pick a, b, a, not a, a, b). Items of weight 0 are never picked."""

    __slots__ = ("items", "weights", "_current", "_total")

    def __init__(self, items: Sequence[tuple[T, int]]) -> None:
        kept = [(item, weight) for item, weight in items if weight > 0]
        self.items = tuple(item for item, _ in kept)
        self.weights = tuple(weight for _, weight in kept)
        self._current = [0] * len(kept)
        self._total = sum(self.weights)

    def pick(self) -> T | None:
        if not self.items:
            return None
        current = self._current
        best = 0
        for i, weight in enumerate(self.weights):
            current[i] += weight
            if current[i] > current[best]:
                best = i
        current[best] -= self._total
        return self.items[best]
