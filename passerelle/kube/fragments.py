"""Fragments: one Ingress's part of a translation, and the index of what each part read of others.

ingress.py's builder adds Ingresses oldest first to one shared state: claims on (entry point, host,
path), router names. `FragmentBuilder` adds one Ingress alone, its view of that state given by the
`Index` of the other fragments, counting only the older ones, so its part comes out as it would in
the whole translation. Each `Fragment` records what it claimed and which names it asked for, so the
index can say which other Ingresses a change of it concerns (kube/incremental.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

from passerelle.kube.acme import RESOLVER_ANNOTATIONS
from passerelle.kube.ingress import _Builder, _Placed
from passerelle.kube.names import UniqueNames
from passerelle.kube.objects import IngressSpec
from passerelle.kube.tls import OPTIONS_ANNOTATIONS
from passerelle.model import Middleware, PathType, Problem, Router, Service
from passerelle.model.delta import HostKey, host_key

IngressKey = tuple[str, str]  # (namespace, name)
Age = tuple[str, str, str]  # IngressSpec.age_key: oldest first
ClaimKey = tuple[str, str | None, PathType | None, str]  # (entry point, host, path type, path)
TLS_ANNOTATIONS = (*OPTIONS_ANNOTATIONS, *RESOLVER_ANNOTATIONS)
K = TypeVar("K")


@dataclass(frozen=True, slots=True, kw_only=True)
class Fragment:
    """One Ingress's part of a translation, and what it read of the others'."""

    key: IngressKey
    age: Age
    source: str  # "Ingress ns/name", as claims name their owner
    spec: IngressSpec
    placed: _Placed
    routers: tuple[Router, ...]
    services: tuple[Service, ...]
    middlewares: tuple[Middleware, ...]
    problems: tuple[Problem, ...]
    claims: frozenset[ClaimKey]  # claimed, whether won or not
    names: frozenset[str]  # router names held
    tried: frozenset[str]  # router names asked for (held, or found taken)
    backends: frozenset[tuple[str, str]]  # (namespace, Service) its backends name
    hosts: frozenset[HostKey]
    uses_middlewares: bool  # router.middlewares: depends on the snapshot's Middleware objects
    tls: bool  # spec.tls, or an annotation the TLS translation reads


class Index:
    """The live fragments and who claims, holds or asked for what."""

    def __init__(self) -> None:
        self.fragments: dict[IngressKey, Fragment] = {}
        self.claims: dict[ClaimKey, set[IngressKey]] = {}
        self.names: dict[str, set[IngressKey]] = {}
        self.tried: dict[str, set[IngressKey]] = {}
        self.backends: dict[tuple[str, str], set[IngressKey]] = {}
        self.hosts: dict[HostKey, set[IngressKey]] = {}
        self.with_middlewares: set[IngressKey] = set()

    def owner(self, claim: ClaimKey, age: Age) -> str | None:
        """The source of the oldest Ingress older than `age` that claims `claim`."""
        best: Fragment | None = None
        for key in self.claims.get(claim, ()):
            fragment = self.fragments[key]
            if fragment.age < age and (best is None or fragment.age < best.age):
                best = fragment
        return None if best is None else best.source

    def held(self, name: str, age: Age) -> bool:
        return any(self.fragments[key].age < age for key in self.names.get(name, ()))

    def add(self, f: Fragment) -> None:
        self.fragments[f.key] = f
        _link(self.claims, f.claims, f.key)
        _link(self.names, f.names, f.key)
        _link(self.tried, f.tried, f.key)
        _link(self.backends, f.backends, f.key)
        _link(self.hosts, f.hosts, f.key)
        if f.uses_middlewares:
            self.with_middlewares.add(f.key)

    def remove(self, f: Fragment) -> None:
        del self.fragments[f.key]
        _unlink(self.claims, f.claims, f.key)
        _unlink(self.names, f.names, f.key)
        _unlink(self.tried, f.tried, f.key)
        _unlink(self.backends, f.backends, f.key)
        _unlink(self.hosts, f.hosts, f.key)
        self.with_middlewares.discard(f.key)

    def sharers(self, f: Fragment) -> set[IngressKey]:
        """The Ingresses that claim what `f` claims or asked for a name `f` holds."""
        out: set[IngressKey] = set()
        for claim in f.claims:
            out.update(self.claims.get(claim, ()))
        for name in f.names:
            out.update(self.tried.get(name, ()))
        return out


def _link(table: dict[K, set[IngressKey]], items: Iterable[K], key: IngressKey) -> None:
    for item in items:
        table.setdefault(item, set()).add(key)


def _unlink(table: dict[K, set[IngressKey]], items: Iterable[K], key: IngressKey) -> None:
    for item in items:
        holders = table[item]
        holders.discard(key)
        if not holders:
            del table[item]


class _Claims(dict[ClaimKey, str]):
    """The builder's claims while it adds one Ingress: older Ingresses' claims come from the index."""

    def __init__(self, index: Index, age: Age) -> None:
        super().__init__()
        self._index, self._age = index, age

    def setdefault(self, key: ClaimKey, default: str) -> str:
        owner = self.get(key)
        if owner is None:
            owner = self[key] = self._index.owner(key, self._age) or default
        return owner


class _Names(set[str]):
    """The builder's router names while it adds one Ingress: older Ingresses' from the index."""

    def __init__(self, index: Index, age: Age) -> None:
        super().__init__()
        self._index, self._age = index, age
        self.tried: set[str] = set()

    def __contains__(self, name: object) -> bool:
        assert isinstance(name, str)
        self.tried.add(name)
        return set.__contains__(self, name) or self._index.held(name, self._age)


class FragmentBuilder(_Builder):
    """ingress.py's builder for one Ingress, its view of the others given by the index."""

    def fragment(self, spec: IngressSpec, index: Index, placed: _Placed | None) -> Fragment:
        age = spec.age_key
        claims, names = _Claims(index, age), _Names(index, age)
        self._claims, self.names = claims, UniqueNames(names)
        if placed is not None:
            self.placed_before = {id(spec): placed}
        self.add(spec)
        routers = tuple(self._routers)
        refs = [path.backend for rule in spec.rules for path in rule.paths]
        if spec.default_backend is not None:
            refs.append(spec.default_backend)
        annotations = spec.annotations
        return Fragment(
            key=(spec.namespace, spec.name),
            age=age,
            source=f"Ingress {spec.namespace}/{spec.name}",
            spec=spec,
            placed=self.placed[id(spec)],
            routers=routers,
            services=tuple(self._services.values()),
            middlewares=tuple(self._middlewares.values()),
            problems=tuple(self._problems),
            claims=frozenset(claims),
            names=frozenset(set.__iter__(names)),
            tried=frozenset(names.tried),
            backends=frozenset((spec.namespace, ref.service) for ref in refs),
            hosts=frozenset(host_key(r) for r in routers),
            uses_middlewares=bool(self.placed[id(spec)].annotations.traefik.middlewares),
            tls=bool(spec.tls) or not annotations.keys().isdisjoint(TLS_ANNOTATIONS),
        )
