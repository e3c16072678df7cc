"""Which entry points serve an Ingress, and where its routers redirect instead of proxying.

The rule, first match wins (docs/ingress.md, "Entry points and redirects"):
1. `passerelle.io/entrypoints`: exactly those entry points.
2. Traefik 2/3 `router.entrypoints` and/or `router.tls`, or a `router.middlewares` chain holding
   a redirectScheme: the listed entry points (default: all, as Traefik's `loadRouter`); with
   `router.tls: "true"` only the TLS ones among them, as a TLS router ignores plain HTTP.
3. Traefik 1.7 `frontend-entry-points`, `redirect-entry-point` or `ssl-redirect`: the listed
   entry points, default all of them (1.7's defaultEntryPoints); `spec.tls` only loads
   certificates in 1.7, it does not move the frontend.
4. Otherwise: an Ingress with `spec.tls` (or `passerelle.io/tls-options`) on the TLS entry points,
   one without on the plain ones, and on the target of any of those that redirects every request
   (`http.redirections`).
`passerelle.io/ssl-redirect` adds the plain entry points as redirecting ones to whichever applies.
A redirect applies on the placed entry points it is meant for: https redirects on plain entry
points, 1.7's `redirect-entry-point: X` everywhere but X, a redirectScheme middleware where the
URL would change (Traefik compares the URLs: scheme, and port when the middleware names one).
`dead_ends` warns about a redirect whose target does not serve the Ingress. Pure: no settings
are read here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from passerelle.kube.annotations import IngressAnnotations
from passerelle.middlewares.redirect_scheme import RedirectScheme
from passerelle.model import Middleware, Severity


@dataclass(frozen=True, slots=True, kw_only=True)
class EntryPointInfo:
    """What translation knows of an entry point: its name, whether it terminates TLS, its port."""

    name: str
    tls: bool = False
    port: int = 0  # 0: unknown (a `:0` address listens on any free port); redirects use the default
    # http.redirections.entryPoint: every request is redirected to this scheme ("": none), on the
    # entry point named `redirect_to` ("" when `to` is a port no entry point listens on).
    redirect_scheme: str = ""
    redirect_to: str = ""

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"


@dataclass(frozen=True, slots=True, kw_only=True)
class Placement:
    entrypoints: tuple[str, ...]  # where the Ingress's routers are, in configuration order
    redirect: Middleware | None = None  # from annotations, applied before any router.middlewares
    redirect_skips: frozenset[str] = frozenset()  # entry points where `redirect` does not apply
    redirect_key: str = ""  # the annotation `redirect` comes from, for messages
    redirect_target: str = ""  # the entry point `redirect` sends to, when it names one
    problems: tuple[tuple[Severity, str], ...] = ()


def place(
    annotations: IngressAnnotations,
    *,
    has_tls: bool,
    entrypoints: Sequence[EntryPointInfo],
    middlewares: Sequence[Middleware] = (),
) -> Placement:
    """Where the Ingress goes; `middlewares`: its resolved router.middlewares (a redirectScheme
    among them places it by the Traefik 2/3 rule, as Traefik does with any router)."""
    names = [ep.name for ep in entrypoints]
    by_name = {ep.name: ep for ep in entrypoints}
    tls = {ep.name for ep in entrypoints if ep.tls}
    problems: list[tuple[Severity, str]] = []

    def listed(key: str, wanted: tuple[str, ...]) -> list[str]:
        unknown = [name for name in wanted if name not in by_name]
        if unknown:
            problems.append(
                (
                    Severity.WARNING,
                    f"{key}: no entry point named {', '.join(unknown)} (have {', '.join(names)})",
                )
            )
        return [name for name in names if name in wanted]

    ours, v2, v17 = annotations.passerelle, annotations.traefik, annotations.traefik17
    dialect = annotations.placement
    if not dialect and any(isinstance(m.spec, RedirectScheme) for m in middlewares):
        dialect = "traefik"  # on a default placement the redirect would lead nowhere (rules 4, 5)
    has_tls = has_tls or ours.tls_options
    plain = [name for name in names if name not in tls]
    secure = [name for name in names if name in tls]
    why = ""
    if dialect == "passerelle":
        chosen = listed("passerelle.io/entrypoints", ours.entrypoints or ())
        why = "passerelle.io/entrypoints names no configured entry point"
    elif dialect == "traefik":
        chosen = names if v2.entrypoints is None else listed("router.entrypoints", v2.entrypoints)
        why = "router.entrypoints names no configured entry point"
        if v2.tls and chosen:
            chosen = [name for name in chosen if name in tls]
            why = "router.tls is true, and none of its entry points terminates TLS (entryPoints.<name>.tls)"
    elif dialect == "traefik17":
        chosen = names if v17.entrypoints is None else listed("frontend-entry-points", v17.entrypoints)
        why = "frontend-entry-points names no configured entry point"
    elif ours.ssl_redirect:
        chosen = names  # TLS entry points serve, plain ones redirect (below)
    elif (has_tls and secure) or (not has_tls and plain):
        chosen = secure if has_tls else plain
        # An entry point that redirects every request sends it to its target: serve there too.
        targets = {by_name[n].redirect_to for n in chosen if by_name[n].redirect_scheme}
        chosen = [n for n in names if n in chosen or n in targets]
    else:  # only one kind of entry point is configured: use it rather than serve nothing
        chosen = names
        problems.append(
            (Severity.WARNING, "has spec.tls but no TLS entry point is configured; served on the plain ones")
            if has_tls
            else (
                Severity.WARNING,
                "has no spec.tls and no plain entry point is configured; served on the TLS ones",
            )
        )

    redirect: RedirectScheme | None = None
    skips: frozenset[str] = frozenset()
    key = target_name = ""
    if ours.ssl_redirect:
        if dialect != "passerelle":
            # Serve where the placement says, and redirect on every plain entry point; an explicit
            # list (router.entrypoints: websecure) keeps other TLS entry points out.
            chosen = [n for n in names if n in chosen or n not in tls]
        redirect, skips = RedirectScheme(scheme="https", permanent=True), frozenset(tls)
        key = "passerelle.io/ssl-redirect"
    elif v17.redirect_entrypoint is not None:
        target = by_name.get(v17.redirect_entrypoint)
        if target is None:
            problems.append(
                (
                    Severity.WARNING,
                    f"redirect-entry-point: no entry point named {v17.redirect_entrypoint}; not redirected",
                )
            )
        else:
            redirect = RedirectScheme(
                scheme=target.scheme, port=target.port or None, permanent=v17.redirect_permanent
            )  # port 0 (any free port, in tests) is not a port a client can be sent to
            skips = frozenset({target.name})
            key, target_name = "redirect-entry-point", target.name
    elif v17.ssl_redirect is not None:
        # 1.7's secure middleware keeps the Host header's port, which points https at the plain
        # port; passerelle sends the scheme's default port unless ssl-host names one.
        redirect = RedirectScheme(
            scheme="https", permanent=v17.ssl_redirect == "permanent", host=v17.ssl_host
        )
        skips = frozenset(tls)
        key = "ssl-redirect"
    if not chosen:
        problems.append((Severity.ERROR, f"not served: {why}"))
    middleware = None if redirect is None else Middleware(name=_redirect_name(redirect), spec=redirect)
    return Placement(
        entrypoints=tuple(chosen),
        redirect=middleware,
        redirect_skips=skips,
        redirect_key=key,
        redirect_target=target_name,
        problems=tuple(problems),
    )


def chains(
    placement: Placement, middlewares: Sequence[Middleware], entrypoints: Sequence[EntryPointInfo]
) -> list[tuple[tuple[str, ...], tuple[Middleware, ...]]]:
    """The routers one Ingress path needs: (entry points, middleware chain) per distinct chain.

    `()` as entry points means all of them, which keeps the one shared route table of the common
    case (compile_steps' `everywhere`).
    """
    by_name = {ep.name: ep for ep in entrypoints}
    groups: dict[tuple[Middleware, ...], list[str]] = {}
    for name in placement.entrypoints:
        chain = []
        if placement.redirect is not None and name not in placement.redirect_skips:
            chain.append(placement.redirect)
        for m in middlewares:
            if isinstance(m.spec, RedirectScheme) and _arrived(m.spec, by_name[name]):
                continue  # the URL would not change: Traefik passes the request on
            chain.append(m)
        groups.setdefault(tuple(chain), []).append(name)
    everywhere = len(placement.entrypoints) == len(entrypoints)
    return [
        ((() if everywhere and len(groups) == 1 else tuple(names)), chain) for chain, names in groups.items()
    ]


def dead_ends(
    placement: Placement,
    groups: Sequence[tuple[tuple[str, ...], tuple[Middleware, ...]]],
    entrypoints: Sequence[EntryPointInfo],
) -> list[str]:
    """Warnings for redirects whose target does not serve the Ingress: the client follows the
    redirect and gets a 404. A redirect to a scheme is fine when some entry point of that scheme
    proxies the Ingress (one naming an entry point: when that one does). Also for a redirectScheme
    middleware that never answers on an entry point because the annotations' redirect does."""
    by_name = {ep.name: ep for ep in entrypoints}
    every = tuple(ep.name for ep in entrypoints)
    proxying: set[str] = set()
    redirects: dict[str, tuple[str, str]] = {}  # who redirects -> (scheme, target entry point or "")
    shadowed: dict[str, list[str]] = {}  # a redirectScheme middleware -> where another one answers
    for names, chain in groups:
        found = [m for m in chain if isinstance(m.spec, RedirectScheme)]
        for name in names or every:
            ep = by_name[name]
            if ep.redirect_scheme:  # http.redirections: before any router
                redirects[f"entryPoints.{name}.http.redirections"] = (ep.redirect_scheme, ep.redirect_to)
            elif not found:
                proxying.add(name)
            elif found[0] is placement.redirect:
                redirects[placement.redirect_key] = (_scheme(found[0]), placement.redirect_target)
            else:
                redirects[f"router.middlewares: {found[0].name}"] = (_scheme(found[0]), "")
            if not ep.redirect_scheme and found[0:1] == [placement.redirect]:
                for m in found[1:]:
                    shadowed.setdefault(m.name, []).append(name)
    warnings = [
        f"router.middlewares: {m} is not applied on {', '.join(names)}: {placement.redirect_key} redirects first"
        for m, names in shadowed.items()
    ]
    for who, (scheme, target) in redirects.items():
        if target:
            if target not in proxying:
                warnings.append(
                    f"{who}: the Ingress is not served on {target}, so the redirect leads to a 404"
                )
        elif not any(by_name[name].scheme == scheme for name in proxying):
            warnings.append(
                f"{who}: the Ingress is served without this redirect on no {scheme} entry point, "
                "so the redirect leads to a 404"
            )
    return warnings


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _arrived(spec: RedirectScheme, ep: EntryPointInfo) -> bool:
    """Would the redirect leave the URL of a request on `ep` unchanged (Traefik's `redirect_scheme.go`
    compares the URLs)? The scheme must be the entry point's; a port the middleware names must be
    the entry point's too (`{https, 8443}` still redirects on :443). Without a port, or with the
    scheme's default, the request's port is unknown here (behind a load balancer the Host header
    carries none), so the entry point's scheme is enough, as for a request on the default port."""
    if spec.scheme != ep.scheme:
        return False
    return spec.port is None or spec.port == _DEFAULT_PORTS[spec.scheme] or spec.port == ep.port


def _scheme(middleware: Middleware) -> str:
    """The scheme of a middleware known to be a redirectScheme."""
    assert isinstance(middleware.spec, RedirectScheme)
    return middleware.spec.scheme


def _redirect_name(spec: RedirectScheme) -> str:
    """One middleware per distinct redirect, shared by every Ingress that asks for it."""
    parts = ["redirect", spec.scheme]
    if spec.host:
        parts.append(spec.host)
    if spec.port is not None:
        parts.append(str(spec.port))
    parts.append("permanent" if spec.permanent else "temporary")
    return "-".join(parts) + "@passerelle"
