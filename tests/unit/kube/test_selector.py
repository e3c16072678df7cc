"""Label selectors as kubectl reads them, table-driven."""

from __future__ import annotations

import pytest

from passerelle.kube.selector import parse_selector

LABELS = {"role": "ingress", "zone": "a", "gpu": ""}

CASES = [
    ("role=ingress", True),
    ("role==ingress", True),
    ("role=worker", False),
    ("role!=worker", True),
    ("missing!=x", True),  # a missing key is "not equal", as in Kubernetes
    ("gpu", True),
    ("!gpu", False),
    ("!spot", True),
    ("zone in (a, b)", True),
    ("zone notin (a,b)", False),
    ("role=ingress,zone in (b,c)", False),
    ("role=ingress, zone in (a,c), !spot", True),
    ("", True),
    ("gpu=", True),  # an empty value selects the empty label
]


@pytest.mark.parametrize("text, matches", CASES, ids=[c[0] or "(empty)" for c in CASES])
def test_selector(text: str, matches: bool) -> None:
    assert parse_selector(text).matches(LABELS) is matches


def test_mapping_is_equality_on_each_key() -> None:
    assert parse_selector({"role": "ingress", "zone": "a"}).matches(LABELS)
    assert not parse_selector({"role": "ingress", "zone": "b"}).matches(LABELS)


@pytest.mark.parametrize("text", ["=ingress", "role in ()", "role in (a", "a b", "role=in gress"])
def test_bad_selectors_name_the_part(text: str) -> None:
    with pytest.raises(ValueError, match="label requirement|a set needs"):
        parse_selector(text)
