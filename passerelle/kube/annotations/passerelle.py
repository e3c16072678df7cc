"""passerelle's own Ingress annotations (`passerelle.io/...`).

`passerelle.io/entrypoints: web,websecure` places the Ingress's routers on exactly those entry
points, before any Traefik key. `passerelle.io/ssl-redirect: "true"` serves the Ingress on the TLS
entry points and answers plain HTTP with a permanent redirect to https (301 for GET, 308 for other
methods), as ingress-nginx does for an Ingress with TLS. `passerelle.io/tls-options` belongs to the
TLS termination work and is reported as ignored here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from passerelle.kube.annotations.report import KeyReport, KeyStatus, parse_bool, parse_list

PREFIX = "passerelle.io/"
NOT_YET = frozenset({"tls-options"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Passerelle:
    entrypoints: tuple[str, ...] | None = None
    ssl_redirect: bool = False
    keys: tuple[KeyReport, ...] = ()


def parse(annotations: Mapping[str, str]) -> Passerelle:
    keys: list[KeyReport] = []
    entrypoints: tuple[str, ...] | None = None
    ssl_redirect = False
    for key in sorted(annotations):
        if not key.startswith(PREFIX):
            continue
        name, value = key[len(PREFIX) :], annotations[key]
        if name == "entrypoints":
            entrypoints = parse_list(value)
        elif name == "ssl-redirect":
            parsed = parse_bool(value.strip())
            if parsed is None:
                keys.append(
                    KeyReport(key=key, status=KeyStatus.IGNORED, note=f"{value!r} is not true or false")
                )
                continue
            ssl_redirect = parsed
        elif name in NOT_YET:
            keys.append(KeyReport(key=key, status=KeyStatus.IGNORED, note="not supported yet"))
            continue
        else:
            keys.append(KeyReport(key=key, status=KeyStatus.UNKNOWN))
            continue
        keys.append(KeyReport(key=key, status=KeyStatus.HONOURED))
    return Passerelle(entrypoints=entrypoints, ssl_redirect=ssl_redirect, keys=tuple(keys))
