"""explain: what passerelle does with one request, answered by the code the data plane runs.

`Explainer` compiles one configuration version as a worker does (routing/table.py's
`compile_tables` over proxy/dataplane.py's `route_of`, the entry point redirect `RedirectAll`, the
SNI table of tls/contexts.py) and asks it about a request: the entry point the URL reaches, the
certificate and TLS option its SNI gets, the route the table returns, and the answer in
proxy/dispatch.py's order (421 for a Host whose TLS option differs from the handshake's, 404, the
redirect, 503, else proxied to the service's servers). Why the other routers for the host did not
match is then told from routing/rules.py, the reference semantics the table is tested against.
Pure: no I/O; a version's Explainer is built once and asked many times.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Any
from urllib.parse import quote, urlsplit

from passerelle.api import certificates
from passerelle.api.context import Context, source_key
from passerelle.http.redirect import Redirect
from passerelle.model import DynamicConfig, PathType, Router
from passerelle.proxy.dataplane import RedirectAll, Route, Upstream, redirect_all_route, route_of
from passerelle.proxy.options import EntryPointOptions
from passerelle.routing import rules
from passerelle.routing.table import RouteTable, compile_tables
from passerelle.tls.contexts import SniTable, host_option
from passerelle.tls.options import DEFAULT, VERSIONS, TlsOptions

MAX_OTHERS = 50  # routers listed under "others"; the rest are counted
_DEFAULT_PORTS = {"http": 80, "https": 443}


class ExplainError(ValueError):
    """The question cannot be asked (a URL that is not http(s), an unknown entry point)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    url: str
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()  # (name, value); a Host header replaces the URL's
    entrypoint: str = ""  # "" : the entry point the URL's scheme and port reach


def parse_header(text: str) -> tuple[str, str]:
    """`Name: value` (or `Name:value`) -> (name, value); ExplainError without a colon."""
    name, colon, value = text.partition(":")
    if not colon or not name.strip():
        raise ExplainError(f"header {text!r} must be Name:value")
    return name.strip(), value.strip()


