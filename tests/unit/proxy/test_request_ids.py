"""X-Request-Id through a real ClientConnection (in-memory transports): made, kept or replaced,
sent upstream exactly once, both ways (the short one and the full parser's)."""

from __future__ import annotations

import re

import pytest

from passerelle.http.headers import REQUEST_ID_MAX, RequestIds, request_id_in, valid_request_id
from tests.unit.proxy.memory import connected, parse_request

MADE = re.compile(rb"^[0-9a-f]{32}$")


def sent_ids(request: bytes, *, generate: bool = True) -> tuple[list[bytes], bytes]:
    """The X-Request-Id values the upstream got, and the id the access log reads from the head."""
    with connected(request_ids=generate) as pair:
        pair.client.data_received(request)
        _, _, headers, _, _ = parse_request(bytes(pair.upstream_side.data))
        seen = [value for name, value in headers if name == b"x-request-id"]
        assert pair.upstream.exchange is not None
        return seen, request_id_in(pair.upstream.exchange.head)


SHORT = b"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n"  # the short way (http/fasthead.py)
FULL = b"GET / HTTP/1.1\r\nHost: a.example\r\nConnection: keep-alive\r\n\r\n"  # the full parser


@pytest.mark.parametrize("request_", [SHORT, FULL])
def test_an_id_is_made_when_the_client_sent_none(request_: bytes) -> None:
    [sent], kept = sent_ids(request_)
    assert MADE.match(sent) and kept == sent
    assert sent_ids(request_, generate=False) == ([], b"")


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (b"X-Request-Id: 0af7651916cd43dd8448eb211c80319c\r\n", b"0af7651916cd43dd8448eb211c80319c"),
        (
            b"x-request-id: Root=1-5759e988-bd862e3fe1be46a994272793\r\n",
            b"Root=1-5759e988-bd862e3fe1be46a994272793",
        ),
        (b'X-Request-Id: a"b\r\nX-Request-Id: second\r\n', b"second"),  # the first valid one, once
        (b"X-Request-Id: one\r\nX-Request-Id: two\r\n", b"one"),
    ],
)
def test_a_clients_valid_id_is_kept_and_sent_once(lines: bytes, expected: bytes) -> None:
    request = SHORT[:-2] + lines + b"\r\n"
    assert sent_ids(request) == ([expected], expected)
    assert sent_ids(request, generate=False) == ([expected], expected)


@pytest.mark.parametrize("value", [b"a b", b"x" * (REQUEST_ID_MAX + 1), b"\xc3\xa9", b"a,b", b"{}"])
def test_an_invalid_id_is_replaced_or_dropped(value: bytes) -> None:
    request = SHORT[:-2] + b"X-Request-Id: " + value + b"\r\n\r\n"
    [sent], _ = sent_ids(request)
    assert MADE.match(sent)
    assert sent_ids(request, generate=False) == ([], b"")


def made(ids: RequestIds) -> bytes:
    """What a connection does with `ids` (proxy/connection.py _forwarded_for)."""
    line, low = ids.take()
    return request_id_in(line + low + b"\r\n")


def test_made_ids_are_a_prefix_and_a_counter_unique_past_each_roll() -> None:
    ids = RequestIds(b"f" * 16)
    first = [made(ids) for _ in range(600)]
    assert first[:2] == [b"f" * 16 + b"%016x" % 0x100, b"f" * 16 + b"%016x" % 0x101]
    assert first[256] == b"f" * 16 + b"%016x" % 0x200  # the high part moved on after 256
    assert len(set(first)) == 600 and all(MADE.match(i) for i in first)
    assert valid_request_id(b"x" * REQUEST_ID_MAX) and not valid_request_id(b"")
