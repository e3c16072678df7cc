"""WorkerPool.publish: change sets to workers that hold their base, whole versions otherwise, and
a worker that rejects a change set repaired with the whole latest version."""

from __future__ import annotations

import asyncio
from typing import Any

from passerelle.control.distribute import WorkerPool
from passerelle.control.watcher import ConfigWatcher, Version
from passerelle.kube.gateway import CONTROLLER_NAME
from passerelle.kube.ingress import IngressOptions
from passerelle.kube.manifests import Loaded
from passerelle.kube.placement import EntryPointInfo
from passerelle.kube.snapshot import ClusterSnapshot
from passerelle.model import Certificate
from passerelle.proxy.channel import Channel, Message
from passerelle.proxy.dataplane import Dataplane
from passerelle.proxy.options import EntryPointOptions, ForwardingOptions
from passerelle.proxy.worker import receive_version
from passerelle.routing.table import RouteTable


class Wire:
    def __init__(self) -> None:
        self.data = bytearray()

    def is_closing(self) -> bool:
        return False

    def write(self, data: bytes) -> None:
        self.data += data


class Worker:
    """A worker's receiving end, in memory: the real frame decoding and Dataplane."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.wire = Wire()
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.receiver = Channel(self.inbox.put_nowait, lambda: None)
        options = [EntryPointOptions(name="web", host="127.0.0.1", port=0)]
        self.dataplane = Dataplane(options, ForwardingOptions(), loop)
        self.held = 0
        self.answers: list[Message] = []

    def begins(self) -> list[Message]:
        """The `begin` frames waiting on the wire."""
        return [m for m in self._peek() if m["type"] == "begin"]

    def _peek(self) -> list[Message]:
        seen: list[Message] = []
        Channel(seen.append, lambda: None).data_received(bytes(self.wire.data))
        return seen

    def receive(self) -> None:
        data, self.wire.data = bytes(self.wire.data), bytearray()
        self.receiver.data_received(data)
        self.loop.run_until_complete(self._apply())

    async def _apply(self) -> None:
        while not self.inbox.empty():  # as the worker's loop does (proxy/worker.py)
            self.held = await receive_version(
                self.inbox, self.dataplane, self.held, self.answers.append, index=0
            )

    def hosts(self) -> list[bytes]:
        table = self.dataplane.entrypoints["web"].table
        assert isinstance(table, RouteTable)
        return sorted(host for host, routes in table.hosts.items() if routes.prefix or routes.exact)


def ingress(name: str, service: str = "s") -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": name},
        "spec": {"rules": [{"host": f"{name}.test", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": service, "port": {"number": 80}}}}]}}]},
    }  # fmt: skip


def setup(count: int) -> tuple[asyncio.AbstractEventLoop, WorkerPool, list[Worker], ConfigWatcher]:
    loop = asyncio.new_event_loop()
    pool = WorkerPool(count=count, entrypoints=[], forwarding=ForwardingOptions(), grace=1, log_level="INFO")
    workers = []
    for slot in pool._workers:
        worker = Worker(loop)
        sender = Channel(lambda m: None, lambda: None)
        sender.transport = worker.wire  # type: ignore[assignment]
        slot.channel = sender
        workers.append(worker)
    return loop, pool, workers, ConfigWatcher(IngressOptions(), [pool.publish])


def publish(watcher: ConfigWatcher, *objects: dict[str, Any]) -> Version:
    version = watcher.apply(Loaded(ClusterSnapshot.of(objects), []))
    assert version is not None
    return version


def answer(pool: WorkerPool, index: int, worker: Worker) -> None:
    for message in worker.answers:
        pool._on_message(pool._workers[index], message)
    worker.answers.clear()


def test_workers_get_change_sets_on_what_they_hold_and_whole_versions_otherwise() -> None:
    loop, pool, workers, watcher = setup(2)
    try:
        publish(watcher, ingress("a"))
        assert [[b["base"] for b in w.begins()] for w in workers] == [[None], [None]]
        for i, w in enumerate(workers):
            w.receive()
            answer(pool, i, w)
        v2 = publish(watcher, ingress("a"), ingress("b"))
        assert v2.delta is not None and [r.name for r in v2.delta.routers] == ["default-b-b-test"]
        assert [[b["base"] for b in w.begins()] for w in workers] == [[1], [1]]
        for i, w in enumerate(workers):
            w.receive()
            answer(pool, i, w)
            assert w.hosts() == [b"a.test", b"b.test"] and w.held == 2
        assert pool.applied is v2

        # Worker 1 misses v3 (say it arrives garbled and is rejected): v4's change set on v3 is
        # rejected too, and the pool sends it v4 whole at once; worker 0 follows the change sets.
        publish(watcher, ingress("b"))
        workers[1].wire.data.clear()
        workers[1].answers.append({"type": "rejected", "version": 3, "error": "garbled"})
        v4 = publish(watcher, ingress("b"), ingress("c"))
        assert [b["base"] for b in workers[0].begins()] == [2, 3]
        workers[0].receive()
        answer(pool, 0, workers[0])
        workers[1].receive()  # v4 on v3: this worker serves v2
        assert workers[1].answers[-1]["type"] == "rejected"
        assert "serves v2" in workers[1].answers[-1]["error"]
        answer(pool, 1, workers[1])
        assert [b["base"] for b in workers[1].begins()] == [None]  # the repair: v4 whole
        workers[1].receive()
        answer(pool, 1, workers[1])
        assert [w.hosts() for w in workers] == [[b"b.test", b"c.test"]] * 2
        assert pool.applied is v4
        assert workers[1].hosts() == workers[0].hosts()

        # A worker that comes back (restarted) gets the latest version whole.
        pool._on_message(pool._workers[1], {"type": "ready"})
        assert [b["base"] for b in workers[1].begins()] == [None]
    finally:
        loop.close()


def test_a_whole_version_rejected_is_not_sent_again_but_the_next_goes_whole() -> None:
    loop, pool, workers, watcher = setup(1)
    try:
        publish(watcher, ingress("a"))
        workers[0].wire.data.clear()
        pool._on_message(pool._workers[0], {"type": "rejected", "version": 1, "error": "bad"})
        assert workers[0].begins() == []  # no loop of rejections
        publish(watcher, ingress("a"), ingress("b"))
        assert [b["base"] for b in workers[0].begins()] == [None]
        workers[0].receive()
        assert workers[0].hosts() == [b"a.test", b"b.test"]
    finally:
        loop.close()


def test_an_endpoint_change_travels_as_one_service() -> None:
    loop, pool, workers, watcher = setup(1)

    def endpoints(ip: str) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "s"},
                "subsets": [{"addresses": [{"ip": ip}], "ports": [{"port": 80}]}]}  # fmt: skip

    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "s"},
        "spec": {"ports": [{"port": 80}]},
    }
    others = [ingress(f"i{n}", service=f"t{n}") for n in range(50)]
    try:
        publish(watcher, ingress("a"), service, endpoints("10.0.0.1"), *others)
        workers[0].receive()
        answer(pool, 0, workers[0])
        moved = publish(watcher, ingress("a"), service, endpoints("10.0.0.2"), *others)
        assert moved.changed == {"services"} and moved.delta is not None
        assert [s.name for s in moved.delta.services] == ["default/s:80"] and not moved.delta.routers
        frames = Worker._peek(workers[0])
        assert [f["type"] for f in frames] == ["begin", "services", "removed", "commit"]
        workers[0].receive()
        route = workers[0].dataplane.entrypoints["web"].table.match(b"a.test", b"/")
        assert route is not None and [str(p.server) for p in route.upstream.pools.items] == ["10.0.0.2:80"]
    finally:
        loop.close()


def test_a_gateway_api_version_goes_whole_to_every_worker_without_a_rejected_change_set() -> None:
    loop, pool, workers, _ = setup(1)
    web = (EntryPointInfo(name="web", tls=False, port=80),)  # the Gateway's listener port
    watcher = ConfigWatcher(IngressOptions(entrypoints=web), [pool.publish])
    gateway = [
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass", "metadata": {"name": "p"},
         "spec": {"controllerName": CONTROLLER_NAME}},
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"name": "gw"},
         "spec": {"gatewayClassName": "p", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}},
    ]  # fmt: skip

    def route(host: str) -> dict[str, Any]:
        return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "r"},
                "spec": {"parentRefs": [{"name": "gw"}], "hostnames": [host],
                         "rules": [{"backendRefs": [{"name": "s", "port": 80}]}]}}  # fmt: skip

    try:
        publish(watcher, ingress("a"), *gateway, route("g.test"))
        workers[0].receive()
        answer(pool, 0, workers[0])
        v2 = publish(watcher, ingress("a"), *gateway, route("h.test"))
        assert v2.delta is not None and v2.delta.whole and v2.changed == {"routers"}
        assert [b["base"] for b in workers[0].begins()] == [None]  # whole, at once
        workers[0].receive()
        assert workers[0].answers == [{"type": "applied", "version": 2}]
        answer(pool, 0, workers[0])
        assert pool.applied is v2
        table = workers[0].dataplane.entrypoints["web"].table
        assert table.match_request(b"h.test", b"/", b"GET", b"") is not None  # type: ignore[union-attr]
        # another source's certificates (ACME) on the same translation: whole too
        ordered = Certificate(cert_pem="", key_pem="", names=("h.test",), fingerprint="ff",
                              not_after="2027-01-01T00:00:00Z", source="acme")  # fmt: skip
        v3 = watcher.contribute("acme", certificates=(ordered,))
        assert v3 is not None and v3.delta is not None and v3.delta.whole and v3.changed == {"tls"}
        assert [b["base"] for b in workers[0].begins()] == [None]
        workers[0].receive()
        assert workers[0].answers == [{"type": "applied", "version": 3}]
    finally:
        loop.close()
