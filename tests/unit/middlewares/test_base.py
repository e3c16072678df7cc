"""The middleware registry: Middleware specs parsed, unsupported kinds set aside, errors phrased."""

from __future__ import annotations

from typing import Any

import pytest

from passerelle.http.redirect import moved, status_line
from passerelle.middlewares.base import KINDS, SPECS, Unsupported, parse_middleware
from passerelle.middlewares.headers import HeaderEdits, Headers
from passerelle.middlewares.ip_allow_list import IpAllowList
from passerelle.middlewares.pass_tls_client_cert import PassTLSClientCert
from passerelle.middlewares.redirect_regex import RedirectRegex
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
        ({"ipWhiteList": {"sourceRange": ["10.0.0.0/8"]}}, IpAllowList(source_range=("10.0.0.0/8",))),
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
        "ipAllowList": {"sourceRange": ["10.0.0.0/8"], "rejectStatusCode": 404},
        "ipWhiteList": {"sourceRange": ["192.0.2.7"]},
        "redirectRegex": {"regex": "^http://old/(.*)", "replacement": "https://new/${1}", "permanent": True},
    }
    assert set(KINDS) == set(samples)  # a kind added to the table gets a sample here
    for kind, body in samples.items():
        value = parse_middleware({kind: body})
        assert not isinstance(value, Unsupported)
        assert SPECS[value.kind].from_dict(value.to_dict()) == value


@pytest.mark.parametrize(
    ("ranges", "client", "allowed"),
    [
        (("10.0.0.0/8",), "10.1.2.3", True),
        (("10.0.0.0/8",), "11.0.0.1", False),
        (("192.0.2.7",), "192.0.2.7", True),  # one address
        (("10.0.0.1/8",), "10.9.9.9", True),  # host bits set: the network, as Traefik reads it
        (("10.0.0.0/8",), "::ffff:10.0.0.5", True),  # IPv4-mapped (a dual-stack listener)
        (("2001:db8::/32",), "2001:db8::1", True),
        (("2001:db8::/32",), "fe80::1%eth0", False),
        (("10.0.0.0/8",), "", False),  # no address (not a TCP peer): refused
        (("10.0.0.0/8",), "not-an-ip", False),
    ],
)
def test_ip_allow_list_checks_the_address_the_data_plane_wrote(
    ranges: tuple[str, ...], client: str, allowed: bool
) -> None:
    allow = IpAllowList(source_range=ranges)
    # a client's own X-Real-Ip comes first; the data plane's line is the last one of the head
    head = f"GET / HTTP/1.1\r\nHost: a\r\nX-Real-Ip: 10.0.0.1\r\nX-Real-Ip: {client}\r\n\r\n".encode()
    refused = allow.refusal(head, b"GET")
    assert (refused is None) is allowed
    if not allowed:
        assert refused is not None and refused.startswith(b"HTTP/1.1 403 Forbidden\r\n")
        head_only = allow.refusal(head, b"HEAD")
        assert head_only is not None and head_only.endswith(b"\r\n\r\n")  # no body to a HEAD


@pytest.mark.parametrize(
    ("regex", "replacement", "scheme", "host", "target", "location"),
    [
        (r"^https?://www\.(.+)", "https://${1}", b"http", b"www.a.test", b"/p?q=1", "https://a.test/p?q=1"),
        (r"^https?://www\.(.+)", "https://${1}", b"http", b"a.test", b"/p", None),  # no match: on to the route
        (r"^http://(?P<h>[^/]+)/old/(.*)", "https://$h/new/$2", b"http", b"a.test", b"/old/x", "https://a.test/new/x"),
        (r"^(.*)$", "$1", b"http", b"a.test", b"/", None),  # the same URL: no redirect loop, as in Traefik
        (r"^http://a\.test/(.*)", "http://b.test/$1x$9$$", b"http", b"a.test", b"/p", "http://b.test/$"),
        (r"a\.test/(.*)", "b.test/$1", b"https", b"a.test", b"/p", "https://b.test/p"),  # search, not match
    ],
)  # fmt: skip
def test_redirect_regex_locations(
    regex: str, replacement: str, scheme: bytes, host: bytes, target: bytes, location: str | None
) -> None:
    """Go's references: $1, ${1}, $name; an unknown group (`$1x` is the group named `1x`, `$9`)
    stands for nothing; `$$` is a dollar."""
    redirect = RedirectRegex(regex=regex, replacement=replacement)
    assert redirect.location(scheme, host, target) == location
    answer = redirect.answer(scheme, host, target, b"GET")
    if location is None:
        assert answer is None
    else:
        assert answer is not None and answer.startswith(
            b"HTTP/1.1 302 Found\r\nLocation: " + location.encode()
        )


def test_a_regex_redirect_answers_as_a_scheme_redirect_does() -> None:
    """Traefik's moveHandler for both (http/redirect.py): status by method, the phrase as the body."""
    redirect = RedirectRegex(regex="^http://a/(.*)", replacement="https://b/$1", permanent=True)
    assert redirect.answer(b"http", b"a", b"/x", b"GET") == moved(
        status_line(301), b"https://b/x", head=False
    )
    put = redirect.answer(b"http", b"a", b"/x", b"PUT")
    assert put is not None and put.startswith(b"HTTP/1.1 308 Permanent Redirect\r\n")
    head = redirect.answer(b"http", b"a", b"/x", b"HEAD")
    assert head is not None and head.startswith(b"HTTP/1.1 308 ") and head.endswith(b"\r\n\r\n")


def test_redirect_regex_is_re2() -> None:
    """Go's regexp is RE2: no back-references, and matching linear in the URL, so a pattern that
    makes a backtracking engine run for ages on one request (`^(a+)+$`) answers at once here."""
    with pytest.raises(ValueError, match="does not compile: invalid escape sequence"):
        RedirectRegex(regex=r"(\w+)\1", replacement="x")
    nested = RedirectRegex(regex=r"^http://h(/a+)+$", replacement="http://h/")
    assert nested.location(b"http", b"h", b"/" + b"a" * 50_000 + b"!") is None
