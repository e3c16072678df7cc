"""The access log: one line per exchange, JSON (the default) or Traefik's common log format.

JSON field names are Traefik's (`pkg/middlewares/accesslog/logdata.go`) where it has the field,
so log pipelines written for Traefik keep working; passerelle adds `TLSServerName` (the SNI),
`KubernetesNamespace` and `KubernetesIngress` (of the Ingress the router came from) and
`RequestID` (the X-Request-Id sent upstream). `fields` keeps or drops fields by name (Traefik's
`fields.defaultMode` and `fields.names`) and adds request headers as `request_<Name>`, kept,
dropped or redacted (`fields.headers`); `filters` keeps only some lines (status ranges, retried,
slower than `minDuration`: any of them). Formatting and choosing are pure (`json_line`,
`common_line`, `header_fields`, `Filters`); `AccessLog` gathers one exchange's fields and hands the
line to a LineWriter.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from passerelle.http.headers import request_id_in
from passerelle.observability.recorder import NO_ROUTE

if TYPE_CHECKING:
    from passerelle.observability.recorder import Connection
    from passerelle.observability.writer import LineWriter
    from passerelle.proxy.connection import Exchange

FIELDS = (
    "time", "StartUTC", "Duration", "ClientAddr", "ClientHost", "RequestMethod", "RequestHost", "RequestPath",
    "RequestProtocol", "DownstreamStatus", "DownstreamContentSize", "RequestContentSize", "EntryPointName",
    "RouterName", "ServiceName", "ServiceAddr", "RetryAttempts", "TLSVersion", "TLSServerName",
    "KubernetesNamespace", "KubernetesIngress", "RequestID",
)  # fmt: skip
REDACTED = "REDACTED"  # Traefik's word for a redacted header's value


def kept_fields(default_mode: str, names: Mapping[str, str]) -> tuple[str, ...]:
    """The fields a line carries: `names` overrides `default_mode` (keep|drop) field by field."""
    unknown = set(names) - set(FIELDS)
    if unknown:
        raise ValueError(
            f"accessLog.fields.names: unknown fields {sorted(unknown)}; known: {', '.join(FIELDS)}"
        )
    return tuple(f for f in FIELDS if names.get(f, default_mode) == "keep")


def canonical(name: str) -> str:
    """A header name as Go writes it (`x-request-id` -> `X-Request-Id`): Traefik's log keys."""
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def header_fields(head: bytes, default: str, names: Mapping[str, str]) -> dict[str, str]:
    """`request_<Name>` for each header line of `head` (a request head, request line first) that
    `names` (lower-cased name -> keep|drop|redact) or else `default` keeps or redacts; a header
    sent more than once gives its values joined with ", " (RFC 9110 §5.3)."""
    out: dict[str, str] = {}
    for line in head.split(b"\r\n")[1:]:
        name, colon, value = line.partition(b":")
        if not colon:
            continue  # the blank line that ends the head
        text = name.decode("latin-1")
        mode = names.get(text.lower(), default)
        if mode == "drop":
            continue
        key = "request_" + canonical(text)
        shown = REDACTED if mode == "redact" else value.strip(b" \t").decode("latin-1")
        out[key] = shown if key not in out or mode == "redact" else f"{out[key]}, {shown}"
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Filters:
    """Traefik's `accessLog.filters`: a line is written when any filter given keeps it (all of
    them absent: every line). Status ranges are inclusive; minDuration in seconds (0: none)."""

    status_codes: tuple[tuple[int, int], ...] = ()
    retry_attempts: bool = False
    min_duration: float = 0.0

    @property
    def active(self) -> bool:
        return bool(self.status_codes or self.retry_attempts or self.min_duration)

    def keeps(self, status: int, retries: int, duration: float) -> bool:
        if any(low <= status <= high for low, high in self.status_codes):
            return True
        if self.retry_attempts and retries > 0:
            return True
        return 0 < self.min_duration < duration


@dataclass(frozen=True, slots=True, kw_only=True)
class Shape:
    """What a line holds (`fields`) and which exchanges get one (`filters`), resolved from the
    static configuration (settings/observability.py checked it; `of` reads its JSON form)."""

    kept: tuple[str, ...] = FIELDS
    headers_default: str = "drop"  # Traefik's: no header unless named
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-cased name -> mode
    filters: Filters = Filters()

    @property
    def logs_headers(self) -> bool:
        return self.headers_default != "drop" or any(m != "drop" for m in self.headers.values())

    @classmethod
    def of(cls, access: Mapping[str, Any]) -> Shape:
        fields, filters = access.get("fields", {}), access.get("filters", {})
        headers = fields.get("headers", {})
        return cls(
            kept=kept_fields(fields.get("defaultMode", "keep"), fields.get("names", {})),
            headers_default=headers.get("defaultMode", "drop"),
            headers={name.lower(): mode for name, mode in headers.get("names", {}).items()},
            filters=Filters(
                status_codes=tuple((int(lo), int(hi)) for lo, hi in filters.get("statusCodes", ())),
                retry_attempts=bool(filters.get("retryAttempts", False)),
                min_duration=float(filters.get("minDuration", 0.0)),
            ),
        )


