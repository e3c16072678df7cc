"""Data-plane settings as small value objects (the static config's shape, resolved to numbers)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class EntryPointOptions:
    """One listening address and what it tolerates from clients.

    header_timeout: seconds a client has to send a complete request head (default 30, like
        Go's ReadHeaderTimeout in Traefik's docs examples).
    idle_timeout: seconds an idle keep-alive connection stays open (default 180, Traefik's).
    max_request_line: bytes in the request line before 414 (default 8192, nginx's large buffer).
    max_header_bytes: bytes of header fields before 431 (default 32768).
    redirect_scheme: with `http.redirections.entryPoint`, the scheme every request is redirected
        to ("" for no redirect); redirect_port the target port (None: the scheme's default) and
        redirect_permanent 301/308 instead of 302/307 (Traefik's default: permanent).
    tls: terminate TLS (entryPoints.<name>.tls present); tls_options: its TLS option's name.
    request_ids: make an X-Request-Id for each request that brings no valid one (`requestId`).
    """

    name: str
    host: str
    port: int
    header_timeout: float = 30.0
    idle_timeout: float = 180.0
    max_request_line: int = 8192
    max_header_bytes: int = 32768
    redirect_scheme: str = ""
    redirect_port: int | None = None
    redirect_permanent: bool = True
    tls: bool = False
    tls_options: str = ""
    request_ids: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ForwardingOptions:
    """How the proxy talks to upstream servers.

    dial_timeout: seconds to establish a connection (default 30, Traefik's dialTimeout).
    response_header_timeout: seconds from the request sent to the response head (default 60,
        nginx's proxy_read_timeout); then 504.
    idle_conn_timeout: seconds a pooled idle upstream connection is kept (default 90, Traefik's).
    max_idle_per_host: idle connections kept per upstream server (default 64).
    """

    dial_timeout: float = 30.0
    response_header_timeout: float = 60.0
    idle_conn_timeout: float = 90.0
    max_idle_per_host: int = 64
