"""explain: what passerelle does with one request, answered by the code the data plane runs.

`Explainer` compiles one configuration version as a worker does (routing/table.py's
`compile_tables` over proxy/dataplane.py's `route_of`, the entry point redirect `RedirectAll`, the
SNI table of tls/contexts.py) and asks it about a request: the entry point the URL reaches, the
certificate and TLS option its SNI gets, the route the table returns, and the answer that
proxy/dispatch.py's own `decide` gives (421 for a Host whose TLS option differs from the
handshake's, 404, the redirect, 503, else proxied to the service's servers). Why the other routers
for the host did not match is told by reasons.py. Pure: no I/O; a version's Explainer is built
once (the API builds it in a thread: route tables of 10,000 routers take a while) and asked many
times.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote, urlsplit

from passerelle.api import certificates
from passerelle.api.context import Context, source_key
from passerelle.api.reasons import NearMisses
from passerelle.http.redirect import BAD_HOST, Redirect
from passerelle.middlewares.headers import HeadEdit, edit_head, split_head
from passerelle.model import DynamicConfig, Router, Service
from passerelle.proxy import dispatch
from passerelle.proxy.dataplane import RedirectAll, Route, Upstream, redirect_all_route, route_of
from passerelle.proxy.options import EntryPointOptions
from passerelle.routing.conditional import ConditionalTable
from passerelle.routing.table import Table, compile_tables
from passerelle.tls.contexts import SniTable, host_option
from passerelle.tls.options import DEFAULT, VERSIONS, TlsOptions

if TYPE_CHECKING:
    from passerelle.proxy.upstream import Pool

MAX_OTHERS = 50  # routers listed under "others"; the rest are counted
_DEFAULT_PORTS = {"http": 80, "https": 443}


class ExplainError(ValueError):
    """The question cannot be asked (a URL that is not http(s), an unknown entry point)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Question:
    """What is asked: a request, as a client would send it."""

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
        upstreams = {s.name: _listed(s) for s in config.services}
        redirects: dict[str, Redirect] = {}
        self._tables: dict[str, Table[Route]] = compile_tables(
            config,
            [ep.name for ep in context.entrypoints],
            lambda router: route_of(router, config, upstreams, redirects),
        )
        self._redirect_all = {ep.name: redirect_all_route(ep) for ep in context.entrypoints}
        self._routers = {r.name: r for r in config.routers}
        self._near = NearMisses(config.routers)
        self._tls_names = {ep.name for ep in context.entrypoints if ep.tls}
        self._sni: SniTable | None = None
        if context.tls is not None and any(ep.tls for ep in context.entrypoints):
            self._sni = certificates.sni_table(context.tls, config)

    def explain(self, request: Question, *, now: datetime.datetime | None = None) -> dict[str, Any]:
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
        misdirected: str | None = None
        out["tls"] = None
        if entry.tls and self._sni is not None:
            out["tls"], misdirected = self._tls(entry, url.sni, host, now)
        table = self._tables[entry.name]
        redirect_all = self._redirect_all[entry.name]
        head = _head(method, url.target, host_header, request.headers)
        edits: tuple[HeadEdit, ...] = ()
        if redirect_all is not None:
            route = RedirectAll(redirect_all, table).match(host, target)
        elif isinstance(table, ConditionalTable):  # Gateway API routers: the method and headers count
            route = table.match_request(host, target, method.encode(), head)
            if route is not None:
                edits = route.edits
                if route.split is not None:  # one of a weighted split's parts, in turn
                    part = route.split.pick()
                    if part is not None:
                        route, edits = part, (*edits, *part.edits)
        else:
            route = table.match(host, target)
            edits = route.edits if route is not None else ()
        router = self._routers.get(route.name) if route is not None else None
        out["router"] = self._router(router, route)
        out["middlewares"] = self._middlewares(router)
        out["service"] = self._service(router)
        out["result"] = self._result(route, misdirected, host, target, method)
        if (
            route is not None
            and route.regex_redirect is not None
            and out["result"]["action"] != "misdirected"
        ):
            location = route.regex_redirect.location(b"https" if entry.tls else b"http", host, target)
            if location is not None:  # dispatch answers it before the route's redirect or proxy
                status = route.regex_redirect.status(method.encode())
                detail = f"redirected ({status}) to {location} (redirectRegex)"
                out["result"] = {
                    "action": dispatch.REDIRECT,
                    "status": status,
                    "location": location,
                    "detail": detail,
                }
        if out["result"]["action"] == dispatch.PROXY:
            out["result"]["upstream"] = _upstream(head, edits)
        if route is not None and route.allow is not None:
            ranges = ", ".join(route.allow.source_range)
            out["result"]["allowList"] = (
                f"only clients connecting from {ranges}; others get {route.allow.status}"
            )
        others = self._near.others(
            entry, self._tls_names, router, route.name if route else None, host_header, url.target
        )
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
    ) -> tuple[dict[str, Any], str | None]:
        """What the handshake gets, and why the request is misdirected (421) if it is."""
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
        settings = self._sni.options.get(option)
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
            return info, (
                f"the handshake for {sni or 'no SNI'} used TLS option {option!r}, but Host "
                f"{host.decode('latin-1')} needs {wanted!r}: it needs a connection of its own"
            )
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
            # an allow list and a regex redirect are checked before the rest of the chain, wherever
            # they stand (dispatch.py)
            applied = reached or spec.kind in ("ipAllowList", "redirectRegex")
            out.append({"name": name, "kind": spec.kind, "spec": spec.to_dict(), "applied": applied})
            if spec.kind in ("redirectScheme", "requestRedirect"):
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

    def _result(
        self, route: Route | None, misdirected: str | None, host: bytes, target: bytes, method: str
    ) -> dict[str, Any]:
        """The data plane's decision (proxy/dispatch.py), told."""
        action = dispatch.decide(route, misdirected is not None)
        if action == dispatch.MISDIRECTED:
            return {"action": action, "status": 421, "detail": misdirected}
        if action == dispatch.NOT_FOUND:
            return {"action": action, "status": 404, "detail": "no router matches this host and path"}
        assert route is not None
        if action == dispatch.REDIRECT:
            assert route.redirect is not None
            found = route.redirect.location(host, target)
            location = None if found is None else found.decode("latin-1")
            if location is None:
                detail, status = "the Host cannot be redirected", BAD_HOST
            else:
                status = route.redirect.status(method.encode())
                detail = f"redirected ({status}) to {location}"
            return {"action": action, "status": status, "location": location, "detail": detail}
        if action == dispatch.UNAVAILABLE:
            return {"action": action, "status": route.upstream.status, "detail": route.upstream.unavailable}
        servers = ", ".join(str(s) for s in self._config.service(route.upstream.service).servers)
        return {
            "action": action,
            "status": None,
            "detail": f"proxied to {route.upstream.service} (round robin: {servers})",
        }


