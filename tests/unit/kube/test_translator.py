"""Translator (translate with memory) must give exactly translate()'s answer, snapshot after snapshot."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from passerelle.kube.ingress import Translator, translate
from passerelle.kube.snapshot import ClusterSnapshot
from tests.unit.kube.test_translate import CASES, _load, _options


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_same_answer_as_translate_when_nothing_changed(path: Path) -> None:
    case = _load(path)
    options = _options(case.get("options"))
    snapshot = ClusterSnapshot.of(case["objects"])
    translator = Translator(options)
    expected = translate(snapshot, options)
    assert translator.translate(snapshot) == expected
    assert translator.translate(snapshot) == expected  # second time from memory


def test_changed_objects_are_read_again() -> None:
    ingress = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "i"},
        "spec": {"defaultBackend": {"service": {"name": "s", "port": {"number": 80}}}},
    }
    translator = Translator()
    config, problems = translator.translate(ClusterSnapshot.of([ingress]))
    assert len(config.routers) == 1
    broken = copy.deepcopy(ingress)
    broken["spec"]["defaultBackend"]["service"]["port"] = {"number": 80, "name": "x"}
    config, problems = translator.translate(ClusterSnapshot.of([broken]))
    assert config.routers == () and "exactly one of" in problems[0].message
    fixed = copy.deepcopy(ingress)
    assert translator.translate(ClusterSnapshot.of([fixed])) == translate(ClusterSnapshot.of([fixed]))
