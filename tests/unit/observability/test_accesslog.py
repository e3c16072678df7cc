"""Access log lines: Traefik's JSON field names, kept or dropped by name, request headers kept,
dropped or redacted, filters; the common log format; rotation (reopen)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from passerelle.observability.accesslog import (
    FIELDS,
    Filters,
    canonical,
    common_line,
    header_fields,
    json_line,
    kept_fields,
    rfc3339,
    status_range,
)
from passerelle.observability.writer import chunks

FIELDS_OF_A_404: dict[str, Any] = dict.fromkeys(FIELDS, "") | {
    "StartUTC": "2026-12-01T10:00:00.250Z",
    "Duration": 1_500_000,
    "ClientHost": "10.0.0.1",
    "RequestMethod": "GET",
    "RequestPath": "/x?y=1",
    "RequestProtocol": "HTTP/1.1",
    "DownstreamStatus": 404,
    "DownstreamContentSize": 19,
}


def test_rfc3339_in_utc_with_milliseconds() -> None:
    assert rfc3339(0.5) == "1970-01-01T00:00:00.500Z"
    assert rfc3339(1796126400.0421) == "2026-12-01T12:00:00.042Z"


@pytest.mark.parametrize(
    ("mode", "names", "kept"),
    [
        ("keep", {}, FIELDS),
        (
            "keep",
            {"ClientAddr": "drop", "ClientHost": "drop"},
            tuple(f for f in FIELDS if not f.startswith("Client")),
        ),
        ("drop", {"DownstreamStatus": "keep", "RequestPath": "keep"}, ("RequestPath", "DownstreamStatus")),
    ],
)
def test_fields_kept_by_name(mode: str, names: dict[str, str], kept: tuple[str, ...]) -> None:
    assert kept_fields(mode, names) == kept
    line = json_line(FIELDS_OF_A_404, kept)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert list(json.loads(line)) == list(kept)


def test_an_unknown_field_name_is_an_error() -> None:
    with pytest.raises(ValueError, match="RequestPth"):
        kept_fields("keep", {"RequestPth": "drop"})


def test_json_keeps_what_a_client_sent_on_one_line() -> None:
    line = json_line(FIELDS_OF_A_404 | {"RequestPath": '/"\n\u00e9'}, FIELDS)
    assert line.count(b"\n") == 1 and json.loads(line)["RequestPath"] == '/"\n\u00e9'


def test_common_log_format_is_traefiks() -> None:
    line = common_line(FIELDS_OF_A_404, 7)
    assert (
        line
        == b'10.0.0.1 - - [01/Dec/2026:10:00:00 +0000] "GET /x?y=1 HTTP/1.1" 404 19 "-" "-" 7 "-" "-" 1ms\n'
    )
    routed = common_line(FIELDS_OF_A_404 | {"RouterName": "r", "ServiceAddr": "10.1.0.5:8080"}, 8)
    assert routed.endswith(b' 8 "r" "http://10.1.0.5:8080" 1ms\n')


def test_common_log_format_cannot_be_forged_by_a_quote_or_newline() -> None:
    forged = '/a" 200 0 "x\n1.1.1.1 - - [forged]'
    line = common_line(FIELDS_OF_A_404 | {"RequestPath": forged, "RequestMethod": 'G"ET\\'}, 1)
    assert line.count(b"\n") == 1
    assert b'"G\\x22ET\\x5C /a\\x22 200 0 \\x22x\\x0A1.1.1.1 - - [forged] HTTP/1.1" 404' in line
    assert line.count(b'"') == 10  # the five quoted fields of the format, none of the client's


@pytest.mark.parametrize(
    ("data", "limit", "pieces"),
    [
        (b"a\nb\nc\n", 4, [b"a\nb\n", b"c\n"]),
        (b"aaaaaa\nb\n", 4, [b"aaaaaa\n", b"b\n"]),  # a line longer than the limit goes whole, alone
        (b"a\n", 4, [b"a\n"]),
        (b"", 4, []),
    ],
)
def test_writes_are_whole_lines_of_at_most_the_limit(data: bytes, limit: int, pieces: list[bytes]) -> None:
    assert list(chunks(data, limit=limit)) == pieces


HEAD = (
    b"GET /x HTTP/1.1\r\nHost: shop.test\r\nUser-Agent: curl/8\r\nAuthorization: Bearer s3cret\r\n"
    b"cookie: a=1\r\nCookie: b=2\r\nX-Request-Id: abc\r\n\r\n"
)


@pytest.mark.parametrize(
    ("default", "names", "fields"),
    [
        ("drop", {}, {}),
        ("drop", {"user-agent": "keep"}, {"request_User-Agent": "curl/8"}),
        (
            "keep",
            {"authorization": "redact", "host": "drop"},
            {
                "request_User-Agent": "curl/8",
                "request_Authorization": "REDACTED",
                "request_Cookie": "a=1, b=2",  # one field, whatever the spelling, values joined
                "request_X-Request-Id": "abc",
            },
        ),
        (
            "redact",
            {"x-request-id": "keep", "host": "drop"},
            {
                "request_User-Agent": "REDACTED",
                "request_Authorization": "REDACTED",
                "request_Cookie": "REDACTED",
                "request_X-Request-Id": "abc",
            },
        ),  # fmt: skip
    ],
)
def test_request_headers_are_kept_dropped_or_redacted_by_name(
    default: str, names: dict[str, str], fields: dict[str, str]
) -> None:
    assert header_fields(HEAD, default, names) == fields


@pytest.mark.parametrize(
    ("filters", "status", "retries", "duration", "kept"),
    [
        (Filters(), 200, 0, 0.0, True),  # no filter: every line
        (Filters(status_codes=((500, 599),)), 502, 0, 0.0, True),
        (Filters(status_codes=((500, 599),)), 404, 0, 0.0, False),
        (Filters(status_codes=((404, 404), (500, 599))), 404, 0, 0.0, True),
        (Filters(retry_attempts=True), 200, 0, 0.0, False),
        (Filters(retry_attempts=True), 200, 1, 0.0, True),
        (Filters(min_duration=0.1), 200, 0, 0.1, False),  # longer than, as Traefik
        (Filters(min_duration=0.1), 200, 0, 0.2, True),
        (Filters(status_codes=((500, 599),), min_duration=0.1), 200, 0, 0.2, True),  # any of them
        (Filters(status_codes=((500, 599),), retry_attempts=True), 200, 0, 5.0, False),
    ],
)
def test_filters_keep_a_line_when_any_of_them_does(
    filters: Filters, status: int, retries: int, duration: float, kept: bool
) -> None:
    assert (not filters.active or filters.keeps(status, retries, duration)) is kept


@pytest.mark.parametrize(
    ("value", "expected"),
    [(200, (200, 200)), ("404", (404, 404)), ("500-599", (500, 599)), (" 300 - 302 ", (300, 302))],
)
def test_status_ranges_are_traefiks(value: object, expected: tuple[int, int]) -> None:
    assert status_range(value) == expected


def test_header_fields_follow_the_kept_fields() -> None:
    line = json.loads(json_line(FIELDS_OF_A_404, ("DownstreamStatus",), {"request_User-Agent": "curl/8"}))
    assert line == {"DownstreamStatus": 404, "request_User-Agent": "curl/8"}


def test_header_names_are_written_as_go_writes_them() -> None:
    assert [canonical(n) for n in ("x-request-id", "USER-AGENT", "te")] == [
        "X-Request-Id",
        "User-Agent",
        "Te",
    ]
