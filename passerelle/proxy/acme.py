"""ACME challenges as a worker answers them (the control plane sends them: `challenges` message).

HTTP-01 (RFC 8555 §8.3): `GET /.well-known/acme-challenge/<token>` on a challenge entry point is
answered with the key authorization, before any route, redirect or middleware, for pending tokens
only (`EntryPoint.challenges`, None when none are pending: the only per-request cost is that
check). TLS-ALPN-01 (RFC 8737): a handshake for a pending name that offers ALPN `acme-tls/1` gets
the validation certificate, in a context that speaks only acme-tls/1 (tls/contexts.py Dispatcher).
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable, Mapping
from typing import Any

from passerelle.model import Certificate
from passerelle.tls.contexts import load_chain

CHALLENGE_PREFIX = "/.well-known/acme-challenge/"
ACME_TLS_ALPN = "acme-tls/1"


def http_answers(tokens: Mapping[str, str]) -> dict[bytes, bytes]:
    """request-target -> the whole response, for each pending token."""
    out = {}
    for token, key_authorization in tokens.items():
        body = key_authorization.encode()
        out[(CHALLENGE_PREFIX + token).encode()] = (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: %d\r\nCache-Control: no-store\r\n\r\n%s" % (len(body), body)
        )
    return out


def alpn_contexts(items: Iterable[Mapping[str, Any]]) -> dict[str, ssl.SSLContext]:
    """SNI name -> a context serving its validation certificate over acme-tls/1 only."""
    out = {}
    for item in items:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2  # RFC 8737 §4
        context.set_alpn_protocols([ACME_TLS_ALPN])
        cert = Certificate(
            cert_pem=item["certPem"], key_pem=item["keyPem"], names=(item["name"],), fingerprint=""
        )
        load_chain(context, cert)
        out[str(item["name"]).lower()] = context
    return out
