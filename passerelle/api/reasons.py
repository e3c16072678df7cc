"""Why the other routers a request may have been meant for did not get it (pure), for explain.

`NearMisses` indexes a version's routers by host once, so a question looks at the routers that
concern its host, not at every router: those whose rule matches the host (no Host rule, the same
host, a wildcard one label up), the parents and children of the host (`example.com` and
`shop.example.com` for each other), and names spelt almost the same (one or two characters off),
looked for among the routers that share the host's first label or the rest of its name, at most
`MAX_SPELLING_CHECKS` comparisons a question. Each is then told from routing/rules.py, the
reference semantics the route table is tested against: the host, the entry point, the path, or
another router first (precedence).
"""

from __future__ import annotations

from collections.abc import Sequence
from difflib import SequenceMatcher
from typing import Any

from passerelle.model import PathType, Router
from passerelle.proxy.options import EntryPointOptions
from passerelle.routing import rules

MAX_SPELLING_CHECKS = 200  # near-spelling comparisons (SequenceMatcher) per question, at most
_ORDER = {"precedence": 0, "path": 1, "entryPoint": 2, "host": 3}


class NearMisses:
    def __init__(self, routers: Sequence[Router]) -> None:
        self._routers = routers
        self._hostless: list[int] = []
        self._by_base: dict[str, list[int]] = {}  # the host without a wildcard's "*."
        self._under: dict[str, list[int]] = {}  # every name a router's host is under
        self._by_first: dict[str, list[int]] = {}  # the host's first label
        self._by_rest: dict[str, list[int]] = {}  # the host after its first label
        for i, router in enumerate(routers):
            if router.host is None:
                self._hostless.append(i)
                continue
            base = router.host.removeprefix("*.")
            self._by_base.setdefault(base, []).append(i)
            first, _, rest = base.partition(".")
            self._by_first.setdefault(first, []).append(i)
            self._by_rest.setdefault(rest, []).append(i)
            while rest:
                self._under.setdefault(rest, []).append(i)
                rest = rest.partition(".")[2]

    def candidates(self, host: str) -> list[Router]:
        """The routers that match `host` or are for a host that may have been meant, in order."""
        found = set(self._hostless)
        found.update(self._by_base.get(host, ()))  # the host, and a wildcard for its children
        found.update(self._under.get(host, ()))  # children of the host
        suffix = host.partition(".")[2]
        while suffix:  # the host's parents, and wildcards for them
            found.update(self._by_base.get(suffix, ()))
            suffix = suffix.partition(".")[2]
        first, _, rest = host.partition(".")
        checks = 0
        for i in (*self._by_first.get(first, ()), *self._by_rest.get(rest, ())):
            if i in found:
                continue
            base = (self._routers[i].host or "").removeprefix("*.")
            if abs(len(base) - len(host)) > 2:
                continue
            if checks == MAX_SPELLING_CHECKS:
                break
            checks += 1
            if SequenceMatcher(None, base, host).ratio() >= 0.9:
                found.add(i)
        return [self._routers[i] for i in sorted(found)]

    def others(
        self,
        entry: EntryPointOptions,
        tls_names: set[str],
        winner: Router | None,
        route_name: str | None,
        host_header: str,
        target: str,
    ) -> list[dict[str, Any]]:
        """The routers that could have been meant, and why each did not get the request: nearest
        misses first (precedence, then path, entry point, host)."""
        host = rules.normalize_host(host_header)
        path = rules.request_path(target)
        out = []
        for router in self.candidates(host):
            if winner is not None and router.name == winner.name:
                continue
            on_entry = not router.entrypoints or entry.name in router.entrypoints
            if not rules.host_matches(router.host, host):
                reason, detail = "host", host_detail(router.host or "", host)
            elif not on_entry:
                reason, detail = "entryPoint", entry_detail(router.entrypoints, entry, tls_names)
            elif router.path is not None and not rules.path_matches(router.path, path):
                reason, detail = "path", path_detail(router, path)
            elif route_name is not None and winner is None:
                reason, detail = "precedence", f"{route_name} answers every request on {entry.name} first"
            else:
                reason, detail = "precedence", precedence_detail(router, winner)
            out.append(
                {
                    "router": router.name,
                    "rule": router.rule(),
                    "source": router.source,
                    "reason": reason,
                    "detail": detail,
                }
            )
        out.sort(key=lambda o: _ORDER[o["reason"]])
        return out


def host_detail(rule_host: str, host: str) -> str:
    if rule_host.startswith("*."):
        return f"{rule_host} matches exactly one label before .{rule_host[2:]}; {host} does not"
    return f"the router is for host {rule_host}, the request for {host}"


def entry_detail(entrypoints: Sequence[str], entry: EntryPointOptions, tls_names: set[str]) -> str:
    where = ", ".join(entrypoints)
    detail = f"the router is on {where}, the request arrives on {entry.name}"
    if all(name in tls_names for name in entrypoints) and not entry.tls:
        detail += " (a TLS router: its Ingress has spec.tls or router.tls; this request is plain HTTP)"
    elif not any(name in tls_names for name in entrypoints) and entry.tls:
        detail += (
            " (its Ingress has no spec.tls, so it is served on plain entry points; this request is HTTPS)"
        )
    return detail


def path_detail(router: Router, path: str) -> str:
    assert router.path is not None
    if router.path.type is PathType.EXACT:
        return f"path {path} is not exactly {router.path.value}"
    prefix = router.path.value
    return f"path {path} is not {prefix} nor under {prefix.rstrip('/')}/ (prefixes match whole segments)"


def precedence_detail(router: Router, winner: Router | None) -> str:
    if winner is None:
        return "it matches, yet no route was chosen"
    if (router.host, router.path) == (winner.host, winner.path):
        return f"{winner.name} claims the same host and path, and was first"
    if router.path is None and router.host is None:
        return f"a default backend answers only what no rule matches; {winner.name} matches"
    if (router.host is None) != (winner.host is None) or (router.host or "").startswith("*.") != (
        winner.host or ""
    ).startswith("*."):
        return (
            f"{winner.name} has a more specific host ({winner.host or 'any'} before {router.host or 'any'})"
        )
    if winner.path is not None and winner.path.type is PathType.EXACT:
        return f"{winner.name} matches the exact path, which goes before prefixes"
    return f"{winner.name} has a longer matching prefix ({winner.path.value if winner.path else '/'})"
