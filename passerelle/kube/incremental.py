"""Incremental Ingress translation: after a change, only the Ingresses it concerns are translated.

`Translator.translate(snapshot)` returns exactly what ingress.py's `Translator` fed the same
snapshots returns (a property test checks it over random sequences of changes; both remember
TLSOptions' last valid definitions, kube/tlsoptions.py) and sets `delta`: what changed since the previous
call, by name, for the workers (control/distribute.py sends only that).

Each valid Ingress of ours is a `Fragment`: its routers, the services and middlewares they use, its
problems, made by ingress.py's builder for that Ingress alone. What an Ingress's part depends on in
others is looked up in indexes of the other fragments, counting only older Ingresses, as the full
translation (oldest first) sees them: who claims an (entry point, host, path) first, which router
names are taken. Objects are compared by identity (providers never mutate an object they handed
over), so a snapshot's changes cost a few set operations on ids, or nothing when the snapshot was
edited from the last one (ClusterSnapshot.changes_since says what changed). An Ingress is translated again when
it changed, when a Service, EndpointSlice or Endpoints its backends name changed, or a Middleware
when it names middlewares, or a TLSOption or Secret when it names a TLS option; then, oldest first, so are the younger Ingresses sharing a claim or a
router name with one whose claims or names changed. An IngressClass change translates everything.
The version is the fragments joined in age order (kube/fragment_order.py), or after a few
changes the last version edited (DynamicConfig.edited). TLS is translated over the Ingresses that have
spec.tls or TLS/ACME annotations (all of them when an entry point has a certificate resolver), and
only when one of those changed, or a Secret did.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import chain
from operator import attrgetter
from typing import TypeVar

from passerelle.kube.backends import Answer, Backends, Inputs, slice_index, slice_owner
from passerelle.kube.fragment_order import Changed, FragmentOrder
from passerelle.kube.fragments import Age, Fragment, FragmentBuilder, Index, IngressKey
from passerelle.kube.gateway import GatewayTranslation, translate_gateway
from passerelle.kube.ingress import IngressOptions, _class_of, _served_classes
from passerelle.kube.middlewares import LEGACY_GROUP, MiddlewareIndex
from passerelle.kube.names import UniqueNames
from passerelle.kube.objects import BackendRef, IngressSpec, InvalidObject, read_ingress
from passerelle.kube.snapshot import Changes, ClusterSnapshot, Object, Token, key_of
from passerelle.kube.tls import OPTIONS_ANNOTATIONS, TlsTranslator
from passerelle.kube.tlsoptions import OptionIndex
from passerelle.model import (
    DynamicConfig,
    Middleware,
    ObjectRef,
    Problem,
    Report,
    Router,
    Service,
    TlsConfig,
)
from passerelle.model.delta import Delta, HostKey, host_key

log = logging.getLogger("passerelle.translation")
MIDDLEWARE_KINDS = ("Middleware", f"Middleware.{LEGACY_GROUP}")
TLS_OPTION_KINDS = ("TLSOption", f"TLSOption.{LEGACY_GROUP}")
T = TypeVar("T")
_ROUTERS = attrgetter("routers")
_SERVICES = attrgetter("services")
_NAME = attrgetter("name")


@dataclass(slots=True)
class _Seen:
    """One Ingress object as read: whose it is, and its spec or why it is invalid."""

    key: IngressKey
    ours: bool
    read: IngressSpec | InvalidObject | None  # None: not ours, not read


class Translator:
    """translate() with memory: only what a snapshot changed is translated again."""

    def __init__(self, options: IngressOptions | None = None) -> None:
        self._options = options = options or IngressOptions()
        self._acme_defaults = any(resolver for _, resolver in options.tls.acme.entrypoints)
        self.delta: Delta | None = None
        # Kept through _reset: its memory of the TLSOptions' last valid definitions is the
        # configuration's state, not bookkeeping (the full translator keeps it across snapshots too).
        self._tls = TlsTranslator(self._options.tls)
        self._reset()

    def _reset(self) -> None:
        self._served: tuple[set[str], bool] | None = None
        self._token: Token | None = None  # of the last snapshot translated
        self._changes: Changes | None = None  # of this snapshot since that one, when it says
        self._ids: dict[str, dict[int, Object]] = {}  # per kind: id -> object, of the last snapshot
        self._tuples: dict[str, tuple[Object, ...]] = {}  # per kind: the last snapshot's of_kind()
        self._seen: dict[int, _Seen] = {}  # per Ingress object id
        self._specs: dict[IngressKey, IngressSpec] = {}
        self._invalid: dict[IngressKey, Problem] = {}
        self._index = Index()
        self._order = FragmentOrder()
        self._joined_again = True  # the last _rebuild joined every fragment again
        self._slices: dict[tuple[str, str], list[Object]] = {}  # EndpointSlices by Service, in key order
        self._memo: dict[tuple[str, BackendRef], tuple[Inputs, Answer]] = {}
        self._middleware_problems: list[Problem] = []
        self._middleware_index: MiddlewareIndex | None = None
        self._tls_options: OptionIndex | None = None
        self._tls_option_problems: list[Problem] = []
        self._tls_result: tuple[TlsConfig, list[Problem]] | None = None
        self._gateway_problems: list[Problem] = []  # the last Gateway API translation's
        self._gateway_secrets: tuple[tuple[ObjectRef, str, str, str], ...] = ()
        self._had_gateway = False  # the last version had Gateway API routers
        self._routers: dict[str, Router] = {}
        self._services: dict[str, Service] = {}
        self._service_users: dict[str, int] = {}
        self._config: DynamicConfig | None = None

    def translate(self, snapshot: ClusterSnapshot) -> tuple[DynamicConfig, list[Problem]]:
        try:
            return self._translate(snapshot)
        except Exception:  # a fault in the bookkeeping must not stop translation: start again
            log.exception("incremental translation failed; translating every Ingress again")
            self._reset()
            return self._translate(snapshot)

    def _translate(self, snapshot: ClusterSnapshot) -> tuple[DynamicConfig, list[Problem]]:
        served = _served_classes(snapshot, self._options)
        if served != self._served:  # which Ingresses are ours may have changed: start again
            self._reset()
            self._served = served
        first = self._config is None
        self._changes = snapshot.changes_since(self._token)
        self._token = snapshot.token
        dirty: dict[IngressKey, None] = {}  # ordered, so a run is the same every time
        self._read_ingresses(snapshot, served, dirty)
        self._backend_changes(snapshot, dirty)
        middlewares = self._middlewares(snapshot)
        if middlewares is not None:
            dirty.update(dict.fromkeys(self._index.with_middlewares))
        secrets = self._diff(snapshot, "Secret")
        options = self._options_index(snapshot, secrets != ([], []))
        if options is not None:  # which TLS options exist, and are valid, decides who is served
            dirty.update(
                (key, None)
                for key, spec in self._specs.items()
                if any(spec.annotations.get(a, "").strip() for a in OPTIONS_ANNOTATIONS)
            )
        backends = Backends(snapshot, self._memo, self._slices)
        changed = self._rebuild(dirty, backends, middlewares or self._middleware_index)
        self._memo.update(backends.memo_next)
        # The TLS part reads only the Ingresses it is about (Fragment.tls), their routers, Secrets.
        tls_again = (
            self._acme_defaults
            or secrets != ([], [])
            or options is not None
            or any(f.tls for pair in changed for f in pair if f)
        )
        gateway = self._gateway(snapshot, backends)
        # Gateway API objects are translated whole each time (kube/gateway.py); their Secrets join the TLS part
        tls_again = tls_again or gateway.secrets != self._gateway_secrets  # Secret edits: `secrets` above
        self._gateway_secrets = gateway.secrets
        config, problems = self._assemble(snapshot, tls_again=tls_again, gateway=gateway, changed=changed)
        self.delta = self._delta(changed, config, first=first)
        if gateway.routers or self._had_gateway:
            self.delta = Delta(whole=True)  # a change set cannot patch Gateway API routes
        self._had_gateway = bool(gateway.routers)
        self._config = config
        return config, problems

    def _gateway(self, snapshot: ClusterSnapshot, backends: Backends) -> GatewayTranslation:
        self._gateway_problems.clear()
        report = Report(self._gateway_problems)
        names = UniqueNames()
        if snapshot.of_kind("GatewayClass"):  # else translate_gateway names nothing
            names.reserve(r.name for r in self._order.routers())
        return translate_gateway(
            snapshot, self._options.gateway, self._options.entrypoints, backends, report, names
        )

    # -- what changed ------------------------------------------------------------------------
    def _diff(self, snapshot: ClusterSnapshot, kind: str) -> tuple[list[Object], list[Object]]:
        """(objects added, objects removed) of `kind` since the last snapshot, by identity."""
        objects = snapshot.of_kind(kind)
        if objects is self._tuples.get(kind):  # merged snapshots share an unchanged kind's tuple
            return [], []
        self._tuples[kind] = objects
        if self._changes is not None:  # an edit of the last snapshot: what it says changed
            removed, added = self._changes.get(kind, ((), ()))
            ids = self._ids.setdefault(kind, {})
            for obj in removed:
                del ids[id(obj)]
            ids.update(zip(map(id, added), added, strict=True))
            return list(added), list(removed)
        before = self._ids.get(kind, {})
        now = dict(zip(map(id, objects), objects, strict=True))
        if now.keys() == before.keys():
            return [], []
        self._ids[kind] = now  # holds the objects: their ids cannot be reused meanwhile
        return [now[i] for i in now.keys() - before.keys()], [before[i] for i in before.keys() - now.keys()]

    def _read_ingresses(
        self,
        snapshot: ClusterSnapshot,
        served: tuple[set[str], bool],
        dirty: dict[IngressKey, None],
    ) -> None:
        added, removed = self._diff(snapshot, "Ingress")
        classes, unclassed = served
        for obj in removed:
            seen = self._seen.pop(id(obj))
            if not seen.ours:
                continue
            if isinstance(seen.read, IngressSpec):
                del self._specs[seen.key]
                dirty[seen.key] = None
            else:
                del self._invalid[seen.key]
        for obj in added:
            _, namespace, name = key_of(obj)
            key = (namespace, name)
            class_name = _class_of(obj)
            seen = _Seen(key, (class_name in classes) if class_name else unclassed, None)
            self._seen[id(obj)] = seen
            if not seen.ours:  # another controller's Ingress, valid or not, is silently not ours
                continue
            try:
                seen.read = spec = read_ingress(obj)
            except InvalidObject as e:
                seen.read = e
                self._invalid[key] = Problem(
                    ref=ObjectRef(kind="Ingress", namespace=namespace, name=name), message=f"not served: {e}"
                )
                continue
            self._specs[key] = spec
            dirty[key] = None

    def _backend_changes(self, snapshot: ClusterSnapshot, dirty: dict[IngressKey, None]) -> None:
        touched: set[tuple[str, str]] = set()
        for kind in ("Service", "Endpoints"):
            added, removed = self._diff(snapshot, kind)
            touched.update((key_of(obj)[1], key_of(obj)[2]) for obj in chain(removed, added))
        added, removed = self._diff(snapshot, "EndpointSlice")
        if not self._index.fragments:  # nothing to make dirty, nor to keep: index them all at once
            self._slices = slice_index(snapshot.of_kind("EndpointSlice"))  # in key order
            return
        changed: dict[tuple[str, str], list[Object]] = {}
        for obj in chain(removed, added):
            owner = slice_owner(obj)
            if owner is not None:
                changed.setdefault(owner, [])
        gone = set(map(id, removed))
        for obj in added:
            owner = slice_owner(obj)
            if owner is not None:
                changed[owner].append(obj)
        for owner, new in changed.items():
            kept = [obj for obj in self._slices.get(owner, ()) if id(obj) not in gone]
            if kept or new:
                self._slices[owner] = sorted(kept + new, key=key_of)  # the snapshot's order
            else:
                self._slices.pop(owner, None)
        touched.update(changed)
        for owner in touched:
            dirty.update(dict.fromkeys(self._index.backends.get(owner, ())))

    def _middlewares(self, snapshot: ClusterSnapshot) -> MiddlewareIndex | None:
        """A new index when Middleware objects changed (and on the first snapshot), else None."""
        changes = [self._diff(snapshot, kind) for kind in MIDDLEWARE_KINDS]
        if self._middleware_index is not None and not any(a or r for a, r in changes):
            return None
        self._middleware_problems = []
        self._middleware_index = MiddlewareIndex(snapshot, self._middleware_problems)
        return self._middleware_index

    def _options_index(self, snapshot: ClusterSnapshot, secrets_changed: bool) -> OptionIndex | None:
        """A new TLSOption index when TLSOption objects changed, or Secrets (their CAs), and on the
        first snapshot; else None."""
        changes = [self._diff(snapshot, kind) for kind in TLS_OPTION_KINDS]
        if self._tls_options is not None and not secrets_changed and not any(a or r for a, r in changes):
            return None
        self._tls_option_problems = []
        self._tls_options = self._tls.option_index(snapshot, self._tls_option_problems)
        return self._tls_options

    # -- translating -------------------------------------------------------------------------
    def _rebuild(
        self,
        dirty: dict[IngressKey, None],
        backends: Backends,
        middlewares: MiddlewareIndex | None,
    ) -> list[tuple[Fragment | None, Fragment | None]]:
        """Translate the dirty Ingresses again, oldest first, and the younger ones their changes
        concern; returns each changed Ingress's (fragment before, fragment now)."""
        assert middlewares is not None
        index = self._index
        # (age, 0 = leaves that position / 1 = translated at it, key): an Ingress whose age changed
        # leaves its old place before the Ingresses between its old and new ages are looked at.
        events: list[tuple[Age, int, IngressKey]] = []
        for key in dirty:
            before = index.fragments.get(key)
            spec = self._specs.get(key)
            if before is not None and (spec is None or spec.age_key != before.age):
                events.append((before.age, 0, key))
            if spec is not None:
                events.append((spec.age_key, 1, key))
        events.sort(reverse=True)  # popped from the end; Ingresses found concerned go on a heap
        pushed: list[tuple[Age, int, IngressKey]] = []
        queued = {key for _, step, key in events if step == 1}
        # many: the order is made again at the end (placing each costs a copy of the order)
        many = len(events) > max(len(self._order.fragments) // 8, 32)
        alone = not index.fragments  # a first translation: no younger Ingress is ever concerned
        old: dict[IngressKey, Fragment | None] = {}
        while events or pushed:
            if pushed and (not events or pushed[0] < events[-1]):
                age, step, key = heapq.heappop(pushed)
            else:
                age, step, key = events.pop()
            if step == 1:
                queued.discard(key)
            before = index.fragments.get(key)
            if step == 0 and (before is None or before.age != age):
                continue  # translated at its new age first, which let go of the old fragment
            if key not in old:
                old[key] = before
            if before is not None:
                index.remove(before)
                if not many:
                    self._order.unplace(before)
            now = None
            if step == 1:
                assert self._tls_options is not None
                builder = FragmentBuilder(backends, middlewares, self._tls_options, self._options, [])
                now = builder.fragment(self._specs[key], index, before.placed if before else None)
                index.add(now)
                if not many:
                    self._order.place(now)
            if alone or (
                before is not None
                and now is not None
                and (before.claims, before.names) == (now.claims, now.names)
            ):
                continue  # nothing younger saw anything else of it
            for f in (before, now):
                for other in index.sharers(f) if f is not None else ():
                    fragment = index.fragments.get(other)
                    if fragment is not None and fragment.age > age and other not in queued:
                        heapq.heappush(pushed, (fragment.age, 1, other))
                        queued.add(other)
        self._joined_again = many
        if many:
            self._order.rebuild(list(index.fragments.values()))
        return [(before, index.fragments.get(key)) for key, before in old.items()]

    def _assemble(
        self, snapshot: ClusterSnapshot, *, tls_again: bool, gateway: GatewayTranslation, changed: Changed
    ) -> tuple[DynamicConfig, list[Problem]]:
        """The version from the fragments, in age order; the TLS part is translated again only
        when `tls_again` (else it is the last one's). After a few changes, without Gateway API
        routes, it is the last version edited (FragmentOrder.edited_services, DynamicConfig.edited)."""
        order = self._order.fragments
        problems = [self._invalid[key] for key in sorted(self._invalid)]
        problems += self._middleware_problems
        problems += self._tls_option_problems
        problems += self._order.problems()  # the builder's, once each
        middlewares: dict[str, Middleware] = {}
        for middleware in chain(self._order.middlewares(), gateway.middlewares):
            middlewares.setdefault(middleware.name, middleware)
        # the full translation's Gateway part shares the Ingress builder's Report, which drops a
        # Problem it already holds (a Service's bad scheme annotation, met by both): so here
        reported = set(problems)
        problems += [p for p in self._gateway_problems if p not in reported]
        routers = self._order.routers() + gateway.routers
        if tls_again or self._tls_result is None:
            tls_part = order if self._acme_defaults else [f for f in order if f.tls]
            found: list[Problem] = []
            tls = self._tls.translate(
                snapshot,
                [f.spec for f in tls_part],
                found,
                routers if tls_part is order else list(chain.from_iterable(map(_ROUTERS, tls_part))),
                gateway.secrets,
                self._tls_options,
            )
            self._tls_result = (tls, found)
        tls, found = self._tls_result
        problems += found
        previous = self._config
        edit = None
        if (
            previous is not None
            and not self._joined_again
            and not gateway.routers
            and not self._had_gateway
            and previous.middlewares == tuple(middlewares.values())
        ):
            edit = self._order.edited_services(changed, previous.services_by_name())
        if edit is not None and previous is not None:
            index, fresh, removed = edit
            config = previous.edited(
                routers=routers,
                services=index,
                tls=tls,
                dropped=[r for before, _ in changed if before for r in before.routers],
                added=[r for _, now in changed if now for r in now.routers],
                changed_services=fresh,
                removed_services=removed,
            )
        else:
            services = list(chain.from_iterable(map(_SERVICES, order))) + list(gateway.services)
            config = DynamicConfig(
                routers=routers,
                # first use decides the order, and every use of a name is the same Service
                services=tuple(dict(zip(map(_NAME, services), services, strict=True)).values()),
                middlewares=tuple(middlewares.values()),
                tls=tls,
            )
        return config, problems

    # -- what changed, for the workers -------------------------------------------------------
    def _delta(
        self, changed: list[tuple[Fragment | None, Fragment | None]], config: DynamicConfig, *, first: bool
    ) -> Delta | None:
        """The Delta from the last translation to `config` (None for a first one), keeping the
        routers and services by name up to date."""
        routers, services = self._routers, self._services
        if first:
            for _, now in changed:
                if now is not None:
                    routers.update((r.name, r) for r in now.routers)
                    _count(self._service_users, services, now.services, 1)
            return None
        names = {r.name for pair in changed for f in pair if f for r in f.routers}
        service_names = {s.name for pair in changed for f in pair if f for s in f.services}
        router_before = {name: routers.get(name) for name in names}
        service_before = {name: services.get(name) for name in service_names}
        hosts: set[HostKey] = set()
        for before, _ in changed:
            if before is not None:
                for router in before.routers:
                    if routers.get(router.name) is router:
                        del routers[router.name]
                _count(self._service_users, services, before.services, -1)
        for _, now in changed:
            if now is not None:
                routers.update((r.name, r) for r in now.routers)
                _count(self._service_users, services, now.services, 1)
        upserted = _changed(router_before, routers)
        removed = tuple(name for name, r in router_before.items() if r is not None and name not in routers)
        for name in chain((r.name for r in upserted), removed):
            hosts.update(host_key(r) for r in (router_before[name], routers.get(name)) if r is not None)
        previous = self._config
        return Delta(
            routers=upserted,
            removed_routers=removed,
            services=_changed(service_before, services),
            removed_services=tuple(
                n for n, s in service_before.items() if s is not None and n not in services
            ),
            hosts={host: self._host_routers(host) for host in hosts},
            middlewares=previous is None or previous.middlewares != config.middlewares,
        )

    def _host_routers(self, host: HostKey) -> tuple[str, ...]:
        keys = self._index.hosts.get(host, ())
        fragments = sorted((self._index.fragments[k] for k in keys), key=attrgetter("age"))
        return tuple(r.name for f in fragments for r in f.routers if host_key(r) == host)


def _changed(before: Mapping[str, T | None], now: Mapping[str, T]) -> tuple[T, ...]:
    out = []
    for name, old in before.items():
        new = now.get(name)
        if new is not None and new is not old and new != old:
            out.append(new)
    return tuple(out)


def _count(users: dict[str, int], services: dict[str, Service], used: Iterable[Service], step: int) -> None:
    for service in used:
        n = users.get(service.name, 0) + step
        if n:
            users[service.name] = n
            services[service.name] = service if step > 0 else services[service.name]
        else:
            del users[service.name], services[service.name]
