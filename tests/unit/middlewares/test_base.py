"""The middleware registry: Middleware specs parsed, unsupported kinds set aside, errors phrased."""

from __future__ import annotations

from typing import Any

import pytest

from passerelle.middlewares.base import KINDS, SPECS, Unsupported, parse_middleware
from passerelle.middlewares.headers import HeaderEdits, Headers
from passerelle.middlewares.pass_tls_client_cert import PassTLSClientCert
from passerelle.middlewares.redirect_scheme import RedirectScheme
from passerelle.middlewares.strip_prefix import StripPrefix
from passerelle.middlewares.url_rewrite import FULL, PREFIX, PathRewrite, UrlRewrite
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
        ({"headers": {"customRequestHeaders": {}}}, Headers()),
        (
            {
                "headers": {
                    "customRequestHeaders": {"X-A": "1", "X-Gone": ""},
                    "customResponseHeaders": {"Server": ""},
                }
            },
            Headers(
                request=HeaderEdits(set=(("X-A", "1"),), remove=("X-Gone",)),
                response=HeaderEdits(remove=("Server",)),
            ),
        ),
        (  # security headers that are one fixed response header; the custom values win over the flags
            {
                "headers": {
                    "frameDeny": True,
                    "customFrameOptionsValue": "SAMEORIGIN",
                    "contentTypeNosniff": True,
                    "browserXssFilter": False,
                    "referrerPolicy": "no-referrer",
                    "contentSecurityPolicy": "",
                }
            },
            Headers(
                response=HeaderEdits(
                    set=(
                        ("X-Frame-Options", "SAMEORIGIN"),
                        ("X-Content-Type-Options", "nosniff"),
                        ("Referrer-Policy", "no-referrer"),
                    )
                )
            ),
        ),
        (
            {"headers": {"frameDeny": True, "stsSeconds": 3600, "accessControlAllowOriginList": ["*"]}},
            Unsupported(kind="headers", known=True, options=("accessControlAllowOriginList", "stsSeconds")),
        ),
        (
            {"stripPrefix": {"prefixes": ["/api", " /v1"], "forceSlash": False}},
            StripPrefix(prefixes=("/api", "/v1")),
        ),
        (
            {"addPrefix": {"prefix": "/v2"}},
            UrlRewrite(path=PathRewrite(type=PREFIX, value="/v2", matched="/")),
        ),
        (
            {"replacePath": {"path": "/x"}},
            UrlRewrite(path=PathRewrite(type=FULL, value="/x"), replaced_path=True),
        ),
        ({"basicAuth": {"secret": "users"}}, Unsupported(kind="basicAuth", known=True)),
        (
            {"passTLSClientCert": {"pem": True, "info": {"subject": {"commonName": True}}}},
            PassTLSClientCert(
                spec=ClientCertSpec(pem=True, info=InfoFields(subject=SubjectFields(common_name=True)))
            ),
        ),
        ({"frobnicate": {}}, Unsupported(kind="frobnicate", known=False)),
    ],
)
# fmt: skip
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
        ({"stripPrefix": {"prefixes": []}}, "spec.stripPrefix: `prefixes` must be a list of paths"),
        ({"stripPrefix": {"prefixes": ["api"]}}, "prefix 'api' must be an absolute path"),
        ({"stripPrefix": {"prefix": ["/api"]}}, "unknown key 'prefix'"),
        ({"addPrefix": {"prefix": "v2"}}, "spec.addPrefix: `prefix` 'v2' must be an absolute path"),
        ({"addPrefix": {}}, "spec.addPrefix: must be an object with one key, `prefix`"),
        ({"replacePath": {"path": "/a b"}}, "spec.replacePath: `path` '/a b' must be an absolute path"),
        ({"headers": {"frameDeny": "yes"}}, "spec.headers: `frameDeny` 'yes' must be true or false"),
        ({"headers": {"referrerPolicy": 1}}, "spec.headers: `referrerPolicy` 1 must be a string"),
        (
            {"headers": {"customRequestHeaders": {"X-A": 1}}},
            "`customRequestHeaders` must map header names to string",
        ),
        (
            {"headers": {"customRequestHeaders": {"Bad Name": "x"}}},
            "header name 'Bad Name' is not a field name",
        ),
    ],
)
def test_invalid_specs_say_what_is_wrong(spec: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_middleware(spec)


def test_codec_shape_round_trips() -> None:
    spec = RedirectScheme(scheme="https", port=8443, permanent=True, host="a.example")
    assert RedirectScheme.from_dict(spec.to_dict()) == spec


def test_every_kind_parsed_from_traefik_round_trips_through_the_codec_table() -> None:
    samples = {
        "redirectScheme": {"scheme": "https", "port": 8443, "permanent": True},
        "passTLSClientCert": {"pem": True, "info": {"notAfter": True, "issuer": {"country": True}}},
        "stripPrefix": {"prefixes": ["/a", "/b"]},
        "addPrefix": {"prefix": "/p"},
        "replacePath": {"path": "/r"},
        "headers": {"customRequestHeaders": {"A": "1"}, "frameDeny": True},
    }
    assert set(KINDS) == set(samples)  # a kind added to the table gets a sample here
    for kind, body in samples.items():
        value = parse_middleware({kind: body})
        assert not isinstance(value, Unsupported)
        assert SPECS[value.kind].from_dict(value.to_dict()) == value
