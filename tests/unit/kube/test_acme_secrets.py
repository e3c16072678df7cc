"""ACME records as Secrets (kube/acme_secrets.py): round trips, names the API accepts, labels."""

from __future__ import annotations

import base64
import datetime
import re

import pytest
import trustme

from passerelle.acme.records import HTTP_01, TLS_ALPN_01, Account, Challenge, StoredCertificate
from passerelle.kube import acme_secrets as layout

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def stored(*names: str) -> StoredCertificate:
    leaf = trustme.CA().issue_cert(*names)
    return StoredCertificate.from_pem(
        resolver="le",
        names=names,
        cert_pem="".join(p.bytes().decode() for p in leaf.cert_chain_pems),
        key_pem=leaf.private_key_pem.bytes().decode(),
        renew_at=datetime.datetime(2027, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
    )


def test_a_certificate_is_a_tls_secret_that_any_reader_of_tls_secrets_can_serve() -> None:
    cert = stored("b.example.com", "a.example.com")
    secret = layout.certificate_to_secret(cert)
    assert secret["type"] == "kubernetes.io/tls"
    assert base64.b64decode(secret["data"]["tls.crt"]).decode() == cert.cert_pem
    assert base64.b64decode(secret["data"]["tls.key"]).decode() == cert.key_pem
    meta = secret["metadata"]
    assert meta["labels"] == {layout.KIND: "certificate", layout.RESOLVER: "le"}
    assert meta["annotations"][layout.NAMES] == "b.example.com,a.example.com"  # as ordered
    assert meta["annotations"][layout.NOT_AFTER] == cert.not_after.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert meta["annotations"][layout.RENEW_AT] == "2027-01-02T03:04:05Z"
    assert layout.ARI_NEXT not in meta["annotations"]
    assert layout.certificate_of(secret) == cert


def test_accounts_and_challenges_round_trip() -> None:
    account = Account(
        ca_server="https://ca/dir", uri="https://ca/acct/7", key_json='{"kty": "EC"}', email="a@b"
    )
    secret = layout.account_to_secret("le", account)
    assert secret["type"] == "Opaque" and secret["metadata"]["name"] == "passerelle-acme-account-le"
    assert layout.account_of(secret) == account
    for challenge in (
        Challenge(type=HTTP_01, token="Ab_-9", key_authorization="Ab_-9.thumb"),
        Challenge(type=TLS_ALPN_01, name="a.example.com", cert_pem="C", key_pem="K"),
    ):
        secret = layout.challenge_to_secret(challenge)
        assert secret["metadata"]["labels"] == {
            layout.KIND: "challenge",
            layout.CHALLENGE_TYPE: challenge.type,
        }
        assert layout.challenge_of(secret) == challenge


@pytest.mark.parametrize(
    "names",
    [
        ("a.example.com",),
        ("x" * 63 + ".example.com", "b.example.com"),
        ("x" * 59 + ".example.com",),
        ("xn--bcher-kva.example",),
    ],
)
def test_names_are_dns_subdomains(names: tuple[str, ...]) -> None:
    cert_id = stored(*names).id
    for name in (
        layout.certificate_secret("le", cert_id),
        layout.lease_name("le", cert_id),
        layout.lease_name("le", "account"),
        layout.account_secret("le"),
        layout.challenge_secret(Challenge(type=HTTP_01, token="Ab_-9", key_authorization="")),
    ):
        assert DNS_SUBDOMAIN.match(name) and len(name) <= 253, name


def test_different_tokens_are_different_secrets() -> None:
    one = layout.challenge_secret(Challenge(type=HTTP_01, token="ab", key_authorization=""))
    two = layout.challenge_secret(Challenge(type=HTTP_01, token="AB", key_authorization=""))
    alpn = layout.challenge_secret(Challenge(type=TLS_ALPN_01, name="ab"))
    assert len({one, two, alpn}) == 3


@pytest.mark.parametrize(
    "secret",
    [
        {"metadata": {"annotations": {layout.NAMES: "a"}}, "data": {}},  # no tls.crt
        {"metadata": {"annotations": {layout.NAMES: ""}}, "data": {"tls.crt": "", "tls.key": ""}},
        {"metadata": {}, "data": {"tls.crt": "", "tls.key": ""}},  # no names
        {"metadata": {"annotations": {layout.NAMES: "a"}}, "data": {"tls.crt": "!!", "tls.key": ""}},
    ],
)
def test_an_unreadable_certificate_secret_is_an_error(secret: dict[str, object]) -> None:
    with pytest.raises((ValueError, KeyError, TypeError)):
        layout.certificate_of(secret)
