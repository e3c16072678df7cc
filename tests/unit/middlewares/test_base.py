"""The middleware registry: Middleware specs parsed, unsupported kinds set aside, errors phrased."""

from __future__ import annotations

from typing import Any

import pytest

from passerelle.middlewares.base import KINDS, Unsupported, parse_middleware
from passerelle.middlewares.pass_tls_client_cert import PassTLSClientCert
from passerelle.middlewares.redirect_scheme import RedirectScheme
from passerelle.tls.clientcert import ClientCertSpec, InfoFields, SubjectFields


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"redirectScheme": {"scheme": "https"}}, RedirectScheme(scheme="https")),
        (
            {"redirectScheme": {"scheme": "https", "port": "8443", "permanent": True}},
            RedirectScheme(scheme="https", port=8443, permanent=True),
        ),
        ({"redirectScheme": {"scheme": "HTTP", "port": 80}}, RedirectScheme(scheme="http", port=80)),
        ({"redirectScheme": {"scheme": "https", "port": ""}}, RedirectScheme(scheme="https")),
        ({"headers": {"customRequestHeaders": {}}}, Unsupported(kind="headers", known=True)),
        (
            {"passTLSClientCert": {"pem": True, "info": {"subject": {"commonName": True}}}},
            PassTLSClientCert(
                spec=ClientCertSpec(pem=True, info=InfoFields(subject=SubjectFields(common_name=True)))
            ),
        ),
        ({"frobnicate": {}}, Unsupported(kind="frobnicate", known=False)),
    ],
)
def test_parse(spec: dict[str, Any], expected: object) -> None:
    assert parse_middleware(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (None, "exactly one middleware kind"),
        ({"redirectScheme": {}, "headers": {}}, "exactly one middleware kind"),
        ({"redirectScheme": {}}, "spec.redirectScheme: `scheme` is required"),
        ({"redirectScheme": {"scheme": "ftp"}}, "scheme 'ftp' must be http or https"),
        ({"redirectScheme": {"scheme": "https", "port": "x"}}, "`port` 'x' must be a port number"),
        ({"redirectScheme": {"scheme": "https", "port": 70000}}, "must be between 1 and 65535"),
        ({"redirectScheme": {"scheme": "https", "permanant": True}}, "unknown key 'permanant'"),
        ({"redirectScheme": {"scheme": "https", "permanent": "yes"}}, "`permanent` 'yes'"),
        ({"redirectScheme": "https"}, "must be an object"),
        ({"passTLSClientCert": "pem"}, "spec.passTLSClientCert: must be an object"),
        (
            {"passTLSClientCert": {"pem": True, "infos": {}}},
            "spec.passTLSClientCert: unknown key 'infos'; did you mean 'info'?",
        ),
    ],
)
def test_invalid_specs_say_what_is_wrong(spec: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_middleware(spec)


def test_codec_shape_round_trips() -> None:
    spec = RedirectScheme(scheme="https", port=8443, permanent=True, host="a.example")
    assert RedirectScheme.from_dict(spec.to_dict()) == spec


def test_one_table_of_classes_parses_and_encodes_every_kind() -> None:
    samples = {
        "redirectScheme": {"scheme": "https", "port": 8443, "permanent": True},
        "passTLSClientCert": {"pem": True, "info": {"notAfter": True, "issuer": {"country": True}}},
    }
    assert set(KINDS) == set(samples)  # a kind added to the table gets a sample here
    for kind, body in samples.items():
        value = parse_middleware({kind: body})
        assert KINDS[kind].kind == kind and type(value) is KINDS[kind]
        assert KINDS[kind].from_dict(value.to_dict()) == value  # type: ignore[union-attr]
