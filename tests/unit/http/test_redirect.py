"""Redirect responses: Location keeps host, path and query; status by method and permanence."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from passerelle.http.redirect import Redirect, is_authority, move_status


def _parse(response: bytes) -> tuple[int, dict[bytes, bytes], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    status_line, *lines = head.split(b"\r\n")
    headers = dict(line.split(b": ", 1) for line in lines)
    assert int(headers[b"Content-Length"]) == len(body) or body == b""
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize(
    ("host", "target", "port", "location"),
    [
        (b"shop.example.com", b"/cart?id=1&x=%20", None, b"https://shop.example.com/cart?id=1&x=%20"),
        (b"shop.example.com:8080", b"/cart", None, b"https://shop.example.com/cart"),
        (b"shop.example.com:8080", b"/", 443, b"https://shop.example.com/"),
        (b"shop.example.com:8080", b"/a/b?q", 8443, b"https://shop.example.com:8443/a/b?q"),
        (b"[2001:db8::1]:8080", b"/p?q=1", 8443, b"https://[2001:db8::1]:8443/p?q=1"),
        (b"[2001:db8::1]", b"/p", None, b"https://[2001:db8::1]/p"),
        (b"10.0.0.1:80", b"/", None, b"https://10.0.0.1/"),
        # absolute-form: only its path is kept; the host is the Host header's, which was routed
        (b"good.example", b"http://abs.example.com:8080/x?y", None, b"https://good.example/x?y"),
        (b"h.example", b"http://abs.example.com?y", None, b"https://h.example/?y"),
        (b"h.example", b"*", None, b"https://h.example/"),
    ],
)
def test_location_keeps_host_path_and_query(
    host: bytes, target: bytes, port: int | None, location: bytes
) -> None:
    assert Redirect(scheme="https", port=port).location(host, target) == location


def test_http_target_omits_port_80_only() -> None:
    assert Redirect(scheme="http", port=80).location(b"a.example:8443", b"/") == b"http://a.example/"
    assert Redirect(scheme="http", port=443).location(b"a.example", b"/") == b"http://a.example:443/"


def test_fixed_host_replaces_the_request_host() -> None:
    redirect = Redirect(scheme="https", host="secure.example.com:8443")
    assert redirect.location(b"plain.example.com:8080", b"/p?q") == b"https://secure.example.com:8443/p?q"


def test_absolute_form_cannot_choose_the_location_host() -> None:
    # Routed by Host (good.com's router): the Location must not send the client to evil.com.
    response = Redirect(scheme="https").response(b"good.com", b"http://evil.com/x?q", b"GET")
    assert _parse(response)[1][b"Location"] == b"https://good.com/x?q"


@pytest.mark.parametrize(
    "host",
    ["x\r\nSet-Cookie: a=b", "https://x.ch", "x.ch/p", "a b", "x.ch:", "x.ch:0", "x.ch:70000", "é.ch", ""],
)
def test_a_fixed_host_that_is_not_host_port_is_refused(host: str) -> None:
    assert not is_authority(host)
    with pytest.raises(ValueError, match="must be host"):
        Redirect(scheme="https", host=host)


@pytest.mark.parametrize("host", ["x.ch", "secure.example.com:8443", "10.0.0.1:443", "[2001:db8::1]:8443"])
def test_a_fixed_host_port_is_accepted(host: str) -> None:
    assert is_authority(host)
    assert Redirect(scheme="https", host=host).location(b"a", b"/p") == f"https://{host}/p".encode()


@pytest.mark.parametrize(
    ("permanent", "method", "status"),
    [
        (False, b"GET", 302),
        (False, b"POST", 307),
        (False, b"HEAD", 307),
        (True, b"GET", 301),
        (True, b"PUT", 308),
        (True, b"DELETE", 308),
    ],
)
def test_status_follows_traefik_move_handler(permanent: bool, method: bytes, status: int) -> None:
    redirect = Redirect(scheme="https", permanent=permanent)
    got, headers, body = _parse(redirect.response(b"a.example", b"/x?y", method))
    assert got == status == redirect.status(method) == move_status(permanent, method)  # status(): explain's
    assert headers[b"Location"] == b"https://a.example/x?y"
    if method == b"HEAD":
        assert body == b""
    else:
        assert body in (b"Found", b"Temporary Redirect", b"Moved Permanently", b"Permanent Redirect")


@pytest.mark.parametrize(
    "host", [b"", b"evil.example/path", b"a b", b"user@evil.example", b"[::1", b"a.example\n"]
)
def test_an_unusable_host_is_refused_not_echoed(host: bytes) -> None:
    status, headers, _ = _parse(Redirect(scheme="https").response(host, b"/", b"GET"))
    assert status == 400
    assert b"Location" not in headers


_labels = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)


@given(
    labels=st.lists(_labels, min_size=1, max_size=4),
    port=st.one_of(st.none(), st.integers(1, 65535)),
    path=st.from_regex(r"(/[A-Za-z0-9._~%!$&'()*+,;=:@-]*)+", fullmatch=True),
    query=st.one_of(st.just(""), st.from_regex(r"\?[A-Za-z0-9=&%._-]*", fullmatch=True)),
)
def test_location_is_scheme_host_port_then_the_target_verbatim(
    labels: list[str], port: int | None, path: str, query: str
) -> None:
    host = ".".join(labels)
    target = (path + query).encode()
    location = Redirect(scheme="https", port=port).location(f"{host}:8080".encode(), target)
    port_part = "" if port in (None, 443) else f":{port}"
    assert location == f"https://{host}{port_part}".encode() + target
