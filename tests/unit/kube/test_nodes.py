"""Node and Pod reading, and the manifests provider keeping a Node's last valid version."""

from __future__ import annotations

from pathlib import Path

import pytest

from passerelle.kube.manifests import ManifestsProvider
from passerelle.kube.nodes import read_node, read_pod
from passerelle.kube.objects import InvalidObject

NODE = """apiVersion: v1
kind: Node
metadata: {name: n1, labels: {role: ingress}}
spec: {unschedulable: true}
status:
  conditions: [{type: MemoryPressure, status: "False"}, {type: Ready, status: "True"}]
  addresses: [{type: InternalIP, address: "2001:DB8:0::1"}, {type: Hostname, address: n1}]
"""


def test_node_fields() -> None:
    import yaml

    node = read_node(yaml.safe_load(NODE))
    assert (node.name, node.ready, node.unschedulable) == ("n1", True, True)
    assert node.addresses == (("InternalIP", "2001:db8::1"), ("Hostname", "n1"))


def test_pod_fields() -> None:
    pod = read_pod(
        {
            "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ns", "deletionTimestamp": "2026-12-01T00:00:00Z"},
            "spec": {"nodeName": "n1"},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
        }
    )
    assert (pod.namespace, pod.node_name, pod.running, pod.ready, pod.deleting) == (
        "ns",
        "n1",
        True,
        True,
        True,
    )


@pytest.mark.parametrize(
    "status, error",
    [
        ({"addresses": [{"type": "InternalIP", "address": "10.0.0.300"}]}, "is not an IP address"),
        ({"addresses": [{"type": "Internal", "address": "10.0.0.1"}]}, "status.addresses[0].type"),
        ({"addresses": "10.0.0.1"}, "status.addresses: must be a list"),
        ({"conditions": {"type": "Ready"}}, "status.conditions: must be a list"),
    ],
)
def test_invalid_nodes_say_where(status: dict[str, object], error: str) -> None:
    with pytest.raises(InvalidObject, match=error.replace("[", r"\[").replace("]", r"\]")):
        read_node({"kind": "Node", "metadata": {"name": "n"}, "status": status})


def test_a_broken_node_keeps_its_last_valid_version(tmp_path: Path) -> None:
    provider = ManifestsProvider(tmp_path)
    (tmp_path / "n.yaml").write_text(NODE)
    assert provider.load().snapshot.get("Node", "", "n1") is not None
    (tmp_path / "n.yaml").write_text(NODE.replace("2001:DB8:0::1", "not-an-address"))
    loaded = provider.load()
    node = loaded.snapshot.get("Node", "", "n1")
    assert node is not None and node["status"]["addresses"][0]["address"] == "2001:DB8:0::1"
    [problem] = loaded.problems
    assert str(problem.ref) == "Node n1" and "the last valid version keeps serving" in problem.message
