"""Which entry points serve an Ingress, and where its routers redirect instead of proxying.

The rule, first match wins (docs/ingress.md, "Entry points and redirects"):
1. `passerelle.io/entrypoints`: exactly those entry points.
2. Traefik 2/3 `router.entrypoints` and/or `router.tls`: the listed entry points (default: all);
   with `router.tls: "true"` only the TLS ones among them, as a TLS router ignores plain HTTP.
3. Traefik 1.7 `frontend-entry-points`, `redirect-entry-point` or `ssl-redirect`: the listed
   entry points, default all of them (1.7's defaultEntryPoints); `spec.tls` only loads
   certificates in 1.7, it does not move the frontend.
4. Otherwise: an Ingress with `spec.tls` (or `passerelle.io/tls-options`) on the TLS entry points,
   one without on the plain ones.
`passerelle.io/ssl-redirect` adds the plain entry points as redirecting ones to whichever applies.
A redirect applies on the placed entry points it is meant for: https redirects on plain entry
points, 1.7's `redirect-entry-point: X` everywhere but X, a redirectScheme middleware where the
entry point's scheme is not already its target's. Pure: no settings are read here.
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

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"


@dataclass(frozen=True, slots=True, kw_only=True)
class Placement:
    entrypoints: tuple[str, ...]  # where the Ingress's routers are, in configuration order
    redirect: Middleware | None = None  # from annotations, applied before any router.middlewares
    redirect_skips: frozenset[str] = frozenset()  # entry points where `redirect` does not apply
    problems: tuple[tuple[Severity, str], ...] = ()


def place(
    annotations: IngressAnnotations, *, has_tls: bool, entrypoints: Sequence[EntryPointInfo]
) -> Placement:
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
    elif (has_tls and secure) or (not has_tls and plain):
        chosen = secure if has_tls else plain
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
    if ours.ssl_redirect:
        if dialect != "passerelle":
            chosen = names  # TLS entry points serve, plain ones redirect
        redirect, skips = RedirectScheme(scheme="https", permanent=True), frozenset(tls)
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
            if target.name not in chosen:
                problems.append(
                    (
                        Severity.WARNING,
                        f"redirect-entry-point: the Ingress is not served on {target.name}, so the redirect leads to a 404",
                    )
                )
    elif v17.ssl_redirect is not None:
        # 1.7's secure middleware keeps the Host header's port, which points https at the plain
        # port; passerelle sends the scheme's default port unless ssl-host names one.
        redirect = RedirectScheme(
            scheme="https", permanent=v17.ssl_redirect == "permanent", host=v17.ssl_host
        )
        skips = frozenset(tls)
    if not chosen:
        problems.append((Severity.ERROR, f"not served: {why}"))
    middleware = None if redirect is None else Middleware(name=_redirect_name(redirect), spec=redirect)
    return Placement(
        entrypoints=tuple(chosen), redirect=middleware, redirect_skips=skips, problems=tuple(problems)
    )


def chains(
    placement: Placement, middlewares: Sequence[Middleware], entrypoints: Sequence[EntryPointInfo]
) -> list[tuple[tuple[str, ...], tuple[Middleware, ...]]]:
    """The routers one Ingress path needs: (entry points, middleware chain) per distinct chain.

    `()` as entry points means all of them, which keeps the one shared route table of the common
    case (compile_steps' `everywhere`).
    """
    scheme = {ep.name: ep.scheme for ep in entrypoints}
    groups: dict[tuple[Middleware, ...], list[str]] = {}
    for name in placement.entrypoints:
        chain = []
        if placement.redirect is not None and name not in placement.redirect_skips:
            chain.append(placement.redirect)
        for m in middlewares:
            if isinstance(m.spec, RedirectScheme) and m.spec.scheme == scheme[name]:
                continue  # the URL would not change: Traefik passes the request on
            chain.append(m)
        groups.setdefault(tuple(chain), []).append(name)
    everywhere = len(placement.entrypoints) == len(entrypoints)
    return [
        ((() if everywhere and len(groups) == 1 else tuple(names)), chain) for chain, names in groups.items()
    ]


def _redirect_name(spec: RedirectScheme) -> str:
    """One middleware per distinct redirect, shared by every Ingress that asks for it."""
    parts = ["redirect", spec.scheme]
    if spec.host:
        parts.append(spec.host)
    if spec.port is not None:
        parts.append(str(spec.port))
    parts.append("permanent" if spec.permanent else "temporary")
    return "-".join(parts) + "@passerelle"
