"""What a request whose head is complete gets, whichever protocol brought it (HTTP/1.1 or a stream).

`dispatch` answers a pending ACME HTTP-01 token's request first (proxy/acme.py), then routes it,
and `decide` (pure, asked by explain too) says whether passerelle answers it itself: 421 when its
Host has other TLS options than the connection's handshake, 404 without a route, the route's
redirect, 503 for a service without servers. Otherwise dispatch returns the
upstream head, with the client-certificate lines the route asks for. `TlsPeer` is what one TLS
connection's handshake settled, read once.
"""

from __future__ import annotations

import logging
import ssl
from typing import TYPE_CHECKING, cast

from passerelle.http.errors import NOT_FOUND as NOT_FOUND_ANSWER
from passerelle.http.errors import canned
from passerelle.middlewares.headers import HeadEdit, edit_head
from passerelle.tls.certinfo import client_cert_headers
from passerelle.tls.clientcert import ClientCertSpec
from passerelle.tls.contexts import SERVER_NAME, verifies_clients
from passerelle.tls.dispatcher import Dispatcher

if TYPE_CHECKING:
    from passerelle.observability.recorder import Recorder
    from passerelle.proxy.connection import Exchange
    from passerelle.proxy.dataplane import EntryPoint, Route
    from passerelle.proxy.upstream import Pool, UpstreamConnection
    from passerelle.routing.conditional import ConditionalTable

log = logging.getLogger("passerelle.proxy")
_CRLF = b"\r\n"
# Methods a request may be sent again with after a pooled connection failed under it (RFC 9110
# §9.2.2); others only when the server said it did not process them (`UpstreamConnection.refused`).
IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE"})


def connect_retry(ex: Exchange, pool: Pool, observer: Recorder | None) -> Pool | None:
    """After `pool` failed to connect: the one other pool `ex` tries (then `ex.pool`), or None,
    and the client gets a 502. Counted for metrics either way."""
    ex.tries += 1
    route = ex.route
    assert route is not None
    if observer is not None:
        observer.connect_failed(route)
    retry = route.upstream.pools.pick(avoid=pool) if ex.tries < 2 else None
    if retry is not None:
        ex.retries += 1
        if observer is not None:
            observer.retried(route)
        ex.pool = retry
    return retry


def connect_failure(pool: Pool, error: OSError | TimeoutError) -> str:
    why = "timed out" if isinstance(error, TimeoutError) else (error.strerror or str(error))
    return f"could not connect to upstream {pool.server}: {why}"


def replays_stale(ex: Exchange, conn: UpstreamConnection, stale: bool, observer: Recorder | None) -> bool:
    """True (and `ex` marked, the retry counted) when the upstream closed a pooled (`stale`)
    connection as `ex` reused it, before any of its body went: nothing was processed, so the
    request goes again, once, on a fresh connection."""
    if not stale or ex.body_sent or ex.retried_stale or not (conn.refused or ex.method in IDEMPOTENT):
        return False
    ex.retried_stale = True
    ex.retries += 1
    if observer is not None:
        observer.retried(ex.route)
    return True


class TlsPeer:
    """A TLS connection's SNI-chosen context and the client's certificate (the leaf: Python's ssl
    gives no chain), verified against CAs unless the option's clientAuthType takes any."""

    __slots__ = ("context", "cert", "verified", "_lines", "version", "server_name", "_asked")

    def __init__(self, ssl_object: ssl.SSLObject) -> None:
        self.context = ssl_object.context
        self.cert = ssl_object.getpeercert(binary_form=True)
        self.verified = self.cert is not None and verifies_clients(self.context)
        # For the access log: "1.3" as Traefik writes TLSVersion, and the SNI name the client sent.
        self.version = (ssl_object.version() or "").removeprefix("TLSv")
        self.server_name: str = getattr(ssl_object, SERVER_NAME, None) or ""
        self._lines: dict[ClientCertSpec, bytes] = {}
        self._asked: tuple[bytes, object, bool] = (b"", None, False)  # see misdirected()

    def misdirected(self, tls: Dispatcher, host: bytes) -> bool:
        """`tls.misdirected` for this connection's handshake, kept for the last Host asked about
        under the live SNI table: a connection's requests nearly always name one host, and with
        per-host TLS options the answer costs a decode, a lower-casing and lookups each time."""
        table = tls.table
        asked_host, asked_table, answer = self._asked
        if host != asked_host or table is not asked_table:
            answer = tls.misdirected(self.context, host)
            self._asked = (host, table, answer)
        return answer

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