class Explainer:
    def __init__(
        self,
        config: DynamicConfig,
        context: Context,
        *,
        origins: Mapping[tuple[str, str, str], str] | None = None,
    ) -> None:
        self._config = config
        self._context = context
        self._origins = origins or {}
        upstreams = {s.name: Upstream(s.name) for s in config.services}
        redirects: dict[str, Redirect] = {}
        self._tables: dict[str, RouteTable[Route]] = compile_tables(
            config,
            [ep.name for ep in context.entrypoints],
            lambda router: route_of(router, config, upstreams, redirects),
        )
        self._redirect_all = {ep.name: redirect_all_route(ep) for ep in context.entrypoints}
        self._routers = {r.name: r for r in config.routers}
        self._sni: SniTable | None = None
        if context.tls is not None and any(ep.tls for ep in context.entrypoints):
            self._sni = certificates.sni_table(context.tls, config)

    def explain(self, request: Request, *, now: datetime.datetime | None = None) -> dict[str, Any]:
        now = now or datetime.datetime.now(datetime.UTC)
        url = _parse_url(request.url)
        host_header = next((v for n, v in request.headers if n.lower() == "host"), url.authority)
        method = request.method.upper() or "GET"
        out: dict[str, Any] = {
            "request": {
                "url": request.url,
                "method": method,
                "host": host_header,
                "target": url.target,
                "sni": url.sni if url.scheme == "https" else None,
            }
        }
        entry, why = self._entrypoint(url, request.entrypoint)
        if entry is None:
            out.update(entryPoint=None, tls=None, router=None, middlewares=[], service=None, others=[])
            out["result"] = {"action": "unreachable", "status": None, "detail": why}
            return out
        out["entryPoint"] = {"name": entry.name, "port": entry.port, "tls": entry.tls, "chosenBecause": why}
        if not host_header.isascii():
            raise ExplainError(
                f"Host {host_header!r} must be ASCII (an internationalised name as its xn-- form)"
            )
        host, target = host_header.encode(), url.target.encode()
        result: dict[str, Any] | None = None
        out["tls"] = None
        if entry.tls and self._sni is not None:
            out["tls"], result = self._tls(entry, url.sni, host, now)
        table = self._tables[entry.name]
        redirect_all = self._redirect_all[entry.name]
        matcher: RouteTable[Route] | RedirectAll = (
            table if redirect_all is None else RedirectAll(redirect_all, table)
        )
        route = matcher.match(host, target)
        router = self._routers.get(route.name) if route is not None else None
        out["router"] = self._router(router, route)
        out["middlewares"] = self._middlewares(router)
        out["service"] = self._service(router)
        if result is None:
            result = self._result(route, host, target, method)
        out["result"] = result
        others = self._others(entry, router, route, host_header, url.target)
        out["others"] = others[:MAX_OTHERS]
        out["othersLeftOut"] = max(0, len(others) - MAX_OTHERS)
        return out

    # -- the parts --------------------------------------------------------------------------------
    def _entrypoint(self, url: _Url, name: str) -> tuple[EntryPointOptions | None, str]:
        if name:
            entry = self._context.entrypoint(name)
            if entry is None:
                known = ", ".join(ep.name for ep in self._context.entrypoints)
                raise ExplainError(f"no entry point named {name!r} (have {known})")
            return entry, "named in the question"
        tls = url.scheme == "https"
        same = [ep for ep in self._context.entrypoints if ep.tls == tls]
        if not same:
            return None, f"no entry point {'terminates TLS' if tls else 'serves plain HTTP'}"
        on_port = [ep for ep in same if ep.port == url.port]
        if on_port:
            return on_port[0], f"it serves {url.scheme} on port {url.port}"
        return same[0], (
            f"no {url.scheme} entry point listens on port {url.port}; the first {url.scheme} one "
            "(as behind a load balancer that maps ports)"
        )

    def _tls(
        self, entry: EntryPointOptions, sni: str | None, host: bytes, now: datetime.datetime
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        assert self._sni is not None
        entry_options = entry.tls_options or DEFAULT
        cert, option = self._sni.resolve(sni, entry_options)
        if sni is None:
            how = "no SNI (the URL's host is an IP address): the default certificate"
        elif cert is self._sni.default:
            how = f"no certificate names {sni}: the default certificate"
        elif sni in cert.names:
            how = f"the certificate names {sni}"
        else:
            how = f"a wildcard of the certificate covers {sni}"
        source = next((h.source for h in self._config.tls.hosts if h.host == sni), "")
        settings = self._context.tls.options.get(option) if self._context.tls is not None else None
        info = {
            "sni": sni,
            "options": option,
            "optionsFrom": source
            or ("the host's annotation" if option != entry_options else "the entry point"),
            "option": None if settings is None else _option_summary(settings),
            "certificate": certificates.summary(cert, now),
            "certificateChosenBecause": how,
        }
        hosts = self._sni.hosts
        if (hosts.exact or hosts.wildcard) and host_option(hosts, host, entry_options) != option:
            wanted = host_option(hosts, host, entry_options)
            detail = (
                f"the handshake for {sni or 'no SNI'} used TLS option {option!r}, but Host "
                f"{host.decode('latin-1')} needs {wanted!r}: it needs a connection of its own"
            )
            return info, {"action": "misdirected", "status": 421, "detail": detail}
        return info, None

    def _router(self, router: Router | None, route: Route | None) -> dict[str, Any] | None:
        if route is None:
            return None
        if router is None:  # the entry point's own redirect
            return {
                "name": route.name,
                "rule": "every request (http.redirections)",
                "source": "static configuration",
            }
        return {
            "name": router.name,
            "rule": router.rule(),
            "source": router.source,
            "file": self._origins.get(source_key(router.source), ""),
            "entryPoints": list(router.entrypoints) or [ep.name for ep in self._context.entrypoints],
        }

    def _middlewares(self, router: Router | None) -> list[dict[str, Any]]:
        out = []
        reached = True
        for name in router.middlewares if router is not None else ():
            spec = self._config.middleware(name).spec
            out.append({"name": name, "kind": spec.kind, "spec": spec.to_dict(), "applied": reached})
            if spec.kind == "redirectScheme":
                reached = False  # the redirect answers: nothing after it runs (dataplane.route_of)
        return out

    def _service(self, router: Router | None) -> dict[str, Any] | None:
        if router is None:
            return None
        service = self._config.service(router.service)
        return {
            "name": service.name,
            "servers": [str(s) for s in service.servers],
            "scheme": service.scheme,
            "unavailable": service.unavailable,
        }

    def _result(self, route: Route | None, host: bytes, target: bytes, method: str) -> dict[str, Any]:
        if route is None:
            return {"action": "notFound", "status": 404, "detail": "no router matches this host and path"}
        if route.redirect is not None:
            answer = route.redirect.response(host, target, method.encode())
            status = int(answer[9:12])
            location = next(
                (
                    line[10:].decode("latin-1")
                    for line in answer.split(b"\r\n")
                    if line.startswith(b"Location: ")
                ),
                None,
            )
            detail = f"redirected ({status}) to {location}" if location else "the Host cannot be redirected"
            return {"action": "redirect", "status": status, "location": location, "detail": detail}
        service = self._config.service(route.upstream.service)
        if not service.servers:
            reason = service.unavailable or f"service {service.name} has no servers"
            return {"action": "unavailable", "status": 503, "detail": reason}
        servers = ", ".join(str(s) for s in service.servers)
        return {
            "action": "proxy",
            "status": None,
            "detail": f"proxied to {service.name} (round robin: {servers})",
        }

    def _others(
        self,
        entry: EntryPointOptions,
        winner: Router | None,
        route: Route | None,
        host_header: str,
        target: str,
    ) -> list[dict[str, Any]]:
        """The routers that could have been meant, and why each did not get the request."""
        host = rules.normalize_host(host_header)
        path = rules.request_path(target)
        tls_names = {ep.name for ep in self._context.entrypoints if ep.tls}
        out = []
        for router in self._config.routers:
            if winner is not None and router.name == winner.name:
                continue
            host_ok = rules.host_matches(router.host, host)
            if not host_ok and not _related(router.host, host):
                continue
            reason, detail = "", ""
            on_entry = not router.entrypoints or entry.name in router.entrypoints
            if not host_ok:
                reason, detail = "host", _host_detail(router.host or "", host)
            elif not on_entry:
                reason, detail = "entryPoint", _entry_detail(router.entrypoints, entry, tls_names)
            elif router.path is not None and not rules.path_matches(router.path, path):
                reason, detail = "path", _path_detail(router, path)
            elif route is not None and winner is None:
                reason, detail = "precedence", f"{route.name} answers every request on {entry.name} first"
            else:
                reason, detail = "precedence", _precedence_detail(router, winner)
            out.append(
                {
                    "router": router.name,
                    "rule": router.rule(),
                    "source": router.source,
                    "reason": reason,
                    "detail": detail,
                }
            )
        order = {"precedence": 0, "path": 1, "entryPoint": 2, "host": 3}
        out.sort(key=lambda o: order[o["reason"]])
        return out


def _option_summary(option: TlsOptions) -> dict[str, Any]:
    """What a TLS option asks of the handshake, in Traefik's names."""
    names = {version: name for name, version in VERSIONS.items()}
    top = option.max_version
    return {
        "minVersion": names.get(option.min_version, str(option.min_version)),
        "maxVersion": None if top is None else names.get(top, str(top)),
        "alpnProtocols": list(option.alpn),
        "clientAuthType": option.client_auth,
    }


@dataclass(frozen=True, slots=True)
class _Url:
    scheme: str
    authority: str  # host[:port] as a client sends it in Host
    port: int
    sni: str | None  # None for an IP address: clients send no SNI for those (RFC 6066 §3)
    target: str  # path and query, as sent


def _parse_url(text: str) -> _Url:
    parts = urlsplit(text.strip())
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ExplainError(f"url {text!r} must be an http:// or https:// URL")
    hostname = parts.hostname
    if not hostname:
        raise ExplainError(f"url {text!r} has no host")
    try:
        port = parts.port or _DEFAULT_PORTS[scheme]
    except ValueError:
        raise ExplainError(f"url {text!r} has an invalid port") from None
    authority = parts.netloc.rpartition("@")[2]
    if not authority.isascii():  # an internationalised name goes on the wire as its A-label
        try:
            ascii_name = hostname.encode("idna").decode()
        except UnicodeError:
            raise ExplainError(f"url {text!r} has a host that is not a valid name") from None
        authority = ascii_name + (f":{parts.port}" if parts.port else "")
        hostname = ascii_name
    try:
        ipaddress.ip_address(hostname)
        sni = None
    except ValueError:
        sni = hostname.lower().rstrip(".")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    # As a client sends it: what is not printable ASCII percent-encoded (UTF-8), the rest as typed.
    target = "".join(c if " " < c < "\x7f" else quote(c, safe="") for c in target)
    return _Url(scheme=scheme, authority=authority, port=port, sni=sni, target=target)


def _related(rule_host: str | None, host: str) -> bool:
    """A router for a host the user may have meant: a wildcard a label off, the parent or a child
    of the host, or a name spelt almost the same (one or two characters off)."""
    if rule_host is None:
        return False
    base = rule_host.removeprefix("*.")
    if host.endswith("." + base) or base.endswith("." + host):
        return True
    return abs(len(base) - len(host)) <= 2 and SequenceMatcher(None, base, host).ratio() >= 0.9


def _host_detail(rule_host: str, host: str) -> str:
    if rule_host.startswith("*."):
        return f"{rule_host} matches exactly one label before .{rule_host[2:]}; {host} does not"
    return f"the router is for host {rule_host}, the request for {host}"


def _entry_detail(entrypoints: Sequence[str], entry: EntryPointOptions, tls_names: set[str]) -> str:
    where = ", ".join(entrypoints)
    detail = f"the router is on {where}, the request arrives on {entry.name}"
    if all(name in tls_names for name in entrypoints) and not entry.tls:
        detail += " (a TLS router: its Ingress has spec.tls or router.tls; this request is plain HTTP)"
    elif not any(name in tls_names for name in entrypoints) and entry.tls:
        detail += (
            " (its Ingress has no spec.tls, so it is served on plain entry points; this request is HTTPS)"
        )
    return detail


def _path_detail(router: Router, path: str) -> str:
    assert router.path is not None
    if router.path.type is PathType.EXACT:
        return f"path {path} is not exactly {router.path.value}"
    prefix = router.path.value
    return f"path {path} is not {prefix} nor under {prefix.rstrip('/')}/ (prefixes match whole segments)"


def _precedence_detail(router: Router, winner: Router | None) -> str:
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
