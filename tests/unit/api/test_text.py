"""check's output lines: plain text and GitHub workflow annotations."""

from __future__ import annotations

import pytest

from passerelle.api.text import problem_lines
from passerelle.model import ObjectRef, Problem, Severity

INGRESS = ObjectRef(kind="Ingress", namespace="shop", name="cart")
FILE = ObjectRef(kind="File", name="sub/broken.yaml")
ORIGINS = {("Ingress", "shop", "cart"): "sub/ingress.yaml:12"}


@pytest.mark.parametrize(
    ("problem", "style", "line"),
    [
        (Problem(ref=INGRESS, message="Service shop/api not found"), "text",
         "sub/ingress.yaml:12: error: Ingress shop/cart: Service shop/api not found"),
        (Problem(ref=INGRESS, message="50% off\nnext: line", severity=Severity.WARNING), "github",
         "::warning file=k8s/sub/ingress.yaml,line=12,title=Ingress shop/cart::50%25 off%0Anext: line"),
        (Problem(ref=FILE, message="cannot be parsed"), "github",
         "::error file=k8s/sub/broken.yaml,title=File sub/broken.yaml::cannot be parsed"),
        (Problem(ref=ObjectRef(kind="Ingress", namespace="a,b", name="c:d"), message="m"), "github",
         "::error title=Ingress a%2Cb/c%3Ad::m"),
        (Problem(ref=FILE, message="cannot be parsed"), "text", "error: File sub/broken.yaml: cannot be parsed"),
    ],
)  # fmt: skip
def test_problem_lines(problem: Problem, style: str, line: str) -> None:
    assert problem_lines([problem], ORIGINS, style=style, root="k8s/") == [line]