# What `decide` says a request gets, in the order it is decided.
MISDIRECTED = "misdirected"  # 421
NOT_FOUND = "notFound"  # 404
REDIRECT = "redirect"  # the route's redirect (or 400 for a Host that cannot be redirected)
UNAVAILABLE = "unavailable"  # 503: the route's service has no servers (route.upstream.unavailable)
PROXY = "proxy"


def decide(route: Route | None, misdirected: bool) -> str:
    """What a request gets, from its route (None: no router matched) and whether its Host needs
    other TLS options than its connection's handshake ran under: one of the names above."""
    if misdirected:
        return MISDIRECTED
    if route is None:
        return NOT_FOUND
    if route.redirect is not None:
        return REDIRECT
    if not route.upstream.pools.items:
        return UNAVAILABLE
    return PROXY


def dispatch(
    entry: EntryPoint, peer: TlsPeer | None, method: bytes, target: bytes, host: bytes, head: bytes
) -> tuple[Route | None, bytes, bytes | None]:
    """(route, the head to send upstream, or the answer passerelle gives itself)."""
    challenges = entry.challenges  # ACME HTTP-01 tokens pending: before any route (proxy/acme.py)
    if challenges is not None and method == b"GET":
        answer = challenges.get(target)
        if answer is not None:
            return None, head, answer
    table = entry.table
    if table.plain:
        route = table.match(host, target)
    else:  # Gateway API routers: conditions, weighted splits, request filters (routing/conditional.py)
        route = cast("ConditionalTable[Route]", table).match_request(host, target, method, head)
    misdirected = peer is not None and entry.tls is not None and peer.misdirected(entry.tls, host)
    edits: tuple[HeadEdit, ...] = ()
    if route is not None and not misdirected:  # a misdirected request gets its 421, nothing else
        if route.allow is not None:  # on the head as the data plane made it, before any edit
            refused = route.allow.refusal(head, method)
            if refused is not None:
                return route, head, refused
        if route.regex_redirect is not None:  # on the URL as it came, before any rewrite
            scheme = b"https" if entry.tls is not None else b"http"
            redirect = route.regex_redirect.answer(scheme, host, target, method)
            if redirect is not None:
                return route, head, redirect
        edits = route.edits  # Gateway filters, Ingress path and header annotations, Traefik middlewares
        if route.split is not None:  # a weighted split: the part's route (none left: the split's 500)
            part = route.split.pick()
            if part is not None:
                route = part
                edits = (*edits, *part.edits)  # filters on the backendRef, after the rule's
    if edits:
        head = edit_head(head, edits)
    action = decide(route, misdirected)
    if action is PROXY:
        assert route is not None
        if route.client_cert is not None:
            lines = peer.cert_lines(route.client_cert) if peer is not None else _lines(route.client_cert, [])
            head = head[:-2] + lines + _CRLF
        return route, head, None
    if action is MISDIRECTED:
        local = canned(421, f"{host.decode('latin-1')} needs a connection of its own (TLS options)")
    elif action is NOT_FOUND:
        local = NOT_FOUND_ANSWER if method != b"HEAD" else canned(404, head=True)
    elif action is REDIRECT:
        assert route is not None and route.redirect is not None
        local = route.redirect.response(host, target, method)
    else:
        assert route is not None
        local = canned(route.upstream.status, route.upstream.unavailable, head=method == b"HEAD")
    return route, head, local
