"""The store's versioning rules without sockets: conflicts, status, history, compaction, paging."""

from __future__ import annotations

import asyncio

import pytest

from tests.kubeapi.resources import served
from tests.kubeapi.store import ApiError, Store, Watch

RES = {r.kind: r for r in served(frozenset())}
ING = RES["Ingress"]
ALL = lambda obj: True  # noqa: E731


def ingress(name: str, ns: str = "default", **spec: object) -> dict[str, object]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "namespace": ns},
        "spec": dict(spec),
    }


def test_every_write_takes_the_next_version_and_a_stale_one_conflicts() -> None:
    store = Store(served(frozenset()))
    created = store.create(ING, "default", ingress("a"))
    assert created["metadata"]["resourceVersion"] == "1001" and created["metadata"]["generation"] == 1
    updated = store.replace(ING, "default", "a", {**created, "spec": {"x": 1}})
    assert updated["metadata"]["resourceVersion"] == "1002" and updated["metadata"]["generation"] == 2
    with pytest.raises(ApiError) as e:
        store.replace(ING, "default", "a", created)  # created's version is stale now
    assert e.value.code == 409 and e.value.reason == "Conflict"
    with pytest.raises(ApiError) as e:
        store.create(ING, "default", ingress("a"))
    assert e.value.code == 409 and e.value.reason == "AlreadyExists"


def test_status_is_written_only_through_the_subresource() -> None:
    store = Store(served(frozenset()))
    obj = store.create(
        ING, "default", {**ingress("a"), "status": {"loadBalancer": {"ingress": [{"ip": "1.1.1.1"}]}}}
    )
    assert "status" not in obj  # create ignores status for resources with a status subresource
    with_status = store.replace(
        ING,
        "default",
        "a",
        {**obj, "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}}},
        status=True,
    )
    assert with_status["status"]["loadBalancer"]["ingress"] == [{"ip": "10.0.0.1"}]
    assert with_status["metadata"]["generation"] == 1
    spec_only = store.replace(ING, "default", "a", {**with_status, "spec": {"y": 1}, "status": {}})
    assert spec_only["status"] == with_status["status"]
    patched = store.patch(ING, "default", "a", {"status": {"loadBalancer": {"ingress": []}}}, status=True)
    assert patched["status"]["loadBalancer"]["ingress"] == [] and patched["spec"] == {"y": 1}


def test_lists_page_through_a_consistent_version_until_it_is_compacted() -> None:
    store = Store(served(frozenset()))
    for i in range(5):
        store.create(ING, "default", ingress(f"i{i}"))
    page, rv, token = store.list(ING, "", ALL, ALL, limit=2)
    assert [o["metadata"]["name"] for o in page] == ["i0", "i1"] and token
    assert "kind" not in page[0] and "apiVersion" not in page[0]
    store.delete(ING, "default", "i3")
    page2, rv2, token2 = store.list(ING, "", ALL, ALL, limit=2, continue_token=token)
    assert [o["metadata"]["name"] for o in page2] == ["i2", "i3"] and rv2 == rv  # as of the first page
    store.expire()
    with pytest.raises(ApiError) as e:
        store.list(ING, "", ALL, ALL, limit=2, continue_token=token2)
    assert e.value.code == 410


async def test_watches_replay_from_a_version_and_see_objects_leave_their_selector() -> None:
    store = Store(served(frozenset()))
    a = store.create(
        ING,
        "default",
        {**ingress("a"), "metadata": {"name": "a", "namespace": "default", "labels": {"x": "1"}}},
    )
    start = int(a["metadata"]["resourceVersion"])
    store.patch(ING, "default", "a", {"metadata": {"labels": {"x": "2"}}})
    watch = Watch(
        resource=ING,
        namespace="",
        labels=lambda o: o["metadata"].get("labels", {}).get("x") == "2",
        fields=ALL,
    )
    store.watch(watch, start)
    store.patch(ING, "default", "a", {"metadata": {"labels": {"x": "3"}}})
    events = [await asyncio.wait_for(watch.queue.get(), 1) for _ in range(2)]
    assert [(t, o["metadata"]["labels"]["x"]) for t, o in events] == [("ADDED", "2"), ("DELETED", "3")]  # type: ignore[index]
    store.expire()
    with pytest.raises(ApiError) as e:
        store.watch(Watch(resource=ING, namespace="", labels=ALL, fields=ALL), start)
    assert e.value.code == 410 and e.value.reason == "Expired"
