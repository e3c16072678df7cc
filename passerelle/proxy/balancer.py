"""Round-robin over a service's servers (pure: no I/O, just the choice)."""

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
