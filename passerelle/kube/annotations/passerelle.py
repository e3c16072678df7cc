"""passerelle's own Ingress annotations (`passerelle.io/...`).

`passerelle.io/entrypoints: web,websecure` places the Ingress's routers on exactly those entry
points, before any Traefik key. `passerelle.io/ssl-redirect: "true"` serves the Ingress on the TLS
entry points and answers plain HTTP with a permanent redirect to https (301 for GET, 308 for other
methods), as ingress-nginx does for an Ingress with TLS. `passerelle.io/tls-options` names the TLS
option of the Ingress's hosts (read by kube/tls.py); like `spec.tls`, it places an Ingress that
names no entry points on the TLS ones, and so does `passerelle.io/cert-resolver` (kube/acme.py).
`passerelle.io/client-cert-headers` and `passerelle.io/client-cert-fields`
(docs/client-certificates.md) are read by tls/clientcert.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from passerelle.kube.annotations.report import KeyReport, KeyStatus, parse_bool, parse_list

PREFIX = "passerelle.io/"


@dataclass(frozen=True, slots=True, kw_only=True)
class Passerelle:
    entrypoints: tuple[str, ...] | None = None
    ssl_redirect: bool = False
    tls_options: bool = False
    keys: tuple[KeyReport, ...] = ()


def parse(annotations: Mapping[str, str]) -> Passerelle:
    keys: list[KeyReport] = []
    entrypoints: tuple[str, ...] | None = None
    ssl_redirect = False
    tls_options = False
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
        elif name in ("tls-options", "cert-resolver"):
            tls_options = True  # its value is read and checked with the TLS state (kube/tls.py, acme.py)
        elif name in ("client-cert-headers", "client-cert-fields"):
            pass  # read by tls/clientcert.py (`from_annotations`), whose errors are Problems
        else:
            keys.append(KeyReport(key=key, status=KeyStatus.UNKNOWN))
            continue
        keys.append(KeyReport(key=key, status=KeyStatus.HONOURED))
    return Passerelle(
        entrypoints=entrypoints, ssl_redirect=ssl_redirect, tls_options=tls_options, keys=tuple(keys)
    )
