"""The selector grammar the test server accepts, table-driven."""

from __future__ import annotations

import pytest

from tests.kubeapi.selectors import SelectorError, field_selector, label_selector

OBJ = {
    "metadata": {"name": "a", "namespace": "ns", "labels": {"app": "web", "tier": "front"}},
    "type": "kubernetes.io/tls",
}


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        ("", True),
        ("app=web", True),
        ("app==web", True),
        ("app!=web", False),
        ("app=db", False),
        ("app in (web, db)", True),
        ("app notin (web)", False),
        ("tier", True),
        ("!tier", False),
        ("!missing", True),
        ("app=web,tier=back", False),
        ("app in (db,web),tier", True),
    ],
)
def test_label_selectors(selector: str, matches: bool) -> None:
    assert label_selector(selector)(OBJ) is matches


@pytest.mark.parametrize(
    ("selector", "kind", "matches"),
    [
        ("metadata.name=a", "", True),
        ("metadata.name!=a", "", False),
        ("metadata.namespace=ns,metadata.name=a", "", True),
        ("type=kubernetes.io/tls", "Secret", True),
        ("type!=kubernetes.io/tls", "Secret", False),
    ],
)
def test_field_selectors(selector: str, kind: str, matches: bool) -> None:
    assert field_selector(selector, kind)(OBJ) is matches


@pytest.mark.parametrize(
    ("selector", "kind"), [("type=x", "ConfigMap"), ("spec.foo=1", "Service"), ("nonsense", "")]
)
def test_unsupported_field_selectors_are_errors(selector: str, kind: str) -> None:
    with pytest.raises(SelectorError):
        field_selector(selector, kind)


def test_a_malformed_label_selector_is_an_error() -> None:
    with pytest.raises(SelectorError):
        label_selector("app=(")
