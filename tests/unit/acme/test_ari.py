"""ARI (RFC 9773): the certificate identifier, the suggested window, and the schedule from it.

No CA on this machine offers renewalInfo (Debian's Pebble 2.4.0 has none), so this is where the
parsing and scheduling are checked; the controller stores the result as the certificate's
`renew_at`, which plan() honours (test_plan.py, "ARI says ...")."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from passerelle.acme import ari

NOW = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.UTC)
HOUR = datetime.timedelta(hours=1)


def leaf(key_identifier: bytes, serial: int) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "a.example")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(NOW)
        .not_valid_after(NOW + 90 * 24 * HOUR)
        .add_extension(
            x509.AuthorityKeyIdentifier(
                key_identifier, authority_cert_issuer=None, authority_cert_serial_number=None
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )


def test_the_identifier_is_the_one_in_the_rfc() -> None:
    # RFC 9773 §4.1: keyIdentifier 69:88:5B:6B:87:46:40:41:E1:B3:7B:84:7B:A0:AE:2C:DE:01:C8:D4 and
    # serial 0x87654321 (DER 00 87 65 43 21: a leading zero keeps it positive)
    cert = leaf(bytes.fromhex("69885B6B87464041E1B37B847BA0AE2CDE01C8D4"), 0x87654321)
    assert ari.certificate_id(cert) == "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"


def test_a_serial_without_the_high_bit_needs_no_leading_zero() -> None:
    assert ari.certificate_id(leaf(b"\x01", 0x7F)).split(".")[1] == "fw"


def window(start: str, end: str) -> dict[str, Any]:
    return {"suggestedWindow": {"start": start, "end": end}, "explanationURL": "https://ca/why"}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({}, "no suggestedWindow"),
        ({"suggestedWindow": "soon"}, "no suggestedWindow"),
        ({"suggestedWindow": {"start": "2026-12-02T00:00:00Z"}}, "not two RFC 3339 times"),
        (window("tomorrow", "2026-12-03T00:00:00Z"), "not two RFC 3339 times"),
        (window("2026-12-02T00:00:00", "2026-12-03T00:00:00"), "no time zone"),
        (window("2026-12-03T00:00:00Z", "2026-12-02T00:00:00Z"), "ends .* before it starts"),
    ],
)
def test_bad_windows_are_errors(body: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        ari.suggested_window(body)


def test_a_window_is_read_in_utc() -> None:
    start, end = ari.suggested_window(window("2026-12-02T01:00:00+01:00", "2026-12-03T00:00:00Z"))
    assert (start, end) == (NOW + 12 * HOUR, NOW + 36 * HOUR) and start.tzinfo == datetime.UTC


CASES = [
    # (name, window from NOW in hours, retry_after, draw, expected renew_at and next check from NOW in hours)
    ("start of the window", (10, 20), 3600.0, 0.0, 10, 1),
    ("middle of the window", (10, 20), 3600.0, 0.5, 15, 1),
    ("a window already over: renew now", (-20, -10), 3600.0, 0.7, 0, 1),
    ("a window under way, drawn in the past: now", (-10, 10), 3600.0, 0.25, 0, 1),
    ("no Retry-After: six hours", (10, 20), None, 0.0, 10, 6),
    ("Retry-After below a minute is a minute", (10, 20), 1.0, 0.0, 10, 1 / 60),
    ("Retry-After above a day is a day", (10, 20), 30 * 86400.0, 0.0, 10, 24),
]


@pytest.mark.parametrize(
    ("hours", "retry_after", "draw", "renew", "again"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_schedule(
    hours: tuple[int, int], retry_after: float | None, draw: float, renew: float, again: float
) -> None:
    suggested = (NOW + hours[0] * HOUR, NOW + hours[1] * HOUR)
    renew_at, next_check = ari.schedule(suggested, NOW, retry_after=retry_after, draw=draw)
    assert renew_at == NOW + renew * HOUR
    assert next_check == NOW + again * HOUR
