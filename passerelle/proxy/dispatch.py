"""What a request whose head is complete gets, whichever protocol brought it (HTTP/1.1 or a stream).

`dispatch` routes it and decides whether passerelle answers it itself: 421 when its Host has other
TLS options than the connection's handshake, 404 without a route, the route's redirect, 503 for a
service without servers. Otherwise it returns the upstream head, with the client-certificate lines
the route asks for. `TlsPeer` is what one TLS connection's handshake settled, read once.
"""

from __future__ import annotations

import logging
import ssl
from typing import TYPE_CHECKING

from passerelle.http.errors import NOT_FOUND, canned
from passerelle.tls.certinfo import client_cert_headers
from passerelle.tls.clientcert import ClientCertSpec
from passerelle.tls.contexts import verifies_clients

if TYPE_CHECKING:
    from passerelle.proxy.dataplane import EntryPoint, Route

log = logging.getLogger("passerelle.proxy")
_CRLF = b"\r\n"


class TlsPeer:
    """A TLS connection's SNI-chosen context and the client's certificate (the leaf: Python's ssl
    gives no chain), verified against CAs unless the option's clientAuthType takes any."""

    __slots__ = ("context", "cert", "verified", "_lines")

    def __init__(self, ssl_object: ssl.SSLObject) -> None:
        self.context = ssl_object.context
        self.cert = ssl_object.getpeercert(binary_form=True)
        self.verified = self.cert is not None and verifies_clients(self.context)
        self._lines: dict[ClientCertSpec, bytes] = {}

    def cert_lines(self, spec: ClientCertSpec) -> bytes:
        """The header lines `spec` asks for about this connection's certificate, made once.

        Only a verified certificate is described; without one the backend gets no certificate
        headers (nginx level: `ssl-client-verify: NONE`), and the client's own copies of them were
        dropped with the other forwarded headers (http/headers.py).
        """
        lines = self._lines.get(spec)
        if lines is None:
            lines = self._lines[spec] = _lines(
                spec, [self.cert] if self.cert is not None and self.verified else []
            )
        return lines


def _lines(spec: ClientCertSpec, chain: list[bytes]) -> bytes:
    try:
        headers = client_cert_headers(spec, chain)
    except ValueError as e:  # the TLS stack accepted a certificate cryptography cannot read
        log.warning("client certificate not described to the backend: %s", e)
        headers = []
    return b"".join(b"%s: %s\r\n" % header for header in headers)


def dispatch(
    entry: EntryPoint, peer: TlsPeer | None, method: bytes, target: bytes, host: bytes, head: bytes
) -> tuple[Route | None, bytes, bytes | None]:
    """(route, the head to send upstream, or the answer passerelle gives itself)."""
    route = entry.table.match(host, target)
    local = None
    if peer is not None and entry.tls is not None and entry.tls.misdirected(peer.context, host):
        local = canned(421, f"{host.decode('latin-1')} needs a connection of its own (TLS options)")
    elif route is None:
        local = NOT_FOUND if method != b"HEAD" else canned(404, head=True)
    elif route.redirect is not None:
        local = route.redirect.response(host, target, method)
    elif not route.upstream.pools.items:
        local = canned(503, route.upstream.unavailable, head=method == b"HEAD")
    elif route.client_cert is not None:
        lines = peer.cert_lines(route.client_cert) if peer is not None else _lines(route.client_cert, [])
        head = head[:-2] + lines + _CRLF
    return route, head, local
