from __future__ import annotations

from passerelle.control.watcher import ConfigWatcher, Version
from passerelle.kube.ingress import IngressOptions
from passerelle.kube.manifests import Loaded
from passerelle.kube.snapshot import ClusterSnapshot

INGRESS = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "Ingress",
    "metadata": {"name": "i"},
    "spec": {"defaultBackend": {"service": {"name": "s", "port": {"number": 80}}}},
}


def loaded(*objects: dict) -> Loaded:  # type: ignore[type-arg]
    return Loaded(ClusterSnapshot.of(objects), [])


def test_unchanged_configurations_are_not_republished() -> None:
    applied: list[Version] = []
    watcher = ConfigWatcher(IngressOptions(), [applied.append])
    assert watcher.apply(loaded(INGRESS)) is not None
    assert watcher.apply(loaded(INGRESS, {"kind": "ConfigMap", "metadata": {"name": "unrelated"}})) is None
    assert [v.number for v in applied] == [1]
    other = {**INGRESS, "metadata": {"name": "j"}}
    assert watcher.apply(loaded(other)) is not None
    assert [v.number for v in applied] == [1, 2]


def test_a_failing_listener_leaves_the_previous_version_live() -> None:
    def broken(version: Version) -> None:
        raise RuntimeError("compile failed")

    watcher = ConfigWatcher(IngressOptions(), [broken])
    assert watcher.apply(loaded(INGRESS)) is None
    assert watcher.current is None
