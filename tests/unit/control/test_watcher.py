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


async def test_translation_runs_in_a_thread_at_lower_priority_and_publishes_in_the_loop() -> None:
    import asyncio
    import os
    import threading

    from passerelle.control.watcher import TRANSLATION_NICENESS

    seen: dict[str, int] = {}
    published = asyncio.Event()

    def listener(version: Version) -> None:
        seen["listener thread"] = threading.get_native_id()
        published.set()

    watcher = ConfigWatcher(IngressOptions(), [listener], throttle=0)
    translate = watcher._translator.translate

    def spy(snapshot: ClusterSnapshot) -> object:
        seen["translation thread"] = threading.get_native_id()
        seen["niceness"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        return translate(snapshot)

    watcher._translator.translate = spy  # type: ignore[method-assign,assignment]
    task = asyncio.get_running_loop().create_task(watcher.run())
    try:
        await watcher.publish(loaded(INGRESS))
        await asyncio.wait_for(published.wait(), 5)
    finally:
        task.cancel()
    main = threading.get_native_id()
    assert seen["translation thread"] != main and seen["listener thread"] == main
    assert seen["niceness"] == os.getpriority(os.PRIO_PROCESS, main) + TRANSLATION_NICENESS
    assert os.getpriority(os.PRIO_PROCESS, main) == os.getpriority(os.PRIO_PROCESS, 0)  # the loop's unchanged


def test_a_version_says_which_parts_changed_since_its_base() -> None:
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
               "spec": {"ports": [{"port": 80}]}}  # fmt: skip

    def endpoints(ip: str) -> dict[str, object]:
        return {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "s"},
                "subsets": [{"addresses": [{"ip": ip}], "ports": [{"port": 80}]}]}  # fmt: skip

    watcher = ConfigWatcher(IngressOptions(), [])
    first = watcher.apply(loaded(INGRESS, service, endpoints("10.0.0.1")))
    assert first is not None and first.changed == {"routers", "services", "middlewares", "tls"}
    moved = watcher.apply(loaded(INGRESS, service, endpoints("10.0.0.2")))
    assert moved is not None and (moved.base, moved.changed) == (first.number, {"services"})
    other = {**INGRESS, "metadata": {"name": "j"}, "spec": {"rules": [{"host": "x.example", "http": {"paths": [
        {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "s", "port": {"number": 80}}}}]}}]}}  # fmt: skip
    routed = watcher.apply(loaded(INGRESS, other, service, endpoints("10.0.0.2")))
    assert routed is not None and routed.changed == {"routers"}


def test_contributed_certificates_and_problems_join_every_version() -> None:
    from passerelle.model import ObjectRef, Problem
    from passerelle.tls.store import generate_default

    applied: list[Version] = []
    watcher = ConfigWatcher(IngressOptions(), [applied.append])
    cert = generate_default()
    problem = Problem(ref=ObjectRef(kind="Ingress", namespace="default", name="i"), message="acme failed")
    assert watcher.contribute("acme", certificates=(cert,)) is None  # nothing translated yet: kept
    first = watcher.apply(loaded(INGRESS))
    assert first is not None and first.config.tls.certificates == (cert,)
    assert watcher.contribute("acme", certificates=(cert,)) is None  # the same: no new version
    without = watcher.contribute("acme", problems=(problem,))
    assert without is not None and without.changed == frozenset({"tls"})
    assert without.config.tls.certificates == () and problem in without.problems
    assert without.config.routers == first.config.routers  # the translation is reused, not redone
    other = {**INGRESS, "metadata": {"name": "j"}}
    again = watcher.apply(loaded(other))
    assert again is not None and problem in again.problems
    assert [v.number for v in applied] == [1, 2, 3]


def test_a_change_set_is_from_the_live_version_even_after_a_version_failed() -> None:
    failing = [False]
    applied: list[Version] = []

    def listener(version: Version) -> None:
        if failing[0]:
            raise RuntimeError("compile failed")
        applied.append(version)

    def ingress(name: str) -> dict[str, object]:
        return {**INGRESS, "metadata": {"name": name}, "spec": {"rules": [{"host": f"{name}.example", "http": {
            "paths": [{"path": "/", "pathType": "Prefix", "backend": INGRESS["spec"]["defaultBackend"]}]}}]}}  # type: ignore[index]  # fmt: skip

    watcher = ConfigWatcher(IngressOptions(), [listener])
    first = watcher.apply(loaded(ingress("a")))
    assert first is not None and first.delta is None  # nothing to change: sent whole
    failing[0] = True
    assert watcher.apply(loaded(ingress("a"), ingress("b"))) is None
    failing[0] = False
    third = watcher.apply(loaded(ingress("a"), ingress("b"), ingress("c")))
    assert third is not None and third.base == first.number and third.delta is not None
    assert sorted(r.host or "" for r in third.delta.routers) == ["b.example", "c.example"]
    fourth = watcher.apply(loaded(ingress("a"), ingress("c")))
    assert (
        fourth is not None
        and fourth.delta is not None
        and fourth.delta.removed_routers == ("default-b-b-example",)
    )
    assert fourth.delta.hosts == {"b.example": ()}


async def test_a_translation_that_raises_leaves_the_live_version_and_later_ones_still_come() -> None:
    import asyncio

    published: list[Version] = []
    arrived = asyncio.Event()

    def listener(version: Version) -> None:
        published.append(version)
        arrived.set()

    watcher = ConfigWatcher(IngressOptions(), [listener], throttle=0)
    translate = watcher._translator.translate
    calls = 0

    def faulty(snapshot: ClusterSnapshot) -> object:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("a fault in translation")
        return translate(snapshot)

    watcher._translator.translate = faulty  # type: ignore[method-assign,assignment]
    task = asyncio.get_running_loop().create_task(watcher.run())
    try:
        await watcher.publish(loaded(INGRESS))
        await asyncio.wait_for(arrived.wait(), 5)
        arrived.clear()
        await watcher.publish(loaded({**INGRESS, "metadata": {"name": "j"}}))  # this one fails
        while calls < 2:
            await asyncio.sleep(0.01)
        assert watcher.current is not None and watcher.current.number == 1  # still serving v1
        await watcher.publish(loaded({**INGRESS, "metadata": {"name": "k"}}))
        await asyncio.wait_for(arrived.wait(), 5)
    finally:
        task.cancel()
    assert [v.number for v in published] == [1, 2]
    assert [r.source for r in published[-1].config.routers] == ["Ingress default/k"]
