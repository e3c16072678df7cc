"""One configuration version as the JSON API shows it (pure): Traefik's shapes where they fit.

`VersionView` holds an applied version (what every worker serves), the newest translation's
problems (which may be newer: problems change without the configuration changing) and the
static `Context`, and renders each list once, on first use. Routers, services and middlewares
carry Traefik's fields (`name`, `provider`, `status`, `using`, `usedBy`, `serverStatus`, the
middleware's spec under its kind) plus passerelle's (`source`, `file`, `problems`, `unavailable`,
`serverStatusSource`); docs/api.md names every field. `serverStatus` is "UP" as Traefik's for every
server listed, and `serverStatusSource` says what that rests on: Kubernetes listed the endpoint
ready; passerelle runs no health checks of its own.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

from passerelle.api import certificates
from passerelle.api.context import Context, source_key
from passerelle.api.explain import Explainer
from passerelle.model import DynamicConfig, Problem, Router, Severity
from passerelle.tls.contexts import host_option
from passerelle.tls.options import DEFAULT

T = TypeVar("T")
Origins = Mapping[tuple[str, str, str], str]
DEFAULT_PER_PAGE = 100  # Traefik's
# What a server's "UP" rests on: it is listed ready by Kubernetes (EndpointSlice conditions.ready,
# or an Endpoints object's addresses). No active health checks: a ready pod that fails is still UP.
SERVER_STATUS_SOURCE = "kubernetes-ready"


class PageError(ValueError):
    """A paging parameter that is not a positive number."""


def page(
    items: Sequence[dict[str, Any]],
    *,
    search: str = "",
    status: str = "",
    number: str = "",
    per_page: str = "",
) -> tuple[list[dict[str, Any]], int]:
    """Traefik's paging: `search` (in name, rule or source), `status`, 1-based `page` of `per_page`;
    returns the page and the next page's number (1 after the last, as Traefik's X-Next-Page)."""
    try:
        n = int(number or 1)
        size = int(per_page or DEFAULT_PER_PAGE)
    except ValueError:
        raise PageError("page and per_page must be numbers") from None
    if n < 1 or size < 1:
        raise PageError("page and per_page must be at least 1")
    needle = search.lower()
    chosen = [
        item
        for item in items
        if (not status or item.get("status") == status)
        and (
            not needle
            or any(needle in str(item.get(key, "")).lower() for key in ("name", "rule", "source", "host"))
        )
    ]
    start = (n - 1) * size
    return chosen[start : start + size], (n + 1 if start + size < len(chosen) else 1)


def problem_json(problem: Problem, origins: Origins) -> dict[str, Any]:
    ref = problem.ref
    return {
        "object": str(ref),
        "kind": ref.kind,
        "namespace": ref.namespace,
        "name": ref.name,
        "severity": str(problem.severity),
        "message": problem.message,
        "file": origins.get((ref.kind, ref.namespace, ref.name), ""),
    }


class VersionView:
    def __init__(
        self,
        *,
        number: int,
        config: DynamicConfig,
        problems: Sequence[Problem],
        origins: Origins,
        context: Context,
        now: datetime.datetime | None = None,
    ) -> None:
        self.number = number
        self.config = config
        self._problems = problems
        self._origins = origins
        self.context = context
        self._now = now
        self._cache: dict[str, Any] = {}
        self._by_source: dict[str, list[Problem]] = {}
        for problem in problems:
            self._by_source.setdefault(str(problem.ref), []).append(problem)

    def _once(self, name: str, make: Callable[[], T]) -> T:
        """`make()`, computed on the first call for `name` and kept (a version never changes)."""
        if name not in self._cache:
            self._cache[name] = make()
        return cast(T, self._cache[name])

    @property
    def explainer(self) -> Explainer:
        return self._once("explainer", lambda: Explainer(self.config, self.context, origins=self._origins))

    def now(self) -> datetime.datetime:
        return self._now or datetime.datetime.now(datetime.UTC)

    # -- lists ------------------------------------------------------------------------------------
    def problems(self) -> list[dict[str, Any]]:
        return self._once("problems", lambda: [problem_json(p, self._origins) for p in self._problems])

    def routers(self) -> list[dict[str, Any]]:
        return self._once("routers", lambda: [self._router(r) for r in self.config.routers])

    def services(self) -> list[dict[str, Any]]:
        return self._once("services", self._services)

    def middlewares(self) -> list[dict[str, Any]]:
        return self._once("middlewares", self._middlewares)

    def certificates(self) -> list[dict[str, Any]]:
        tls = self.context.tls
        if tls is None:
            return []
        return self._once(
            "certificates",
            lambda: certificates.listing(
                tls,
                self.config,
                [ep.name for ep in self.context.entrypoints if ep.tls],
                self.context.tls_entry_options(),
                self.now(),
            ),
        )

    def entrypoints(self) -> list[dict[str, Any]]:
        out = []
        for ep in self.context.entrypoints:
            redirect = None
            if ep.redirect_scheme:
                redirect = {
                    "scheme": ep.redirect_scheme,
                    "port": ep.redirect_port,
                    "permanent": ep.redirect_permanent,
                }
            host = f"[{ep.host}]" if ":" in ep.host else ep.host
            out.append(
                {
                    "name": ep.name,
                    "address": f"{host}:{ep.port}",
                    "tls": {"options": ep.tls_options or DEFAULT} if ep.tls else None,
                    "redirect": redirect,
                }
            )
        return out

    def overview(self) -> dict[str, Any]:
        def counts(items: list[dict[str, Any]]) -> dict[str, int]:
            return {
                "total": len(items),
                "warnings": sum(i["status"] == "warning" for i in items),
                "errors": sum(i["status"] == "disabled" for i in items),
            }

        certs = self.certificates()
        problems = self.problems()
        return {
            "http": {
                "routers": counts(self.routers()),
                "services": counts(self.services()),
                "middlewares": counts(self.middlewares()),
            },
            "tls": {
                "certificates": {
                    "total": len(certs),
                    "expiring": sum(c.get("status") == "expiring" for c in certs),
                    "expired": sum(c.get("status") == "expired" for c in certs),
                }
            },
            "problems": {
                "errors": sum(p["severity"] == str(Severity.ERROR) for p in problems),
                "warnings": sum(p["severity"] == str(Severity.WARNING) for p in problems),
            },
            "entryPoints": [ep["name"] for ep in self.entrypoints()],
            "providers": [self.context.provider],
            "version": self.number,
        }

    # -- items ------------------------------------------------------------------------------------
    def _router(self, router: Router) -> dict[str, Any]:
        using = list(router.entrypoints) or [ep.name for ep in self.context.entrypoints]
        problems = [
            {"severity": str(p.severity), "message": p.message}
            # a route's problems on each of its routers: "HTTPRoute ns/name rule 2" is "HTTPRoute ns/name"'s
            for p in self._by_source.get(router.source.partition(" rule ")[0], ())
        ]
        service = self.config.service(router.service)
        if (
            not service.servers
            and not service.weighted
            and not any(service.unavailable in p["message"] for p in problems)
        ):
            problems.append({"severity": "warning", "message": f"{service.status}: {service.unavailable}"})
        out: dict[str, Any] = {
            "name": router.name,
            "provider": self.context.provider,
            "entryPoints": using,
            "using": using,
            "rule": router.rule(),
            "host": router.host,
            "path": None
            if router.path is None
            else {"type": str(router.path.type), "value": router.path.value},
            "service": router.service,
            "middlewares": list(router.middlewares),
            "status": "warning" if problems else "enabled",
            "problems": problems,
            "source": router.source,
            "file": self._origins.get(source_key(router.source), ""),
        }
        tls_entries = [ep for ep in self.context.entrypoints if ep.tls and ep.name in using]
        if tls_entries:
            out["tls"] = {"options": self._host_option(router.host, tls_entries[0].tls_options or DEFAULT)}
        return out

    def _host_option(self, host: str | None, entry_options: str) -> str:
        tls = self.context.tls
        if host is None or tls is None:
            return entry_options
        hosts = self._once("sni_hosts", lambda: certificates.sni_table(tls, self.config).hosts)
        return host_option(hosts, host.encode(), entry_options)

    def _services(self) -> list[dict[str, Any]]:
        used: dict[str, list[str]] = {}
        for router in self.config.routers:
            used.setdefault(router.service, []).append(router.name)
        out = []
        for service in self.config.services:
            if service.weighted:  # Traefik's shape for a weighted service
                out.append(
                    {
                        "name": service.name,
                        "provider": self.context.provider,
                        "type": "weighted",
                        "status": "enabled",
                        "usedBy": used.get(service.name, []),
                        "weighted": {
                            "services": [{"name": w.service, "weight": w.weight} for w in service.weighted]
                        },
                        "unavailable": service.unavailable,
                    }
                )
                continue
            urls = [f"{service.scheme}://{server}" for server in service.servers]  # h2c://, as Traefik
            out.append(
                {
                    "name": service.name,
                    "provider": self.context.provider,
                    "type": "loadbalancer",
                    "status": "enabled" if service.servers else "disabled",
                    "usedBy": used.get(service.name, []),
                    "loadBalancer": {"servers": [{"url": url} for url in urls]},
                    "serverStatus": dict.fromkeys(urls, "UP"),  # Traefik's field and value
                    "serverStatusSource": SERVER_STATUS_SOURCE,
                    "unavailable": service.unavailable,
                }
            )
        return out

    def _middlewares(self) -> list[dict[str, Any]]:
        used: dict[str, list[str]] = {}
        for router in self.config.routers:
            for name in router.middlewares:
                used.setdefault(name, []).append(router.name)
        return [
            {
                "name": m.name,
                "provider": self.context.provider,
                "type": m.spec.kind.lower(),
                m.spec.kind: m.spec.to_dict(),
                "status": "enabled",
                "usedBy": used.get(m.name, []),
            }
            for m in self.config.middlewares
        ]