def _head(method: str, target: str, host: str, headers: tuple[tuple[str, str], ...]) -> bytes:
    """The request head a worker would match the question's request with."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers if name.lower() != "host"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _upstream(head: bytes, edits: tuple[HeadEdit, ...]) -> dict[str, Any]:
    """What the backend gets of the question's request after the route's edits (rewrites, header
    filters and annotations), besides the X-Forwarded-* and X-Request-Id lines every request gets."""
    start, fields = split_head(edit_head(head, edits) if edits else head)
    return {
        "requestLine": start.decode("latin-1"),
        "headers": [f"{name.decode('latin-1')}: {value.decode('latin-1')}" for name, value in fields],
    }


def _listed(service: Service) -> Upstream:
    """A service's Upstream as a worker holds it, but with no connections: each server stands for
    the pool a worker makes for it (one per server), so `decide` sees the same servers, or none."""
    upstream = Upstream(service.name, service.status)
    upstream.set(cast("list[Pool]", list(service.servers)), service.unavailable)
    return upstream


def _option_summary(option: TlsOptions) -> dict[str, Any]:
    """What a TLS option asks of the handshake, in Traefik's names."""
    names = {version: name for name, version in VERSIONS.items()}
    top = option.max_version
    return {
        "minVersion": names.get(option.min_version, str(option.min_version)),
        "maxVersion": None if top is None else names.get(top, str(top)),
        "alpnProtocols": list(option.alpn),
        "clientAuthType": option.client_auth,
        "sniStrict": option.sni_strict,
        "definedBy": option.source or "static configuration",
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
