"""Annotation dialects: every key under our prefixes is reported exactly once, whatever the mix."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from passerelle.kube.annotations import read_annotations, traefik, traefik17
from passerelle.kube.annotations.report import PREFIXES, KeyStatus, parse_bool, parse_list

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