def status_range(value: object) -> tuple[int, int]:
    """`200`, `"404"` or `"500-599"` (Traefik's statusCodes entries) as an inclusive range."""
    text = str(value).strip()
    low, dash, high = text.partition("-")
    if not low.strip().isdigit() or (dash and not high.strip().isdigit()):
        raise ValueError(f"{value!r} is not a status code or a range of them (`404`, `500-599`)")
    start, end = int(low), int(high) if dash else int(low)
    if not 100 <= start <= end <= 599:
        raise ValueError(f"{value!r}: status codes are 100-599, the range's start first")
    return start, end


def rfc3339(seconds: float) -> str:
    whole = int(seconds)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{int((seconds - whole) * 1000):03d}Z"


def json_line(
    fields: Mapping[str, Any], kept: tuple[str, ...], extra: Mapping[str, str] | None = None
) -> bytes:
    """`fields` (those `kept`, in FIELDS order), then `extra` (header fields), as one JSON line."""
    if len(kept) != len(FIELDS) or extra:
        fields = {**{k: fields[k] for k in kept}, **(extra or {})}
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


# Quoted CLF fields hold what a client sent (method, path) or a user wrote (router names): a quote
# or a newline there would forge fields or whole lines. Escaped as nginx does (`\xHH`).
_CLF_ESCAPES = {c: f"\\x{c:02X}" for c in (*range(0x20), 0x22, 0x5C, 0x7F)}


def _clf(value: object) -> str:
    return str(value).translate(_CLF_ESCAPES)


def common_line(fields: Mapping[str, Any], count: int) -> bytes:
    """Traefik's CLF: `host - - [time] "METHOD path PROTO" status size "referer" "agent" count
    "router" "server" Nms`; passerelle keeps no Referer or User-Agent, so those are "-"."""
    start = fields["StartUTC"]
    stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.strptime(start[:19], "%Y-%m-%dT%H:%M:%S"))
    service = f"http://{fields['ServiceAddr']}" if fields["ServiceAddr"] else "-"
    return (
        f'{fields["ClientHost"] or "-"} - - [{stamp}] "{_clf(fields["RequestMethod"])} '
        f'{_clf(fields["RequestPath"])} {_clf(fields["RequestProtocol"])}" {fields["DownstreamStatus"]} '
        f'{fields["DownstreamContentSize"]} "-" "-" {count} "{_clf(fields["RouterName"] or "-")}" '
        f'"{_clf(service)}" {fields["Duration"] // 1_000_000}ms\n'
    ).encode("utf-8", "backslashreplace")


def _address(peer: object) -> tuple[str, str]:
    """("ip:port", "ip") of a peername (IPv6 in brackets, as Go's RemoteAddr)."""
    if isinstance(peer, tuple) and len(peer) >= 2:
        host = str(peer[0])
        return (f"[{host}]:{peer[1]}" if ":" in host else f"{host}:{peer[1]}"), host
    return "", ""


class AccessLog:
    """Formats each exchange the recorder reports and hands the line to the writer."""

    __slots__ = ("_writer", "_kept", "_common", "_filters", "_headers", "_shape", "count")

    def __init__(self, writer: LineWriter, *, format: str, shape: Shape | None = None) -> None:
        shape = shape or Shape()
        self._writer = writer
        self._shape = shape
        self._kept = shape.kept
        self._common = format == "common"
        self._filters = shape.filters if shape.filters.active else None
        self._headers = shape.logs_headers and not self._common  # CLF has no place for them
        self.count = 0

    def record(self, ex: Exchange, conn: Connection, status: int, sent: int, duration: float) -> None:
        self.count += 1
        retries = ex.retries
        if self._filters is not None and not self._filters.keeps(status, retries, duration):
            return
        end = time.time()
        route = ex.route
        router, service, namespace, ingress = route.labels if route is not None else NO_ROUTE
        client, client_host = _address(conn.client)
        peer = conn.peer
        protocol = conn.protocol if ex.http11 else "HTTP/1.0"
        fields = {
            "time": rfc3339(end),
            "StartUTC": rfc3339(end - duration),
            "Duration": int(duration * 1e9),  # nanoseconds, as Traefik
            "ClientAddr": client,
            "ClientHost": client_host,
            "RequestMethod": ex.method.decode("latin-1"),
            "RequestHost": ex.host.decode("latin-1"),
            "RequestPath": ex.target.decode("latin-1"),
            "RequestProtocol": protocol,
            "DownstreamStatus": status,
            "DownstreamContentSize": sent,
            "RequestContentSize": ex.received,
            "EntryPointName": conn.entry.options.name,
            "RouterName": router,
            "ServiceName": service,
            "ServiceAddr": str(ex.pool.server) if ex.pool is not None else "",
            "RetryAttempts": retries,
            "TLSVersion": peer.version if peer is not None else "",
            "TLSServerName": peer.server_name if peer is not None else "",
            "KubernetesNamespace": namespace,
            "KubernetesIngress": ingress,
            "RequestID": request_id_in(ex.head).decode("latin-1"),
        }
        if self._common:
            self._writer.append(common_line(fields, self.count))
            return
        shape = self._shape
        extra = header_fields(ex.head, shape.headers_default, shape.headers) if self._headers else None
        self._writer.append(json_line(fields, self._kept, extra))

    def reopen(self) -> None:
        self._writer.reopen()

    def close(self) -> None:
        self._writer.close()
