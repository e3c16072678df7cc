"""Which Pod a draining router annotates, and with what (pure: no API server)."""

from __future__ import annotations

import pytest

from passerelle.kube.draining import OwnPod, draining_patch
from passerelle.kube.nodes import DRAINING


@pytest.mark.parametrize(
    ("env", "namespace", "name", "path"),
    [
        (
            {"POD_NAME": "passerelle-x7k2p", "POD_NAMESPACE": "edge"},
            "edge",
            "passerelle-x7k2p",
            "/api/v1/namespaces/edge/pods/passerelle-x7k2p",
        ),
        (  # no $POD_NAMESPACE: the kubeconfig's (or service account's) namespace
            {"POD_NAME": "passerelle-x7k2p"},
            "passerelle",
            "passerelle-x7k2p",
            "/api/v1/namespaces/passerelle/pods/passerelle-x7k2p",
        ),
        ({"POD_NAMESPACE": "edge"}, "edge", "", "/api/v1/namespaces/edge/pods/"),  # unknown: not patched
    ],
)
def test_the_own_pod_comes_from_the_downward_api(
    env: dict[str, str], namespace: str, name: str, path: str
) -> None:
    pod = OwnPod.from_env("passerelle", env)
    assert (pod.namespace, pod.name, pod.path) == (namespace, name, path)


def test_the_patch_sets_only_the_draining_annotation() -> None:
    assert draining_patch() == {"metadata": {"annotations": {DRAINING: "true"}}}
    assert DRAINING == "passerelle.io/draining"  # docs/dns-sync.md names it
