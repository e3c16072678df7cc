"""The pieces of protocol.py that need no CA: the TLS-ALPN-01 certificate, chain choice, keys."""

from __future__ import annotations

import datetime
import hashlib

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from passerelle.acme.protocol import (
    ACME_IDENTIFIER,
    alpn_certificate,
    new_certificate_key,
    pick_chain,
    retry_after_seconds,
)


def test_the_alpn_certificate_carries_the_key_authorization_digest() -> None:
    cert_pem, _ = alpn_certificate("a.example.com", "token.thumbprint")
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    extension = cert.extensions.get_extension_for_oid(ACME_IDENTIFIER)
    assert extension.critical  # RFC 8737 §3
    assert extension.value.value == b"\x04\x20" + hashlib.sha256(b"token.thumbprint").digest()
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["a.example.com"]


def _self_signed(cn: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.UTC)
    builder = x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
    builder = builder.serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def test_the_preferred_chain_is_chosen_by_its_top_issuer() -> None:
    leaf = _self_signed("a.test")
    chains = [leaf + _self_signed("Root One"), leaf + _self_signed("Root Two")]
    assert pick_chain(chains, "Root Two") == chains[1]
    assert pick_chain(chains, "nobody") == chains[0]
    assert pick_chain(chains, "") == chains[0]


@pytest.mark.parametrize(("key_type", "kind", "size"), [("EC256", ec.EllipticCurvePrivateKey, 256),
                                                        ("EC384", ec.EllipticCurvePrivateKey, 384),
                                                        ("RSA2048", rsa.RSAPrivateKey, 2048)])  # fmt: skip
def test_certificate_keys(key_type: str, kind: type, size: int) -> None:
    key = serialization.load_pem_private_key(new_certificate_key(key_type).encode(), password=None)
    assert isinstance(key, kind) and key.key_size == size


@pytest.mark.parametrize(
    ("header", "seconds"),
    [(None, 0.0), ("120", 120.0), ("soon", 0.0), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)],
)
def test_retry_after(header: str | None, seconds: float) -> None:
    response = requests.Response()
    if header is not None:
        response.headers["Retry-After"] = header
    assert retry_after_seconds(response) == seconds


def test_retry_after_as_a_date_in_the_future() -> None:
    response = requests.Response()
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
    response.headers["Retry-After"] = later.strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert 3500 < retry_after_seconds(response) <= 3600
