"""Layered: a read-only mapping that is a dictionary with a few keys replaced or gone, uncopied.

A snapshot of 30,000 objects edited after a change of one file would otherwise copy its
dictionary (about a millisecond, and a fresh megabyte to fault in) on every reload. A Layered
mapping shares its base dictionary, never changed, with the mappings it was edited from, and
holds the edits since in a small dictionary and set of its own; once they grow past a share of the
base (`FLATTEN_SHARE`), an edit makes a flat dictionary again, so the copies are amortised and a
lookup costs at most three dictionary lookups.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Generic, TypeVar, overload

K = TypeVar("K")
V = TypeVar("V")
D = TypeVar("D")
FLATTEN_SHARE = 16  # edits past len(base) / FLATTEN_SHARE (and past FLATTEN_MIN) make it flat again
FLATTEN_MIN = 64
_MISSING: object = object()


class Layered(Mapping[K, V], Generic[K, V]):
    __slots__ = ("_base", "_over", "_gone", "_len")

    def __init__(self, base: dict[K, V] | None = None) -> None:
        """`base` is kept, not copied: it must not change afterwards."""
        self._base: dict[K, V] = {} if base is None else base
        self._over: dict[K, V] = {}  # keys new or replaced
        self._gone: frozenset[K] = frozenset()  # keys of the base that are not here
        self._len = len(self._base)

    def edited(self, removed: Iterable[K], upserted: Mapping[K, V]) -> Layered[K, V]:
        """This mapping without the keys of `removed`, with `upserted` (which wins over
        `removed` for a key in both); this one is left as it is."""
        over, gone, size = self._over.copy(), set(self._gone), self._len
        base = self._base
        for key in removed:
            if key in over:
                del over[key]
                if key in base:
                    gone.add(key)
                size -= 1
            elif key in base and key not in gone:
                gone.add(key)
                size -= 1
        for key, value in upserted.items():
            if key not in over and (key not in base or key in gone):
                size += 1
            over[key] = value
            gone.discard(key)
        out: Layered[K, V] = Layered.__new__(Layered)
        if len(over) + len(gone) > max(FLATTEN_MIN, len(base) // FLATTEN_SHARE):
            flat = {k: v for k, v in base.items() if k not in gone and k not in over}
            flat.update(over)
            out._base, out._over, out._gone = flat, {}, frozenset()
        else:
            out._base, out._over, out._gone = base, over, frozenset(gone)
        out._len = size
        return out

    def flat(self) -> dict[K, V]:
        """A dictionary of these items: the base itself when there are no edits (do not change it)."""
        if not self._over and not self._gone:
            return self._base
        return dict(self.items())

    def __getitem__(self, key: K) -> V:
        value = self._over.get(key, _MISSING)
        if value is not _MISSING:
            return value  # type: ignore[return-value]
        if key in self._gone:
            raise KeyError(key)
        return self._base[key]

    @overload
    def get(self, key: K) -> V | None: ...
    @overload
    def get(self, key: K, default: V | D) -> V | D: ...
    def get(self, key: K, default: object = None) -> object:
        value = self._over.get(key, _MISSING)
        if value is not _MISSING:
            return value
        if key in self._gone:
            return default
        return self._base.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._over or (key not in self._gone and key in self._base)

    def __iter__(self) -> Iterator[K]:
        over, gone = self._over, self._gone
        if not over and not gone:
            return iter(self._base)
        return iter([*(k for k in self._base if k not in gone and k not in over), *over])

    def __len__(self) -> int:
        return self._len

    def __repr__(self) -> str:
        return f"Layered({dict(self.items())!r})"
