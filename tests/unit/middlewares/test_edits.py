"""The request and response transforms of the headers, urlRewrite and requestRedirect middlewares."""

from __future__ import annotations

import pytest

from passerelle.middlewares.base import SPECS
from passerelle.middlewares.headers import HeaderEdits, Headers
from passerelle.middlewares.request_redirect import RequestRedirect
from passerelle.middlewares.strip_prefix import StripPrefix
from passerelle.middlewares.url_rewrite import FULL, PREFIX, PathRewrite, UrlRewrite

HEAD = b"GET /a/b?q=1 HTTP/1.1\r\nHost: shop.test:8080\r\nX-Add: one\r\nx-set: old\r\nX-Set: older\r\nX-Gone: 1\r\n\r\n"


def fields(head: bytes) -> list[tuple[bytes, bytes]]:
    return [tuple(line.split(b": ", 1)) for line in head.split(b"\r\n")[1:] if line]  # type: ignore[misc]


def test_header_edits_set_add_remove_case_insensitively_in_that_order() -> None:
    edits = HeaderEdits(
        set=(("X-Set", "new"),), add=(("x-add", "two"), ("X-New", "n")), remove=("x-gone", "X-NEW")
    )
    out = edits.apply_to_head(HEAD)
    assert out.startswith(b"GET /a/b?q=1 HTTP/1.1\r\n") and out.endswith(b"\r\n\r\n")
    assert fields(out) == [
        (b"Host", b"shop.test:8080"),
        (b"X-Add", b"one"),
        (b"X-Set", b"new"),
        (b"x-add", b"two"),
    ]


