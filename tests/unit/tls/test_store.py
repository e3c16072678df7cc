"""store: certificate validation, the generated default, SNI name selection."""

from __future__ import annotations

import datetime

import pytest
import trustme
from cryptography import x509

from passerelle.model import Certificate
from passerelle.tls.store import (
    DEFAULT_SUBJECT,
    CertificateError,
    NameIndex,
    certificate_index,
    generate_default,
    parse_ca_bundle,
    parse_pair,
)

CA = trustme.CA()


def pair(*names: str, **kwargs: object) -> tuple[bytes, bytes]:
    cert = CA.issue_cert(*names, **kwargs)  # type: ignore[arg-type]
    return b"".join(p.bytes() for p in cert.cert_chain_pems), cert.private_key_pem.bytes()


def test_a_valid_pair_gives_names_fingerprint_and_canonical_pem() -> None:
    chain, key = pair("Www.Example.com", "*.example.org")
    parsed = parse_pair(chain, key, source="Secret shop/www")
    c = parsed.certificate
    assert c.names == ("www.example.com", "*.example.org")
    assert len(c.fingerprint) == 64 and c.source == "Secret shop/www" and not c.default
    assert not parsed.expired
    assert c.key_pem.startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8 whatever the input
    assert len(x509.load_pem_x509_certificates(c.cert_pem.encode())) == 1  # trustme: leaf only


def test_a_key_of_another_certificate_is_refused() -> None:
    chain, _ = pair("a.example.com")
    _, other_key = pair("b.example.com")
    with pytest.raises(CertificateError, match="does not match"):
        parse_pair(chain, other_key)


@pytest.mark.parametrize(
    ("cert", "key", "message"),
    [
        (b"not a certificate", None, "tls.crt is not a PEM certificate"),
        (None, b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "tls.key is not"),
    ],
)
def test_bad_pem_is_refused(cert: bytes | None, key: bytes | None, message: str) -> None:
    chain, good_key = pair("a.example.com")
    with pytest.raises(CertificateError, match=message):
        parse_pair(cert or chain, key or good_key)


def test_expiry_is_reported_not_refused() -> None:
    chain, key = pair("old.example.com", not_after=datetime.datetime(2001, 1, 1, tzinfo=datetime.UTC))
    parsed = parse_pair(chain, key)
    assert parsed.expired and parsed.certificate.not_after == "2001-01-01T00:00:00Z"


def test_the_common_name_counts_as_a_name_as_in_traefik() -> None:
    chain, key = pair("b.example.com", common_name="Legacy.example.com")
    assert parse_pair(chain, key).certificate.names == ("legacy.example.com", "b.example.com")


def test_the_generated_default_says_what_it_is() -> None:
    c = generate_default()
    leaf = x509.load_pem_x509_certificate(c.cert_pem.encode())
    assert leaf.subject.rfc4514_string() == f"CN={DEFAULT_SUBJECT}" == "CN=PASSERELLE DEFAULT CERT"
    assert c.default and c.names == () and c.source == "generated"
    assert parse_pair(c.cert_pem, c.key_pem).certificate.fingerprint == c.fingerprint
    assert generate_default().fingerprint != c.fingerprint  # a new key each start


def test_ca_bundle() -> None:
    other = trustme.CA()
    bundle = parse_ca_bundle(CA.cert_pem.bytes() + other.cert_pem.bytes())
    assert bundle.count("BEGIN CERTIFICATE") == 2
    with pytest.raises(CertificateError, match="ca.crt"):
        parse_ca_bundle(b"nope")


def test_exact_name_then_one_label_wildcard() -> None:
    index = NameIndex(
        [("a.example.com", 1), ("*.example.com", 2), ("*.b.example.com", 3), ("a.example.com", 4)]
    )
    assert index.get("a.example.com") == 1  # exact first; the first value for a name wins
    assert index.get("z.example.com") == 2
    assert index.get("x.b.example.com") == 3
    assert index.get("x.y.example.com") is None  # one label only
    assert index.get("example.com") is None  # the wildcard does not cover its parent
    assert index.get("com") is None


def test_certificate_index_leaves_the_default_out() -> None:
    cert = Certificate(cert_pem="", key_pem="", names=("a.test",), fingerprint="f1")
    default = Certificate(cert_pem="", key_pem="", names=("a.test", "b.test"), fingerprint="f2", default=True)
    index = certificate_index([default, cert])
    assert index.get("a.test") is cert and index.get("b.test") is None


def test_repr_of_a_certificate_never_shows_its_key() -> None:
    c = generate_default()
    assert "PRIVATE KEY" in c.key_pem
    assert "PRIVATE KEY" not in repr(c) and "key_pem" not in repr(c)
    assert c.fingerprint in repr(c)
