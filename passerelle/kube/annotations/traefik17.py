"""Traefik 1.7 Ingress annotations: entry points and HTTPS redirects.

Traefik 1.7 reads every key as `ingress.kubernetes.io/<name>` first and then as
`traefik.ingress.kubernetes.io/<name>` (`provider/kubernetes/annotations.go`, getAnnotationName),
so both spellings work for every key; the first found wins. Keys after the second prefix that start
with `router.` or `service.` are Traefik 2/3's (`traefik.py`).

After both prefixes, 1.7 also reads a few old label names (`compatibilityMapping` in
`provider/kubernetes/annotations.go` [T1.7]: `traefik.frontend.entryPoints`,
`traefik.frontend.redirect.entrypoint`, ...), spelled exactly so (a Go map lookup). They count
as the key they stand for; other `traefik.frontend.*` / `traefik.backend.*` labels are reported
as ignored, since 1.7 does not read them on an Ingress.

Honoured: `frontend-entry-points`, `redirect-entry-point` + `redirect-permanent`, `ssl-redirect`
(+ `ssl-temporary-redirect`, which only changes its status, as in unrolled/secure), `ssl-host`,
`protocol` (`http` or `h2c` to every backend of the Ingress; service.py), and
`pass-client-tls-cert` (read by tls/clientcert.py), and the path and header keys `rule-type`,
`rewrite-target`, `request-modifier`, `custom-request-headers`, `custom-response-headers`
(traefik17_paths.py). Every other key of the 1.7 documentation is recognised and reported as ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from passerelle.http.redirect import is_authority
from passerelle.kube.annotations import traefik17_paths
from passerelle.kube.annotations.report import KeyReport, KeyStatus, parse_bool, parse_list
from passerelle.kube.annotations.service import read_scheme
from passerelle.middlewares.redirect_regex import RedirectRegex

BARE = "ingress.kubernetes.io/"
TRAEFIK = "traefik.ingress.kubernetes.io/"

HONOURED = frozenset(
    {"frontend-entry-points", "redirect-entry-point", "redirect-permanent", "ssl-redirect",
     "ssl-temporary-redirect", "ssl-host", "protocol", "redirect-regex", "redirect-replacement",
     *traefik17_paths.KEYS}
)  # fmt: skip
# The rest of the 1.7 Ingress annotation table (docs/configuration/backends/kubernetes.md [T1.7]).
NOT_YET = frozenset(
    {
        "app-root", "error-pages", "pass-tls-cert", "preserve-host", "priority",
        "rate-limit", "service-weights",
        "auth-type", "auth-secret", "auth-realm", "auth-remove-header", "auth-header-field",
        "auth-url", "auth-trust-headers", "auth-response-headers", "auth-tls-secret", "auth-tls-insecure",
        "allowed-hosts", "browser-xss-filter",
        "custom-browser-xss-value", "content-security-policy", "content-type-nosniff",
        "custom-frame-options-value", "frame-deny", "force-hsts", "hsts-max-age",
        "hsts-include-subdomains", "hsts-preload", "is-development", "proxy-headers", "public-key",
        "referrer-policy", "ssl-force-host", "ssl-proxy-headers",
    }
)  # fmt: skip
# Honoured, and read elsewhere: tls/clientcert.py (`from_annotations`).
READ_ELSEWHERE = frozenset({"pass-client-tls-cert"})
# Old label names 1.7 reads on an Ingress after both prefixes, and the key each stands for.
COMPATIBILITY = {
    "traefik.frontend.passHostHeader": "preserve-host",
    "traefik.frontend.passTLSCert": "pass-tls-cert",
    "traefik.frontend.entryPoints": "frontend-entry-points",
    "traefik.frontend.priority": "priority",
    "traefik.backend.circuitbreaker": "circuit-breaker-expression",
    "traefik.backend.loadbalancer.method": "load-balancer-method",
    "traefik.backend.loadbalancer.stickiness": "affinity",
    "traefik.backend.loadbalancer.stickiness.cookieName": "session-cookie-name",
    "traefik.frontend.rule.type": "rule-type",
    "traefik.frontend.redirect.entrypoint": "redirect-entry-point",
    "traefik.frontend.redirect.regex": "redirect-regex",
    "traefik.frontend.redirect.replacement": "redirect-replacement",
}
LABEL_PREFIXES = ("traefik.frontend.", "traefik.backend.")
_COMPATIBILITY_LOWER = {label.lower(): label for label in COMPATIBILITY}
# Read from the Service object in 1.7, never from the Ingress.
SERVICE_SIDE = frozenset(
    {
        "affinity", "session-cookie-name", "session-secure", "session-http-only", "session-same-site",
        "load-balancer-method", "circuit-breaker-expression", "buffering",
        "responseforwarding-flushinterval", "max-conn-amount", "max-conn-extractor-func",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class Traefik17:
    """What the 1.7 keys of one Ingress ask for. `ssl_redirect`: None, "permanent" or "temporary"."""

    entrypoints: tuple[str, ...] | None = None
    redirect_entrypoint: str | None = None
    redirect_permanent: bool = False
    ssl_redirect: str | None = None
    ssl_host: str | None = None
    protocol: str | None = None  # the scheme to every backend of the Ingress (service.py)
    redirect_regex: RedirectRegex | None = None  # redirect-regex + redirect-replacement (+ -permanent)
    # rule-type, rewrite-target, request-modifier, custom headers (traefik17_paths.py)
    paths: traefik17_paths.PathModifiers = traefik17_paths.PathModifiers()
    keys: tuple[KeyReport, ...] = ()

    @property
    def used(self) -> bool:
        """Does this Ingress rely on 1.7 placement (an entry point or redirect key is honoured)?"""
        return (
            self.entrypoints is not None
            or self.redirect_entrypoint is not None
            or self.ssl_redirect is not None
        )


def name_of(key: str) -> str | None:
    """The 1.7 annotation name of a key (`ssl-redirect`), or None if the key is not 1.7's."""
    if key in COMPATIBILITY:
        return COMPATIBILITY[key]
    if key.startswith(BARE):
        return key[len(BARE) :]
    if key.startswith(TRAEFIK):
        name = key[len(TRAEFIK) :]
        if not name.lower().startswith(("router.", "service.")):
            return name
    return None