def test_response_edits_work_on_field_lists() -> None:
    edits = HeaderEdits(set=(("Cache-Control", "no-store"),), remove=("Server",))
    assert edits.apply([(b"server", b"x"), (b"cache-control", b"max-age=60"), (b"A", b"b")]) == [
        (b"A", b"b"),
        (b"Cache-Control", b"no-store"),
    ]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [("X Bad", "v", "not a field name"), ("X-Ok", "a\r\nInjected: 1", "control characters or line breaks")],
)
def test_header_edits_refuse_what_would_split_a_head(name: str, value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HeaderEdits(set=((name, value),))


@pytest.mark.parametrize(
    ("rewrite", "path", "expected"),
    [
        (PathRewrite(type=FULL, value="/one"), "/full/one/two", "/one"),
        (PathRewrite(type=PREFIX, value="/one", matched="/prefix/one"), "/prefix/one/two", "/one/two"),
        (PathRewrite(type=PREFIX, value="/", matched="/strip-prefix"), "/strip-prefix/three", "/three"),
        (PathRewrite(type=PREFIX, value="/", matched="/strip-prefix"), "/strip-prefix", "/"),
        (PathRewrite(type=PREFIX, value="/x/", matched="/a/"), "/a/b", "/x/b"),
        (PathRewrite(type=PREFIX, value="/x", matched="/"), "/b", "/x/b"),
    ],
)
def test_path_rewrites(rewrite: PathRewrite, path: str, expected: str) -> None:
    assert rewrite.apply(path) == expected


def test_url_rewrite_changes_target_and_host_and_keeps_the_query() -> None:
    rewrite = UrlRewrite(host="backend.internal", path=PathRewrite(type=PREFIX, value="/v2", matched="/a"))
    out = rewrite.apply_to_head(HEAD)
    assert out.split(b"\r\n")[0] == b"GET /v2/b?q=1 HTTP/1.1"
    assert (b"Host", b"backend.internal") in fields(out)


def test_url_rewrite_of_an_absolute_form_target_sends_its_rewritten_path() -> None:
    rewrite = UrlRewrite(path=PathRewrite(type=PREFIX, value="/v2", matched="/a"))
    out = rewrite.apply_to_head(b"GET http://shop.test/a/b?q=1 HTTP/1.1\r\nHost: shop.test\r\n\r\n")
    assert out.split(b"\r\n")[0] == b"GET /v2/b?q=1 HTTP/1.1"


@pytest.mark.parametrize(
    ("redirect", "host", "target", "location"),
    [
        (RequestRedirect(scheme="https", port=443), b"shop.test:8080", b"/a?b=1", b"https://shop.test/a?b=1"),
        (RequestRedirect(scheme="http", port=8080), b"shop.test", b"/a", b"http://shop.test:8080/a"),
        (
            RequestRedirect(scheme="http", port=80, host="example.org"),
            b"shop.test:1",
            b"/",
            b"http://example.org/",
        ),
        (
            RequestRedirect(
                scheme="https", port=8443, path=PathRewrite(type=PREFIX, value="/new", matched="/old")
            ),
            b"[::1]:80",
            b"/old/x?y",
            b"https://[::1]:8443/new/x?y",
        ),
        (RequestRedirect(scheme="http", port=80), b"bad host", b"/", None),
        # absolute-form and asterisk-form targets redirect by their path, as http.redirect does
        (RequestRedirect(scheme="https", port=443), b"a.test", b"http://a.test/x?q", b"https://a.test/x?q"),
        (RequestRedirect(scheme="https", port=443), b"a.test", b"*", b"https://a.test/"),
        (
            RequestRedirect(
                scheme="https", port=443, path=PathRewrite(type=PREFIX, value="/b", matched="/a")
            ),
            b"a.test",
            b"http://a.test/a/x",
            b"https://a.test/b/x",
        ),
    ],
)
def test_redirect_locations(
    redirect: RequestRedirect, host: bytes, target: bytes, location: bytes | None
) -> None:
    assert redirect.location(host, target) == location


def test_redirect_answers_with_its_status_whatever_the_method() -> None:
    redirect = RequestRedirect(scheme="https", port=443, status_code=308)
    answer = redirect.response(b"shop.test", b"/a", b"POST")
    assert answer.startswith(b"HTTP/1.1 308 Permanent Redirect\r\nLocation: https://shop.test/a\r\n")
    assert redirect.status(b"GET") == 308
    assert redirect.response(b"bad host", b"/", b"GET").startswith(b"HTTP/1.1 400 ")
    with pytest.raises(ValueError, match="statusCode 200"):
        RequestRedirect(scheme="https", port=443, status_code=200)


def test_every_kind_round_trips_through_the_codec_table() -> None:
    samples = [
        Headers(request=HeaderEdits(set=(("A", "1"),)), response=HeaderEdits(remove=("B",))),
        UrlRewrite(host="h.test", path=PathRewrite(type=FULL, value="/x")),
        UrlRewrite(path=PathRewrite(type=FULL, value="/x"), replaced_path=True),
        StripPrefix(prefixes=("/a", "/b")),
        RequestRedirect(
            scheme="https", port=8443, host="h.test", path=PathRewrite(type=FULL, value="/y"), status_code=301
        ),
    ]
    # a kind added gets a sample here; those only Traefik objects make are in test_base.py
    assert set(SPECS) - {"redirectScheme", "passTLSClientCert", "ipAllowList", "redirectRegex"} == {
        type(s).kind for s in samples
    }
    for sample in samples:
        assert SPECS[sample.kind].from_dict(sample.to_dict()) == sample


@pytest.mark.parametrize(
    ("prefixes", "target", "line", "prefix"),
    [
        (("/api",), "/api/users?id=1", "GET /users?id=1", "/api"),
        (("/api",), "/api", "GET /", "/api"),
        (("/api",), "/apix", "GET /x", "/api"),  # by characters, as Traefik
        (("/api/",), "/api/v1", "GET /v1", "/api/"),
        (("/v1", "/v"), "/v2/x", "GET /2/x", "/v"),  # the first that matches
        (("/api",), "/other", "GET /other", None),  # none: the head as it came
        (("/api",), "http://h.test/api/x", "GET /x", "/api"),  # absolute-form: origin-form upstream
    ],
)
def test_strip_prefix(prefixes: tuple[str, ...], target: str, line: str, prefix: str | None) -> None:
    head = f"GET {target} HTTP/1.1\r\nHost: h.test\r\nX-Forwarded-Prefix: /spoofed\r\n\r\n".encode()
    out = StripPrefix(prefixes=prefixes).apply_to_head(head).decode()
    assert out.split("\r\n")[0] == f"{line} HTTP/1.1"
    if prefix is None:
        assert out == head.decode()
    else:
        assert out.count("X-Forwarded-Prefix") == 1 and f"\r\nX-Forwarded-Prefix: {prefix}\r\n" in out
