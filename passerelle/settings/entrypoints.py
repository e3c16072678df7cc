"""Entry points: addresses, timeouts and limits, redirections, TLS on or off."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from passerelle.settings.base import Duration, StrictModel
from passerelle.tls.options import DEFAULT


class RespondingTimeouts(StrictModel):
    headerTimeout: Duration = 30.0
    idleTimeout: Duration = 180.0


class Limits(StrictModel):
    maxRequestLineBytes: Annotated[int, Field(ge=256)] = 8192
    maxHeaderBytes: Annotated[int, Field(ge=1024)] = 32768


class EntryPointTransport(StrictModel):
    respondingTimeouts: RespondingTimeouts = RespondingTimeouts()
    limits: Limits = Limits()


class RedirectEntryPoint(StrictModel):
    """`http.redirections.entryPoint`, Traefik's defaults (`pkg/config/static/entrypoints.go`)."""

    to: str  # an entry point name, or a port (":443", "443")
    scheme: Literal["http", "https"] = "https"
    permanent: bool = True
    priority: int | None = None  # accepted for Traefik configs; the redirect always beats Ingress routes


class Redirections(StrictModel):
    entryPoint: RedirectEntryPoint | None = None


class EntryPointHttp(StrictModel):
    redirections: Redirections = Redirections()


class EntryPointTls(StrictModel):
    options: str = DEFAULT
    # Every Ingress served here gets certificates from this resolver (Traefik's
    # `http.tls.certResolver`; 1.7's `acme.onHostRule`), unless its annotations name another.
    certResolver: str = ""


class EntryPoint(StrictModel):
    address: str
    http: EntryPointHttp = EntryPointHttp()

    transport: EntryPointTransport = EntryPointTransport()
    tls: EntryPointTls | None = None  # present (even `{}`): this entry point terminates TLS
