"""Middleware objects of a snapshot, and the `router.middlewares` references that name them.

Traefik names a Middleware object `<namespace>-<name>@kubernetescrd`, and an Ingress refers to it
by that name in `traefik.ingress.kubernetes.io/router.middlewares` (a reference without `@` is
looked up in the Ingress provider itself, which defines none). A reference to a middleware that
does not exist, or is invalid, makes Traefik refuse the router, so its requests get 404
(`pkg/server/middleware/middlewares.go`: "middleware does not exist"): passerelle does the same
and says so in an error Problem. A middleware of a kind passerelle does not implement yet (or a
`headers` with options it does not do yet) is reported and left out of the chain; the routers are
served without it. A `chain` Middleware stands for the middlewares it lists (names in its own
namespace, or full references), expanded where a router names it; a chain that comes back to
itself, at any depth, is an error. Two objects with the
same reference (`a-b/c` and `a/b-c`, or one name under both API groups) are a Problem on the one
not used.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from passerelle.kube.objects import timestamp
from passerelle.kube.snapshot import ClusterSnapshot, Object, key_of
from passerelle.middlewares.base import MIDDLEWARE_API_VERSIONS, Unsupported, parse_middleware
from passerelle.model import Middleware, ObjectRef, Problem

PROVIDER = "@kubernetescrd"
LEGACY_GROUP = "traefik.containo.us"  # Traefik < 3; qualified in snapshot keys (snapshot.py)


@dataclass(frozen=True, slots=True, kw_only=True)
class Resolved:
    middlewares: tuple[Middleware, ...] = ()
    warnings: tuple[str, ...] = ()
    error: str = ""  # non-empty: the routers must not be served


class MiddlewareIndex:
    """Every Middleware object, parsed once per snapshot; invalid ones are Problems on the object."""

    def __init__(self, snapshot: ClusterSnapshot, problems: list[Problem]) -> None:
        self._found: dict[str, Middleware | Chain | Unsupported | str] = {}  # str: why it is invalid
        # `<ns>-<name>` is ambiguous (`a-b/c` and `a/b-c`), and an object may exist under both API
        # groups: one object per reference, the others are Problems. The winner is the same
        # whatever the order of the snapshot: traefik.io first, then the oldest, then by name.
        claims: dict[str, list[tuple[tuple[bool, str, str, str], Object]]] = {}
        for obj in snapshot.of_kind("Middleware") + snapshot.of_kind(f"Middleware.{LEGACY_GROUP}"):
            if obj.get("apiVersion") not in MIDDLEWARE_API_VERSIONS:
                continue  # some other project's Middleware kind
            _, namespace, name = key_of(obj)
            legacy = str(obj.get("apiVersion")).startswith(LEGACY_GROUP + "/")
            created = timestamp((obj.get("metadata") or {}).get("creationTimestamp")) or "~"
            claims.setdefault(f"{namespace}-{name}{PROVIDER}", []).append(
                ((legacy, created, namespace, name), obj)
            )
        for full, objs in claims.items():
            objs.sort(key=lambda claim: claim[0])
            winner = objs[0][1]
            for _, loser in objs[1:]:
                kind, namespace, name = key_of(loser)
                problems.append(
                    Problem(
                        ref=ObjectRef(kind=kind, namespace=namespace, name=name),
                        message=f"not used: {full} names {_describe(winner)} too, which wins "
                        "(traefik.io before traefik.containo.us, then the oldest, then by namespace/name)",
                    )
                )
            self._add(full, winner, problems)

    def _add(self, full: str, obj: Object, problems: list[Problem]) -> None:
        kind, namespace, name = key_of(obj)
        try:
            spec = obj.get("spec")
            if isinstance(spec, Mapping) and set(spec) == {"chain"}:
                self._found[full] = _chain(spec["chain"], namespace)
                return
            parsed = parse_middleware(spec)
        except ValueError as e:
            problems.append(
                Problem(ref=ObjectRef(kind=kind, namespace=namespace, name=name), message=f"invalid: {e}")
            )
            self._found[full] = str(e)
            return
        self._found[full] = parsed if isinstance(parsed, Unsupported) else Middleware(name=full, spec=parsed)

    def resolve(self, refs: Sequence[str], within: tuple[str, ...] = ()) -> Resolved:
        """The middlewares `refs` name, in order, chains expanded (`within`: the chains being
        expanded, outermost first, to catch a cycle)."""
        chain: list[Middleware] = []
        warnings: list[str] = []
        for ref in refs:
            found = self._found.get(ref)
            if isinstance(found, Chain):
                if ref in within:
                    cycle = " -> ".join((*within[within.index(ref) :], ref))
                    return Resolved(error=f"router.middlewares: middleware chain {cycle} is a cycle")
                inner = self.resolve(found.refs, (*within, ref))
                if inner.error:
                    return inner
                chain.extend(inner.middlewares)
                warnings.extend(inner.warnings)
                continue
            if found is None:
                hint = (
                    ""
                    if ref.endswith(PROVIDER)
                    else f" (a Middleware object is named <namespace>-<name>{PROVIDER})"
                )
                return Resolved(error=f"router.middlewares: middleware {ref} does not exist{hint}")
            if isinstance(found, str):
                return Resolved(error=f"router.middlewares: middleware {ref} is invalid: {found}")
            if isinstance(found, Unsupported):
                what = "not supported yet" if found.known else "unknown"
                if found.options:
                    what = f"its {', '.join(found.options)} not supported yet"
                warnings.append(
                    f"router.middlewares: {ref} is a `{found.kind}` middleware ({what}); served without it"
                )
                continue
            chain.append(found)
        return Resolved(middlewares=tuple(chain), warnings=tuple(warnings))


@dataclass(frozen=True, slots=True)
class Chain:
    """A `chain` Middleware: the references it stands for, resolved when a router names it."""

    refs: tuple[str, ...]


def _chain(body: Any, namespace: str) -> Chain:
    """`spec.chain`: `middlewares: [{name: n}]`, each a Middleware of the chain's namespace, or a
    `<namespace>-<name>@kubernetescrd` reference (Traefik's kubernetescrd provider, makeID)."""
    items = body.get("middlewares") if isinstance(body, Mapping) else None
    if not isinstance(items, list) or not items:
        raise ValueError("spec.chain: `middlewares` must list the middlewares of the chain ({name: ...})")
    refs = []
    for item in items:
        name = item.get("name") if isinstance(item, Mapping) else None
        if not isinstance(name, str) or not name:
            raise ValueError(f"spec.chain: {item!r} must be {{name: <middleware>}}")
        refs.append(name if name.endswith(PROVIDER) else f"{namespace}-{name}{PROVIDER}")
    return Chain(tuple(refs))


def _describe(obj: Object) -> str:
    _, namespace, name = key_of(obj)
    return f"Middleware {namespace}/{name} ({obj.get('apiVersion')})"
