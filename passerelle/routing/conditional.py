"""The route table of an entry point that serves Gateway API routers (pure, per request).

An entry point with only Ingress routers keeps table.py's `RouteTable`, whose lookup never looks
past Host and path. Once a Gateway API router is placed on an entry point, its table is a
`ConditionalTable`, which matches the Gateway API's way (HTTPRouteRule, "precedence"):
- Host groups in order of specificity: the exact host, then wildcard suffixes longest first
  (`*.example.com` matches any number of labels for a Gateway router, exactly one for an Ingress
  one, as each spec says), then the routers without a host, then the default backend.
- A host group that is a listener's hostname ends the search (listener isolation): a request for
  `a.foo.example.com` that the `*.foo.example.com` listener takes never falls through to the
  routers of a `*.example.com` listener, even when none of its own match.
- Within a group, the Exact path, then path prefixes longest first (element-wise, as Ingress);
  at each path, candidates with a method first, then more header conditions, then more query
  conditions, then in translation order (oldest route, then namespace/name, then rule order).
  A candidate whose conditions fail lets the next one, or a shorter path, match.
Request headers and query parameters are read from the head only when a candidate asks for them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar
from urllib.parse import unquote_to_bytes

from passerelle.model import PathType, RequestMatch, Router
from passerelle.routing.table import _absolute_form_path

T = TypeVar("T")
_CRLF = b"\r\n"


class Condition:
    """A RequestMatch in bytes: method, (lower-case name, value) headers, (name, value) query."""

    __slots__ = ("method", "headers", "query")

    def __init__(self, match: RequestMatch) -> None:
        self.method = match.method.encode() if match.method is not None else None
        self.headers = tuple((n.encode(), v.encode()) for n, v in match.headers)
        self.query = tuple((n.encode(), v.encode()) for n, v in match.query)

    def holds(self, request: Request) -> bool:
        if self.method is not None and request.method != self.method:
            return False
        if self.headers:
            fields = request.fields()
            for name, value in self.headers:
                if value not in fields.get(name, ()):
                    return False
        if self.query:
            params = request.params()
            for name, value in self.query:
                # The first value of a repeated parameter (the Gateway API leaves it to the implementation).
                found = params.get(name)
                if found is None or found[0] != value:
                    return False
        return True


class Request:
    """What conditions read of one request, parsed on first use."""

    __slots__ = ("method", "target", "head", "_fields", "_params")

    def __init__(self, method: bytes, target: bytes, head: bytes) -> None:
        self.method = method
        self.target = target
        self.head = head
        self._fields: dict[bytes, list[bytes]] | None = None
        self._params: dict[bytes, list[bytes]] | None = None

    def fields(self) -> dict[bytes, list[bytes]]:
        if self._fields is None:
            self._fields = {}
            for line in self.head.split(_CRLF)[1:]:
                name, colon, value = line.partition(b":")
                if colon:
                    self._fields.setdefault(name.strip().lower(), []).append(value.strip())
        return self._fields

    def params(self) -> dict[bytes, list[bytes]]:
        if self._params is None:
            self._params = {}
            query = self.target.partition(b"?")[2].partition(b"#")[0]
            for part in query.split(b"&") if query else ():
                name, _, value = part.partition(b"=")
                self._params.setdefault(_unquote(name), []).append(_unquote(value))
        return self._params


def _unquote(raw: bytes) -> bytes:
    if b"%" not in raw and b"+" not in raw:
        return raw
    return unquote_to_bytes(raw.replace(b"+", b" "))


Candidates = list[tuple[tuple[int, bool, int, int], Condition | None, T]]  # (sort key, condition, target)


class HostGroup(Generic[T]):
    """The routers of one host key: candidates per Exact path and per path prefix."""

    __slots__ = ("exact", "prefix", "final")

    def __init__(self) -> None:
        self.exact: dict[bytes, Candidates[T]] = {}
        self.prefix: dict[bytes, Candidates[T]] = {}  # keys without trailing slash; b"" is "/"
        self.final = False  # a listener's hostname: the search ends here (listener isolation)

    def match(self, path: bytes, request: Request) -> T | None:
        found = self.exact.get(path)
        if found is not None:
            chosen = _first(found, request)
            if chosen is not None:
                return chosen
        prefix = self.prefix
        if prefix:
            candidate = path
            while True:
                found = prefix.get(candidate)
                if found is not None:
                    chosen = _first(found, request)
                    if chosen is not None:
                        return chosen
                if not candidate:
                    return None
                candidate = candidate.rpartition(b"/")[0]
        return None


def _first(candidates: Candidates[T], request: Request) -> T | None:
    for _, condition, target in candidates:
        if condition is None or condition.holds(request):
            return target
    return None


class ConditionalTable(Generic[T]):
    """Exact host, wildcard hosts most specific first, host-less routers, default backend."""

    __slots__ = ("hosts", "wildcards", "deep", "any_host", "default")
    plain = False  # dispatch calls match_request() with the method and head (table.RouteTable: True)

    def __init__(self) -> None:
        self.hosts: dict[bytes, HostGroup[T]] = {}
        self.wildcards: dict[bytes, HostGroup[T]] = {}  # Ingress `*.suffix`: one label
        self.deep: dict[bytes, HostGroup[T]] = {}  # Gateway `*.suffix`: one or more labels
        self.any_host: HostGroup[T] | None = None
        self.default: T | None = None

    def match(self, host: bytes, target: bytes) -> T | None:
        """A lookup without the request's head (the ACME challenge check): GET, no header fields."""
        return self.match_request(host, target, b"GET", b"")

    def match_request(self, host: bytes, target: bytes, method: bytes, head: bytes) -> T | None:
        path = target.partition(b"?")[0] if target[:1] == b"/" else _absolute_form_path(target)
        if host[:1] == b"[":
            host = host[: host.find(b"]") + 1].lower()
        else:
            host = host.partition(b":")[0].lower()
        request = Request(method, target, head)
        group = self.hosts.get(host)
        if group is not None:
            found = group.match(path, request)
            if found is not None or group.final:
                return found
        dot = host.find(b".")
        if dot > 0 and (self.wildcards or self.deep):
            suffix = host[dot + 1 :]
            group = self.wildcards.get(suffix)
            if group is not None:
                found = group.match(path, request)
                if found is not None or group.final:
                    return found
            deep = self.deep
            while deep:
                group = deep.get(suffix)
                if group is not None:
                    found = group.match(path, request)
                    if found is not None or group.final:
                        return found
                dot = suffix.find(b".")
                if dot < 0:
                    break
                suffix = suffix[dot + 1 :]
        if self.any_host is not None:
            found = self.any_host.match(path, request)
            if found is not None or self.any_host.final:
                return found
        return self.default

    def add(self, router: Router, target: T) -> None:
        if router.listener is not None:
            self._group(router.listener or None, deep=True).final = True
        if router.host is None and router.path is None and router.conditions is None:
            if self.default is None:
                self.default = target
            return
        group = self._group(router.host, deep=router.listener is not None)
        condition = None if router.conditions is None else Condition(router.conditions)
        rank = (False, 0, 0) if router.conditions is None else router.conditions.rank()
        if router.path is None:
            slot, key, length = group.prefix, b"", 1
        elif router.path.type is PathType.EXACT:
            slot, key, length = group.exact, router.path.value.encode(), len(router.path.value)
        else:
            slot, key, length = group.prefix, router.path.value.rstrip("/").encode(), len(router.path.value)
        candidates = slot.setdefault(key, [])
        if condition is None and any(c is None for _, c, _ in candidates):
            return  # an earlier router without conditions already takes every request here
        sort_key = (-length, not rank[0], -rank[1], -rank[2])
        candidates.append((sort_key, condition, target))
        candidates.sort(key=lambda c: c[0])  # stable: translation order breaks ties

    def _group(self, host: str | None, *, deep: bool) -> HostGroup[T]:
        if host is None:
            if self.any_host is None:
                self.any_host = HostGroup()
            return self.any_host
        if host.startswith("*."):
            table = self.deep if deep else self.wildcards
            return table.setdefault(host[2:].lower().encode(), HostGroup())
        return self.hosts.setdefault(host.lower().encode(), HostGroup())


def conditional_entrypoints(routers: Iterable[Router], names: Iterable[str]) -> frozenset[str]:
    """The entry points that need a ConditionalTable: those with a Gateway router or request conditions."""
    every = tuple(names)
    return frozenset(
        name
        for r in routers
        if r.listener is not None or r.conditions is not None
        for name in (r.entrypoints or every)
    )
