from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from passerelle.http.errors import canned
from passerelle.http.headers import (
    DROP,
    REQUEST_DROP,
    REQUEST_HEADERS,
    connection_named,
    forwarded_port,
    forwarded_static,
)


def test_connection_names_only_extra_headers() -> None:
    assert connection_named(b"keep-alive") == frozenset()
    assert connection_named(b"Close, X-Foo ,x-bar,,") == {b"x-foo", b"x-bar"}
    assert connection_named(b"Upgrade") == frozenset()


def test_forwarded_headers_from_clients_are_dropped() -> None:
    for name in (
        b"x-forwarded-for",
        b"x-real-ip",
        b"x-forwarded-host",
        b"x-forwarded-port",
        b"x-forwarded-proto",
    ):
        assert name in REQUEST_DROP
    assert b"host" not in REQUEST_DROP and b"content-length" not in REQUEST_DROP


def test_identity_headers_are_dropped_in_every_mix_of_dashes_and_underscores() -> None:
    """CGI/WSGI servers read X_Forwarded-For as HTTP_X_FORWARDED_FOR: a spoof unless dropped too."""
    for name in (b"x_forwarded_for", b"x-forwarded_for", b"x_real-ip", b"x-forwarded-tls-client_cert",
                 b"ssl_client-verify", b"client_cert_chain"):  # fmt: skip
        assert REQUEST_HEADERS[name] == DROP, name
    assert b"transfer_encoding" not in REQUEST_HEADERS  # not a framing header: forwarded as it is


def test_client_certificate_headers_from_clients_are_dropped() -> None:
    for name in (
        b"x-forwarded-tls-client-cert",
        b"x-forwarded-tls-client-cert-info",
        b"x-forwarded-tls-client-cert-infos",
        b"x_forwarded_tls_client_cert",
        b"client-cert",
        b"client-cert-chain",
        b"ssl-client-verify",
        b"ssl-client-subject-dn",
        b"ssl-client-issuer-dn",
        b"ssl-client-cert",
    ):
        assert REQUEST_HEADERS[name] == DROP


def test_forwarded_port() -> None:
    assert forwarded_port(b"example.com:8443", b"80") == b"8443"
    assert forwarded_port(b"example.com", b"80") == b"80"
    assert forwarded_port(b"[::1]", b"443") == b"443"
    assert forwarded_port(b"[::1]:9000", b"443") == b"9000"


def test_forwarded_static_block() -> None:
    assert forwarded_static(b"10.0.0.1", b"http") == (
        b"X-Forwarded-For: 10.0.0.1\r\nX-Real-Ip: 10.0.0.1\r\nX-Forwarded-Proto: http\r\n"
    )


@given(st.sampled_from([400, 404, 408, 414, 431, 502, 503, 504]), st.text(max_size=80), st.booleans())
def test_canned_responses_are_well_framed(status: int, detail: str, close: bool) -> None:
    response = canned(status, detail.replace("\r", "").replace("\n", ""), close=close)
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0].startswith(b"HTTP/1.1 %d " % status)
    length = next(int(line.split(b":")[1]) for line in lines if line.startswith(b"Content-Length:"))
    assert length == len(body) and body.endswith(b"\n")
    assert (b"Connection: close" in lines) == close
    assert canned(status, "x", head=True) == canned(status, "x").partition(b"\r\n\r\n")[0] + b"\r\n\r\n"
