"""Annotation dialects: every key under our prefixes is reported exactly once, whatever the mix."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from passerelle.kube.annotations import read_annotations, traefik, traefik17
from passerelle.kube.annotations.report import PREFIXES, KeyStatus, parse_bool, parse_list
from passerelle.kube.annotations.service import read_scheme, service_scheme

_NAMES = (
    sorted(traefik17.HONOURED | traefik17.NOT_YET | traefik17.SERVICE_SIDE)
    + sorted(traefik.HONOURED | traefik.NOT_YET)
    + [
        "service.sticky.cookie",
        "router.tls.domains.0.main",
        "entrypoints",
        "ssl-redirect",
        "tls-options",
        "typo",
    ]
)
_KEYS = st.builds(
    lambda prefix, name: prefix + name,
    st.sampled_from([*PREFIXES, "kubectl.kubernetes.io/", "nginx.ingress.kubernetes.io/"]),
    st.sampled_from(_NAMES),
)
_VALUES = st.sampled_from(
    ["true", "false", "maybe", "web", "web,websecure", "", "websecure", "x.example.com"]
)


@given(st.dictionaries(_KEYS, _VALUES, max_size=12))
def test_every_key_under_our_prefixes_is_reported_exactly_once(annotations: dict[str, str]) -> None:
    report = read_annotations(annotations).report
    reported = [k.key for k in report.keys]
    assert sorted(reported) == sorted(k for k in annotations if k.startswith(PREFIXES))
    message = report.message()
    if any(k.status is not KeyStatus.HONOURED for k in report.keys):
        assert message is not None and all(k.key in message for k in report.keys)
    else:
        assert message is None


def test_the_bare_1_7_prefix_wins() -> None:
    parsed = read_annotations(
        {
            "ingress.kubernetes.io/frontend-entry-points": "a",
            "traefik.ingress.kubernetes.io/frontend-entry-points": "b",
        }
    )
    assert parsed.traefik17.entrypoints == ("a",)
    assert parsed.placement == "traefik17"


def test_values() -> None:
    assert parse_list(" web, ,websecure ") == ("web", "websecure")
    assert [parse_bool(v) for v in ("true", "True", "1", "t", "false", "F", "0", "yes", " true")] == [
        True, True, True, True, False, False, False, None, None,
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("value", "scheme", "problem"),
    [
        ("h2c", "h2c", None),
        (" H2C ", "h2c", None),
        ("http", "http", None),
        ("https", "http", "https to backends is not supported yet; using http"),
        ("grpc", "http", "'grpc' is not a scheme passerelle speaks to backends (http, h2c); using http"),
        ("", "http", "'' is not a scheme passerelle speaks to backends (http, h2c); using http"),
    ],
)
def test_scheme_values(value: str, scheme: str, problem: str | None) -> None:
    assert read_scheme(value) == (scheme, problem)


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        ({}, (None, None)),
        ({"traefik.ingress.kubernetes.io/service.serversscheme": "h2c"}, ("h2c", None)),
        ({"TRAEFIK.INGRESS.KUBERNETES.IO/SERVICE.SERVERSSCHEME": "h2c"}, ("h2c", None)),
        ({"ingress.kubernetes.io/protocol": "h2c"}, (None, None)),  # 1.7's is on the Ingress
        (
            {"traefik.ingress.kubernetes.io/service.serversscheme": "h3"},
            ("http", "traefik.ingress.kubernetes.io/service.serversscheme: 'h3' is not a scheme "
             "passerelle speaks to backends (http, h2c); using http"),
        ),
    ],
)  # fmt: skip
def test_service_scheme(annotations: dict[str, str], expected: tuple[str | None, str | None]) -> None:
    assert service_scheme(annotations) == expected


@pytest.mark.parametrize(
    ("annotations", "protocol", "status"),
    [
        ({"ingress.kubernetes.io/protocol": "h2c"}, "h2c", KeyStatus.HONOURED),
        ({"traefik.ingress.kubernetes.io/protocol": "http"}, "http", KeyStatus.HONOURED),
        ({"ingress.kubernetes.io/protocol": "https"}, "http", KeyStatus.IGNORED),
        ({"ingress.kubernetes.io/protocol": "fcgi"}, "http", KeyStatus.IGNORED),
    ],
)
def test_the_1_7_protocol_key(annotations: dict[str, str], protocol: str, status: KeyStatus) -> None:
    parsed = read_annotations(annotations)
    assert parsed.traefik17.protocol == protocol
    assert [k.status for k in parsed.report.keys] == [status]
    assert parsed.placement == ""  # a backend key: placement is left to the default rule
