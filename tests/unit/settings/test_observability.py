"""`metrics.prometheus.address`, `requestId`, and the access log's `fields.headers` and `filters`:
what loads, and what is an error with the file line of the key that is wrong."""

from __future__ import annotations

import pytest

from passerelle.observability.accesslog import Filters, Shape
from passerelle.settings import SettingsError, parse_settings


def test_the_metrics_listener_is_off_by_default_and_takes_an_address() -> None:
    prometheus = parse_settings("{}").metrics.prometheus
    assert prometheus is not None and prometheus.address == ""
    prometheus = parse_settings("metrics: {prometheus: {address: ':9100'}}\n").metrics.prometheus
    assert prometheus is not None and prometheus.address == ":9100"


def test_request_ids_are_generated_by_default_on_every_entry_point() -> None:
    settings = parse_settings("entryPoints: {a: {address: ':1'}, b: {address: ':2'}}\n")
    assert [o.request_ids for o in settings.entrypoint_options()] == [True, True]
    settings = parse_settings("requestId: {generate: false}\n")
    assert [o.request_ids for o in settings.entrypoint_options()] == [False]


def test_the_access_log_shape_travels_to_the_workers_whole() -> None:
    text = """\
accessLog:
  fields:
    defaultMode: drop
    names: {DownstreamStatus: keep}
    headers:
      defaultMode: keep
      names: {Authorization: redact, cookie: drop}
  filters: {statusCodes: [404, "500-599"], retryAttempts: true, minDuration: 10ms}
"""
    access = parse_settings(text).accessLog
    assert access is not None
    shape = Shape.of(access.model_dump())  # what the worker builds from its init message
    assert shape.kept == ("DownstreamStatus",)
    assert (shape.headers_default, dict(shape.headers)) == (
        "keep",
        {"authorization": "redact", "cookie": "drop"},
    )
    assert shape.filters == Filters(
        status_codes=((404, 404), (500, 599)), retry_attempts=True, min_duration=0.01
    )
    default = parse_settings("accessLog: {}\n").accessLog
    assert default is not None
    assert Shape.of(default.model_dump()) == Shape()  # every field, no header, no filter


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("metrics: {prometheus: {address: 'nope'}}\n", "address 'nope' must be host:port or :port"),
        (
            "metrics:\n  prometheus:\n    entryPoint: metrics\n",
            "<config>:2: metrics.prometheus: Value error, entryPoint: passerelle's entry points carry traffic",
        ),
        ("requestId: {header: X-Trace}\n", "requestId.header: unknown key"),
        (
            "accessLog:\n  filters:\n    statusCodes:\n      - 200\n      - 599-500\n",
            "<config>:5: accessLog.filters.statusCodes.1: Value error, '599-500': status codes are 100-599",
        ),
        ("accessLog: {filters: {statusCodes: [abc]}}\n", "'abc' is not a status code or a range of them"),
        ("accessLog: {filters: {statusCodes: [99]}}\n", "status codes are 100-599"),
        ("accessLog: {filters: {minDuration: soon}}\n", "'soon' is not a duration"),
        ("accessLog: {filters: {retry: true}}\n", "accessLog.filters.retry: unknown key"),
        (
            "accessLog:\n  fields:\n    headers:\n      defaultMode: hide\n",
            "<config>:4: accessLog.fields.headers.defaultMode: Input should be 'keep', 'drop' or 'redact'",
        ),
        (
            "accessLog: {fields: {headers: {names: {'Bad Name': keep}}}}\n",
            "accessLog.fields.headers.names: Value error, not header names: 'Bad Name'",
        ),
        (
            "accessLog: {fields: {headers: {names: {Cookie: keep, cookie: drop}}}}\n",
            "named twice (header names are case-insensitive): cookie",
        ),
        ("accessLog: {fields: {names: {RetryAttempt: drop}}}\n", "unknown fields RetryAttempt"),
    ],
)
def test_bad_observability_settings_are_errors(text: str, message: str) -> None:
    with pytest.raises(SettingsError) as error:
        parse_settings(text)
    assert message in str(error.value)
