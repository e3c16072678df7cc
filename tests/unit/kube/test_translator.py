"""Translator (translate with memory) must give exactly translate()'s answer, snapshot after snapshot."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from passerelle.kube import ingress as ingress_module
from passerelle.kube.annotations import IngressAnnotations
from passerelle.kube.ingress import Translator, translate
from passerelle.kube.placement import Placement
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


def test_backends_are_resolved_again_when_their_service_or_slices_change() -> None:
    def slice_(name: str, address: str) -> dict[str, object]:
        return {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": name, "labels": {"kubernetes.io/service-name": "s"}},
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": [{"addresses": [address]}],
        }

    ingress = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "i"},
        "spec": {"defaultBackend": {"service": {"name": "s", "port": {"number": 80}}}},
    }
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
               "spec": {"ports": [{"name": "http", "port": 80}]}}  # fmt: skip
    translator = Translator()

    def servers(*objects: dict[str, object]) -> list[str]:
        snapshot = ClusterSnapshot.of([ingress, *objects])
        config, problems = translator.translate(snapshot)
        assert (config, problems) == translate(snapshot)
        return [str(s) for s in config.services[0].servers]

    one = slice_("s-1", "10.0.0.1")
    assert servers(service, one) == ["10.0.0.1:8080"]
    assert servers(service, one) == ["10.0.0.1:8080"]  # from memory
    assert servers(service, one, slice_("s-2", "10.0.0.2")) == ["10.0.0.1:8080", "10.0.0.2:8080"]
    assert servers(service, slice_("s-1", "10.0.0.3")) == ["10.0.0.3:8080"]  # a slice replaced
    renamed = copy.deepcopy(service)
    renamed["spec"]["ports"][0]["name"] = "web"  # type: ignore[index]
    assert (
        servers(renamed, slice_("s-1", "10.0.0.3")) == []
    )  # the Service changed: no port "web" in the slice


def test_a_placement_that_raises_is_a_problem_on_that_ingress_only(monkeypatch: pytest.MonkeyPatch) -> None:
    real_place = ingress_module.place

    def place(annotations: IngressAnnotations, **kwargs: Any) -> Placement:
        if annotations.traefik17.redirect_entrypoint:
            raise ValueError("port 0 must be between 1 and 65535")
        return real_place(annotations, **kwargs)

    monkeypatch.setattr(ingress_module, "place", place)
    backend = {"service": {"name": "s", "port": {"number": 80}}}
    objects = [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": name, "annotations": annotations},
            "spec": {"rules": [{"host": f"{name}.example", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": backend}
            ]}}]},
        }
        for name, annotations in (("odd", {"ingress.kubernetes.io/redirect-entry-point": "web"}), ("fine", {}))
    ]  # fmt: skip
    config, problems = translate(ClusterSnapshot.of(objects))
    assert [r.host for r in config.routers] == ["fine.example"]
    assert [(str(p.ref), p.message) for p in problems if "port 0" in p.message] == [
        ("Ingress default/odd", "not served: port 0 must be between 1 and 65535")
    ]
