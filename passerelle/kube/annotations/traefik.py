"""Traefik 2/3 Ingress annotations (`traefik.ingress.kubernetes.io/router.*`): placement and middlewares.

Traefik decodes these keys case-insensitively into its router configuration
(`pkg/provider/kubernetes/ingress/annotations.go`). Honoured: `router.entrypoints`, `router.tls`,
`router.middlewares`, `router.tls.options` (read by kube/tls.py) and `router.tls.certresolver`
(kube/acme.py). Any `router.tls.*` key gives the router a TLS section, which in Traefik makes it
a TLS router just as `router.tls: "true"` does, unless `router.tls` itself says false. The other router keys, and the `service.*` keys
(read from the Service in Traefik 2/3), are recognised and reported as ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from passerelle.kube.annotations.report import KeyReport, KeyStatus, parse_bool, parse_list

PREFIX = "traefik.ingress.kubernetes.io/"

HONOURED = frozenset(
    {
        "router.entrypoints",
        "router.tls",
        "router.middlewares",
        "router.tls.options",
        "router.tls.certresolver",
    }
)
NOT_YET = frozenset(
    {
        "router.priority", "router.pathmatcher", "router.rulesyntax",
        "router.observability.accesslogs", "router.observability.metrics",
        "router.observability.tracing", "router.observability.traceverbosity",
    }
)  # fmt: skip
SERVICE_SIDE_PREFIX = "service."


@dataclass(frozen=True, slots=True, kw_only=True)
class Traefik:
    entrypoints: tuple[str, ...] | None = None
    tls: bool | None = None
    middlewares: tuple[str, ...] = ()
    keys: tuple[KeyReport, ...] = ()

    @property
    def used(self) -> bool:
        return self.entrypoints is not None or self.tls is not None


def parse(annotations: Mapping[str, str]) -> Traefik:
    keys: list[KeyReport] = []
    entrypoints: tuple[str, ...] | None = None
    tls: bool | None = None
    middlewares: tuple[str, ...] = ()
    tls_section = False  # a router.tls.* key: Traefik's Router.TLS is set
    for key in sorted(annotations):
        if not key.startswith(PREFIX):
            continue
        name = key[len(PREFIX) :].lower()
        if not name.startswith(("router.", SERVICE_SIDE_PREFIX)):
            continue  # a 1.7 key
        value = annotations[key]
        tls_section |= name.startswith("router.tls.")
        if name in ("router.tls.options", "router.tls.certresolver"):
            pass  # its value is read and checked with the TLS state (kube/tls.py, kube/acme.py)
        elif name == "router.entrypoints":
            entrypoints = parse_list(value)
        elif name == "router.tls":
            tls = parse_bool(value.strip())
            if tls is None:
                keys.append(
                    KeyReport(key=key, status=KeyStatus.IGNORED, note=f"{value!r} is not true or false")
                )
                continue
        elif name == "router.middlewares":
            middlewares = parse_list(value)
        elif name in NOT_YET or name.startswith("router.tls.domains."):
            keys.append(KeyReport(key=key, status=KeyStatus.IGNORED, note="not supported yet"))
            continue
        elif name.startswith(SERVICE_SIDE_PREFIX):
            keys.append(KeyReport(key=key, status=KeyStatus.IGNORED, note="belongs on the Service"))
            continue
        else:
            keys.append(KeyReport(key=key, status=KeyStatus.UNKNOWN))
            continue
        keys.append(KeyReport(key=key, status=KeyStatus.HONOURED))
    if tls is None and tls_section:
        tls = True
    return Traefik(entrypoints=entrypoints, tls=tls, middlewares=middlewares, keys=tuple(keys))