def parse(annotations: Mapping[str, str]) -> Traefik17:
    keys: list[KeyReport] = []
    values: dict[str, tuple[str, str]] = {}  # name -> (key, value) of the spelling that wins
    for key in sorted(annotations, key=lambda k: (_rank(k), k)):  # bare prefix, traefik., labels
        name = name_of(key)
        if name is None:
            if key.startswith(LABEL_PREFIXES):
                keys.append(KeyReport(key=key, status=KeyStatus.IGNORED, note=_label_note(key)))
            continue
        if name in HONOURED:
            if name in values:
                keys.append(KeyReport(key=key, status=KeyStatus.IGNORED, note=f"{values[name][0]} wins"))
            else:
                values[name] = (key, annotations[key])
        elif name in READ_ELSEWHERE:
            keys.append(KeyReport(key=key, status=KeyStatus.HONOURED))
        elif name in NOT_YET:
            keys.append(KeyReport(key=key, status=KeyStatus.IGNORED, note="not supported yet"))
        elif name in SERVICE_SIDE:
            keys.append(KeyReport(key=key, status=KeyStatus.IGNORED, note="belongs on the Service"))
        else:
            keys.append(KeyReport(key=key, status=KeyStatus.UNKNOWN))

    def honour(name: str) -> str | None:
        if name not in values:
            return None
        keys.append(KeyReport(key=values[name][0], status=KeyStatus.HONOURED))
        return values[name][1]

    def flag(name: str) -> bool | None:
        raw = values.get(name)
        if raw is None:
            return None
        parsed = parse_bool(raw[1].strip())
        if parsed is None:
            keys.append(
                KeyReport(key=raw[0], status=KeyStatus.IGNORED, note=f"{raw[1]!r} is not true or false")
            )
            return None
        honour(name)
        return parsed

    def unused(name: str, needs: str) -> None:
        if name in values:
            note = f"only read with {needs}"
            keys.append(KeyReport(key=values[name][0], status=KeyStatus.IGNORED, note=note))

    entrypoints = None
    raw_entrypoints = honour("frontend-entry-points")
    if raw_entrypoints is not None:
        entrypoints = parse_list(raw_entrypoints)
    redirect_entrypoint = (honour("redirect-entry-point") or "").strip() or None
    permanent = False
    redirect_regex = None
    regex, replacement = values.get("redirect-regex"), values.get("redirect-replacement")
    if redirect_entrypoint:
        permanent = bool(flag("redirect-permanent"))
        for raw in (regex, replacement):  # 1.7: the entry point redirect wins over a regex one
            if raw is not None:
                keys.append(KeyReport(key=raw[0], status=KeyStatus.IGNORED, note="redirect-entry-point wins"))
    elif regex is not None and replacement is not None and regex[1].strip() and replacement[1].strip():
        try:
            RedirectRegex(regex=regex[1].strip(), replacement=replacement[1].strip())
        except ValueError as e:  # 1.7 skipped such a redirect and served the Ingress
            keys.append(KeyReport(key=regex[0], status=KeyStatus.IGNORED, note=str(e)))
            unused("redirect-permanent", "a valid redirect-regex")
        else:
            honour("redirect-regex")
            honour("redirect-replacement")
            permanent = bool(flag("redirect-permanent"))
            redirect_regex = RedirectRegex(
                regex=regex[1].strip(), replacement=replacement[1].strip(), permanent=permanent
            )
    else:
        unused("redirect-permanent", "redirect-entry-point or redirect-regex")
        unused("redirect-regex", "redirect-replacement")
        unused("redirect-replacement", "redirect-regex")
    # unrolled/secure (1.7's secure middleware) redirects only when ssl-redirect is set; the
    # temporary flag only changes the status then.
    ssl_redirect = None
    if flag("ssl-redirect"):
        ssl_redirect = "temporary" if flag("ssl-temporary-redirect") else "permanent"
    else:
        unused("ssl-temporary-redirect", "ssl-redirect")
    ssl_host = None
    if ssl_redirect:
        raw_host = values.get("ssl-host")
        if raw_host is not None and raw_host[1].strip() and not is_authority(raw_host[1].strip()):
            # Copied into the Location: anything but host[:port] could split the response or
            # send the client elsewhere (`https://x` would give `https://https://x/...`).
            note = f"{raw_host[1]!r} is not host[:port]"
            keys.append(KeyReport(key=raw_host[0], status=KeyStatus.IGNORED, note=note))
        else:
            ssl_host = (honour("ssl-host") or "").strip() or None
    else:
        unused("ssl-host", "ssl-redirect")
    protocol = None
    raw_protocol = values.get("protocol")
    if raw_protocol is not None:
        protocol, wrong = read_scheme(raw_protocol[1])
        if wrong is not None:
            keys.append(KeyReport(key=raw_protocol[0], status=KeyStatus.IGNORED, note=wrong))
        else:
            honour("protocol")
    modifiers = traefik17_paths.read(honour)
    return Traefik17(
        paths=modifiers,
        entrypoints=entrypoints,
        redirect_entrypoint=redirect_entrypoint,
        redirect_permanent=permanent,
        ssl_redirect=ssl_redirect,
        ssl_host=ssl_host,
        protocol=protocol,
        redirect_regex=redirect_regex,
        keys=tuple(keys),
    )


def _rank(key: str) -> int:
    """Which spelling of a 1.7 key wins (getAnnotationName): the bare prefix, then `traefik.`, then
    the old label name."""
    return 0 if key.startswith(BARE) else 1 if key.startswith(TRAEFIK) else 2


def _label_note(key: str) -> str:
    exact = _COMPATIBILITY_LOWER.get(key.lower())
    if exact is not None:
        return f"Traefik 1.7 reads it only spelled {exact}"
    return "a Traefik 1.7 label, not read on an Ingress"
