"""The neutral dynamic model every provider emits and every listener consumes.

`DynamicConfig` is one version of routing state: routers (which requests), services (where they
go), the servers behind them, and TLS state (certificates, per-host TLS options). It is frozen and
comparable, so the watcher can skip a version equal to the live one, and JSON-serialisable (`codec.py`), so it can cross a process boundary.
`Problem` is how a bad user object is reported: attached to the object, never raised.
"""

from passerelle.model.config import (
    DynamicConfig,
    Middleware,
    PathMatch,
    PathType,
    RequestMatch,
    Router,
    Server,
    Service,
    WeightedService,
)
from passerelle.model.problem import ObjectRef, Problem, Report, Severity
from passerelle.model.tls import Certificate, CertificateRequest, ClientCA, HostOptions, TlsConfig

__all__ = [
    "Certificate",
    "CertificateRequest",
    "ClientCA",
    "HostOptions",
    "TlsConfig",
    "DynamicConfig",
    "Middleware",
    "ObjectRef",
    "PathMatch",
    "PathType",
    "Problem",
    "Report",
    "RequestMatch",
    "Router",
    "Server",
    "Service",
    "Severity",
    "WeightedService",
]
