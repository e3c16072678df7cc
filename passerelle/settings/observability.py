"""Observability: Prometheus metrics (`metrics.prometheus`) and the access log (`accessLog`).

Key names are Traefik's (`metrics.prometheus.buckets`, `accessLog.filePath`, `accessLog.fields`).
Metrics are on by default and served on the api address at `/metrics`, and also on
`metrics.prometheus.address` when set (a listener serving only `/metrics`, for Prometheus to scrape
while the API stays on loopback); `metrics.prometheus: false` turns them off (the workers then
count nothing). The access log is off unless `accessLog` is given. `requestId.generate` (on):
make an X-Request-Id for requests that bring no valid one.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BeforeValidator, Field, field_validator

from passerelle.observability.accesslog import FIELDS, status_range
from passerelle.settings.base import Duration, StrictModel

# prometheus_client's defaults (seconds): ingress-nginx uses them; Traefik's [0.1, 0.3, 1.2, 5] cannot
# tell a 1 ms answer from a 90 ms one, and most of what a router forwards is well under 100 ms.
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)


def _no_entry_point(value: Any) -> Any:
    if isinstance(value, dict) and "entryPoint" in value:
        raise ValueError(
            "entryPoint: passerelle's entry points carry traffic in the workers; /metrics is served by "
            "the control plane: set metrics.prometheus.address (`:9100`) instead (docs/observability.md)"
        )
    return value


class Prometheus(StrictModel):
    """address: `host:port` of a listener that serves only `/metrics` ("": none; `/metrics` is on
    the api address either way). Traefik's `entryPoint` names a data-plane entry point instead."""

    address: str = ""
    buckets: tuple[float, ...] = DEFAULT_BUCKETS
    addEntryPointsLabels: bool = True
    addRoutersLabels: bool = True  # router, and the namespace and ingress it came from
    addServicesLabels: bool = True

    @field_validator("buckets")
    @classmethod
    def _increasing(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value or any(b <= a for a, b in zip(value, value[1:], strict=False)) or value[0] <= 0:
            raise ValueError("buckets must be positive and strictly increasing")
        return value


def _off(value: Any) -> Any:
    return None if value is False else value


class Metrics(StrictModel):
    prometheus: Annotated[Prometheus | None, BeforeValidator(_no_entry_point), BeforeValidator(_off)] = (
        Prometheus()
    )


FieldMode = Literal["keep", "drop"]
HeaderMode = Literal["keep", "drop", "redact"]
# RFC 9110 §5.1: a field name is a token
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


class AccessLogHeaders(StrictModel):
    """Request headers as `request_<Name>` fields: `defaultMode` for every header (Traefik's
    default: drop), `names` by header name (any case): keep, drop, or redact (value `REDACTED`)."""

    defaultMode: HeaderMode = "drop"
    names: dict[str, HeaderMode] = {}

    @field_validator("names")
    @classmethod
    def _tokens(cls, value: dict[str, HeaderMode]) -> dict[str, HeaderMode]:
        bad = sorted(name for name in value if not _TOKEN.match(name))
        if bad:
            raise ValueError(f"not header names: {', '.join(map(repr, bad))}")
        lowered = [name.lower() for name in value]
        twice = sorted({name for name in lowered if lowered.count(name) > 1})
        if twice:
            raise ValueError(f"named twice (header names are case-insensitive): {', '.join(twice)}")
        return value


class AccessLogFields(StrictModel):
    defaultMode: FieldMode = "keep"
    names: dict[str, FieldMode] = {}
    headers: AccessLogHeaders = AccessLogHeaders()

    @field_validator("names")
    @classmethod
    def _known(cls, value: dict[str, FieldMode]) -> dict[str, FieldMode]:
        unknown = sorted(set(value) - set(FIELDS))
        if unknown:
            raise ValueError(f"unknown fields {', '.join(unknown)}; the fields are {', '.join(FIELDS)}")
        return value


StatusRange = Annotated[tuple[int, int], BeforeValidator(status_range)]


class AccessLogFilters(StrictModel):
    """Traefik's `filters`: with any of them, a line is written only when one keeps it."""

    statusCodes: tuple[StatusRange, ...] = ()  # `404`, `"500-599"`
    retryAttempts: bool = False  # requests sent again (another server, a fresh connection)
    minDuration: Duration = 0.0  # requests that took longer


class AccessLog(StrictModel):
    filePath: str = Field(default="", validation_alias=AliasChoices("filePath", "path"))
    format: Literal["json", "common"] = "json"
    bufferingSize: Annotated[int, Field(ge=1, le=1_000_000)] = 1000  # lines held before a write
    fields: AccessLogFields = AccessLogFields()
    filters: AccessLogFilters = AccessLogFilters()


class RequestId(StrictModel):
    """generate: make an X-Request-Id for each request that brings no valid one, send it upstream
    and log it (ingress-nginx's `generate-request-id`, on by default there too; Traefik makes none).
    A client's valid X-Request-Id is kept either way (docs/observability.md#request-ids)."""

    generate: bool = True


def worker_settings(metrics: Metrics, access_log: AccessLog | None) -> dict[str, Any]:
    """What a worker needs of these (proxy/worker.py recorder_of): buckets (None: not counting),
    the access log's settings (None: off). Small and public: it travels on the command line."""
    prometheus = metrics.prometheus
    return {
        "buckets": list(prometheus.buckets) if prometheus is not None else None,
        "accessLog": access_log.model_dump() if access_log is not None else None,
    }
