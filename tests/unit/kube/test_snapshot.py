"""ClusterSnapshot.merged: the live provider's per-reflector parts make the same snapshot as one of()."""

from __future__ import annotations

from typing import Any

from passerelle.kube.snapshot import ClusterSnapshot


def o(kind: str, name: str, namespace: str = "default", **extra: Any) -> dict[str, Any]:
    meta = {"name": name} | ({"namespace": namespace} if namespace else {})
    return {"kind": kind, "apiVersion": "v1", "metadata": meta, **extra}


def test_merged_parts_are_the_snapshot_of_everything() -> None:
    parts = [
        [o("Service", "b", "team-b"), o("Service", "a", "team-b")],  # one reflector per namespace
        [o("Service", "z", "team-a")],
        [o("Node", "n2", ""), o("Node", "n1", "")],  # a kind from one part only: its tuple reused
        [],
    ]
    merged = ClusterSnapshot.merged(ClusterSnapshot.of(p) for p in parts)
    whole = ClusterSnapshot.of(x for p in parts for x in p)
    assert merged.objects == whole.objects
    for kind in ("Service", "Node", "Secret"):
        assert merged.of_kind(kind) == whole.of_kind(kind)
    assert [x["metadata"]["name"] for x in merged.of_kind("Service")] == ["z", "a", "b"]
    node_part = ClusterSnapshot.of(parts[2])
    assert ClusterSnapshot.merged([node_part]).of_kind("Node") is node_part.of_kind("Node")


def test_later_parts_win_on_equal_keys() -> None:
    old, new = o("Secret", "s", data={"v": "1"}), o("Secret", "s", data={"v": "2"})
    merged = ClusterSnapshot.merged([ClusterSnapshot.of([old]), ClusterSnapshot.of([new])])
    assert merged.of_kind("Secret") == (new,) and merged.get("Secret", "default", "s") is new
