"""How to talk to a Service's pods: the scheme annotations of Traefik 2/3 and 1.7, read purely.

Traefik 2/3 reads `traefik.ingress.kubernetes.io/service.*` from the **Service** object, keys
case-insensitive (`pkg/provider/kubernetes/ingress/annotations.go`, parseServiceAnnotations);
`service.serversscheme` sets the scheme of its servers' URLs. Traefik 1.7 reads
`ingress.kubernetes.io/protocol` (or `traefik.ingress.kubernetes.io/protocol`) from the **Ingress**,
for every backend of it (traefik17.py parses it). passerelle speaks `http` (HTTP/1.1) and `h2c`
(cleartext HTTP/2, for gRPC) to backends; `https` is not supported yet, and any other value is
an error for the object's author: both fall back to `http`, with a Problem saying so.

A Service port's `appProtocol` is read too, after the annotation: `kubernetes.io/h2c` (KEP-3726's
"HTTP/2 over cleartext", the value the Gateway API's backend protocol selection, GEP-1911, and
Kubernetes document) means h2c, for Ingress and HTTPRoute backends alike. Any other value (`http`,
`kubernetes.io/ws`: WebSocket over HTTP/1.1, IANA names) asks for nothing: HTTP/1.1 serves them.
"""

from __future__ import annotations

from collections.abc import Mapping

from passerelle.model.config import SCHEMES

SERVERS_SCHEME = "traefik.ingress.kubernetes.io/service.serversscheme"
APP_PROTOCOL_SCHEMES = {"kubernetes.io/h2c": "h2c"}  # a Service port's appProtocol -> scheme


def read_scheme(value: str) -> tuple[str, str | None]:
    """(the scheme to use, what is wrong with `value` or None). Values are case-insensitive, as
    the scheme of a URL is (Go's url.Parse lower-cases it)."""
    scheme = value.strip().lower()
    if scheme in SCHEMES:
        return scheme, None
    if scheme == "https":
        return "http", "https to backends is not supported yet; using http"
    return (
        "http",
        f"{value!r} is not a scheme passerelle speaks to backends ({', '.join(SCHEMES)}); using http",
    )


def service_scheme(annotations: Mapping[str, str]) -> tuple[str | None, str | None]:
    """The scheme a Service's annotations ask for (None: they ask nothing), and any problem."""
    for key, value in annotations.items():
        if key.lower() == SERVERS_SCHEME:
            scheme, problem = read_scheme(str(value))
            return scheme, None if problem is None else f"{key}: {problem}"
    return None, None


def backend_scheme(annotations: Mapping[str, str], app_protocol: object) -> tuple[str | None, str | None]:
    """The scheme a Service asks for, by its `serversscheme` annotation, else by the `appProtocol`
    of the port in use (None: neither asks), and any problem with the annotation."""
    asked, problem = service_scheme(annotations)
    if asked is None and isinstance(app_protocol, str):
        asked = APP_PROTOCOL_SCHEMES.get(app_protocol)
    return asked, problem
