"""ClusterSnapshot.merged and .edited make the same snapshot as one of(); edited ones say what changed."""

from __future__ import annotations

from typing import Any

import pytest

from passerelle.kube.snapshot import ClusterSnapshot, key_of


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


a1, a2, b1, n1 = o("Service", "a"), o("Service", "a"), o("Service", "b"), o("Node", "n", "")
EDITS = [  # objects before, keys removed, objects upserted, (removed, added) per kind that changed
    ([a1, b1], [], [a2], {"Service": ([a1], [a2])}),  # replaced: both
    ([a1], [key_of(a1)], [], {"Service": ([a1], [])}),  # the last of its kind: the kind goes
    ([a1], [], [b1, n1], {"Service": ([], [b1]), "Node": ([], [n1])}),
    ([a1, b1], [key_of(a1)], [a2], {"Service": ([a1], [a2])}),  # upserted wins over removed
    ([a1], [key_of(b1)], [a1], {}),  # not there, and the same object: nothing changed
]


@pytest.mark.parametrize(("before", "removed", "upserted", "changes"), EDITS)
def test_an_edited_snapshot_is_the_snapshot_of_its_objects_and_says_what_changed(
    before: list[dict[str, Any]],
    removed: list[Any],
    upserted: list[dict[str, Any]],
    changes: dict[str, Any],
) -> None:
    base = ClusterSnapshot.of(before)
    edited = base.edited(removed, {key_of(x): x for x in upserted})
    table = {key_of(x): x for x in before if key_of(x) not in removed} | {key_of(x): x for x in upserted}
    whole = ClusterSnapshot.of(table.values())
    assert edited == whole
    for kind in ("Service", "Node"):
        assert edited.of_kind(kind) == whole.of_kind(kind)
    assert edited.changes_since(base.token) == {k: (tuple(r), tuple(a)) for k, (r, a) in changes.items()}
    assert edited.changes_since(whole.token) is None  # only from the snapshot it was edited from
    assert edited.changes_since(None) is None
    assert base.of_kind("Service") == ClusterSnapshot.of(before).of_kind("Service")  # left as it was
