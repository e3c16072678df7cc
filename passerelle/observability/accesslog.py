"""The access log: one line per exchange, JSON (the default) or Traefik's common log format.

JSON field names are Traefik's (`pkg/middlewares/accesslog/logdata.go`) where it has the field,
so log pipelines written for Traefik keep working; passerelle adds `TLSServerName` (the SNI),
`KubernetesNamespace` and `KubernetesIngress` (of the Ingress the router came from) and
`RequestID` (made here: a per-worker random prefix and a counter). `fields` keeps or drops fields
by name (Traefik's `fields.defaultMode` and `fields.names`). Formatting is pure (`json_line`,
`common_line`); `AccessLog` gathers one exchange's fields and hands the line to a LineWriter.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from passerelle.observability.recorder import NO_ROUTE

if TYPE_CHECKING:
    from passerelle.observability.recorder import Connection
    from passerelle.observability.writer import LineWriter
    from passerelle.proxy.connection import Exchange

FIELDS = (
    "time", "StartUTC", "Duration", "ClientAddr", "ClientHost", "RequestMethod", "RequestHost", "RequestPath",
    "RequestProtocol", "DownstreamStatus", "DownstreamContentSize", "RequestContentSize", "EntryPointName",
    "RouterName", "ServiceName", "ServiceAddr", "TLSVersion", "TLSServerName", "KubernetesNamespace",
    "KubernetesIngress", "RequestID",
)  # fmt: skip


def kept_fields(default_mode: str, names: Mapping[str, str]) -> tuple[str, ...]:
    """The fields a line carries: `names` overrides `default_mode` (keep|drop) field by field."""
    unknown = set(names) - set(FIELDS)
    if unknown:
        raise ValueError(
            f"accessLog.fields.names: unknown fields {sorted(unknown)}; known: {', '.join(FIELDS)}"
        )
    return tuple(f for f in FIELDS if names.get(f, default_mode) == "keep")


def rfc3339(seconds: float) -> str:
    whole = int(seconds)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{int((seconds - whole) * 1000):03d}Z"


def json_line(fields: Mapping[str, Any], kept: tuple[str, ...]) -> bytes:
    if len(kept) != len(FIELDS):
        fields = {k: fields[k] for k in kept}
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

    __slots__ = ("_writer", "_kept", "_common", "_prefix", "count")

    def __init__(self, writer: LineWriter, *, format: str, kept: tuple[str, ...] = FIELDS) -> None:
        self._writer = writer
        self._kept = kept
        self._common = format == "common"
        self._prefix = os.urandom(4).hex()
        self.count = 0

    def record(self, ex: Exchange, conn: Connection, status: int, sent: int, duration: float) -> None:
        self.count += 1
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
            "TLSVersion": peer.version if peer is not None else "",
            "TLSServerName": peer.server_name if peer is not None else "",
            "KubernetesNamespace": namespace,
            "KubernetesIngress": ingress,
            "RequestID": f"{self._prefix}{self.count:08x}",
        }
        self._writer.append(
            common_line(fields, self.count) if self._common else json_line(fields, self._kept)
        )

    def close(self) -> None:
        self._writer.close()
