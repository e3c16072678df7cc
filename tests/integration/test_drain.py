"""`passerelle run` with dnsSync against a real BIND: records follow the files, and drain's order
(out of DNS, wait the TTL, /ping 503, close listeners, finish in-flight) seen from outside; and a
DNS server that accepts connections and never answers cannot hold a drain past its timeout."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from passerelle.dnssync import controller
from passerelle.dnssync.controller import DrainResult
from passerelle.dnssync.rfc2136 import Rfc2136Options, Rfc2136Provider
from tests.integration.bind import KEY_NAME, Bind
from tests.integration.dnsfixtures import Cluster, dns_settings, host_ingress, node, pod, slow_request
from tests.integration.harness import Backends, Router, endpoint_slice, service

HOST = "app.example.test"
TTL = 2


@pytest.fixture
def bind(tmp_path: Path) -> Iterator[Bind]:
    server = Bind(tmp_path / "bind", extra_records="legacy IN A 198.51.100.7\n")
    server.start()
    yield server
    server.stop()


def start(make_router: Callable[..., Router], backends: Backends, bind: Bind, **drain: object) -> Router:
    port = backends.whoami("app")
    sync = dns_settings(bind, ttl=TTL, nodeName="n1", drain={"acceptGrace": "2s", **drain})
    objects = [
        node("n1", "10.0.0.1"), node("n2", "10.0.0.2"), pod("n1"), pod("n2"),
        service("web"), endpoint_slice("web", [port]),
    ]  # fmt: skip
    return make_router(objects, config={"dnsSync": sync, "graceTimeout": "5s"})


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_records_follow_the_manifests(
    bind: Bind, make_router: Callable[..., Router], backends: Backends
) -> None:
    router = start(make_router, backends, bind)
    router.write("app.yaml", [host_ingress("app", HOST), host_ingress("legacy", "legacy.example.test")])
    wait_for(lambda: bind.addresses(HOST) == {"10.0.0.1", "10.0.0.2"})
    assert "assumes it is the only writer for ownerId 'cluster-a' in zones example.test" in router.log()
    # the health is recorded when the reconcile ends, just after BIND answers with its writes
    wait_for(lambda: router.api("/api/dnssync")["names"] == 2)
    health = router.api("/api/dnssync")
    assert health["leader"] and health["healthy"]
    router.wait_problem("Ingress default/legacy", "is not published in DNS: the name already has A records")
    assert bind.addresses("legacy.example.test") == {"198.51.100.7"}
    (router.manifests / "app.yaml").unlink()
    wait_for(lambda: bind.addresses(HOST) == set())


@dataclass
class Timeline:
    """When each step of a drain was first seen from outside (time.monotonic)."""

    out_of_dns: float | None = None
    ping_503: float | None = None
    closed: float | None = None
    dns_at_503: set[str] = field(default_factory=set)  # what BIND answered right after the first 503
    served_while_refusing: list[int] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)  # the router's own account (GET /api/drain)
    in_flight: list[int | str] = field(default_factory=list)


def watch_drain(
    router: Router, bind: Bind, trigger: Callable[[], subprocess.Popen[bytes] | None]
) -> Timeline:
    seen = Timeline()
    slow: list[threading.Thread] = []

    api = httpx.Client(base_url=f"http://127.0.0.1:{router.api_port}", timeout=1)
    web = httpx.Client(base_url=router.base, timeout=5, headers={"Host": HOST, "Connection": "close"})
    trigger()
    assert router.process is not None
    deadline = time.monotonic() + 30
    while router.process.poll() is None and time.monotonic() < deadline:
        now = time.monotonic()
        if seen.out_of_dns is None and "10.0.0.1" not in bind.addresses(HOST):
            seen.out_of_dns = now
        try:
            if seen.ping_503 is None and api.get("/ping").status_code == 503:
                seen.ping_503 = now
                seen.dns_at_503 = bind.addresses(HOST)
                # starts while /ping is 503 (2 s before the close), ends after it
                slow.append(slow_request(router, HOST, seen.in_flight, timeout=10))
            seen.phases = api.get("/api/drain").json()["since"]
        except httpx.TransportError:
            pass
        if seen.ping_503 is not None and seen.closed is None:
            try:
                seen.served_while_refusing.append(web.get("/").status_code)
            except httpx.TransportError:  # refused, or reset while queued for accept at the close
                seen.closed = time.monotonic()
        time.sleep(0.02)
    for thread in slow:
        thread.join(timeout=10)
    api.close()
    web.close()
    return seen


def check_order(seen: Timeline, bind: Bind) -> None:
    assert seen.out_of_dns is not None and seen.ping_503 is not None and seen.closed is not None, seen
    assert seen.out_of_dns <= seen.ping_503 < seen.closed, seen
    assert "10.0.0.1" not in seen.dns_at_503, seen  # out of DNS before /ping turned 503
    # The router's own clock: it confirmed the removal, then kept /ping at 200 for the TTL.
    phases = seen.phases
    assert list(phases)[:3] == ["leaving-dns", "waiting-ttl", "refusing"], seen
    assert phases["refusing"] - phases["waiting-ttl"] >= TTL - 0.01, seen
    assert seen.served_while_refusing and set(seen.served_while_refusing) == {200}, seen
    assert seen.in_flight == [200], seen  # started before the close, finished within graceTimeout
    assert bind.addresses(HOST) == {"10.0.0.2"}  # only this node left


def test_passerelle_drain_orders_dns_ping_and_close(
    bind: Bind, make_router: Callable[..., Router], backends: Backends
) -> None:
    router = start(make_router, backends, bind)
    router.write("app.yaml", [host_ingress("app", HOST)])
    wait_for(lambda: bind.addresses(HOST) == {"10.0.0.1", "10.0.0.2"})
    drains: list[subprocess.Popen[bytes]] = []

    def drain() -> subprocess.Popen[bytes]:
        drains.append(
            subprocess.Popen(
                [sys.executable, "-m", "passerelle", "drain", "-c", str(router.config_path)],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
        )
        return drains[0]

    seen = watch_drain(router, bind, drain)
    output = drains[0].communicate(timeout=10)[0].decode()
    assert drains[0].returncode == 0, output
    check_order(seen, bind)
    assert router.process is not None and router.process.returncode == 0, router.log()
    phases = [line.removeprefix("drain: ").split(" ")[0] for line in output.splitlines()]
    assert phases[0] == "requested" and phases[-1] == "router", output  # "router stopped"
    assert phases[1:5] == ["leaving-dns", "dns", "waiting-ttl", "refusing"], output
    assert "drain: dns ok (removed): node n1 is out of DNS" in output


def test_passerelle_drain_fails_when_its_node_is_unknown(
    bind: Bind, make_router: Callable[..., Router], backends: Backends
) -> None:
    """No Node has this process's node name (the host name of a pod is the pod's): the drain goes
    on, and says it failed."""
    port = backends.whoami("app")
    sync = dns_settings(bind, ttl=TTL, nodeName="passerelle-7d9f-abcde", drain={"acceptGrace": "0s"})
    objects = [node("n1", "10.0.0.1"), pod("n1"), service("web"), endpoint_slice("web", [port])]
    router = make_router(objects, config={"dnsSync": sync, "graceTimeout": "1s"})
    router.write("app.yaml", [host_ingress("app", HOST)])
    wait_for(lambda: bind.addresses(HOST) == {"10.0.0.1"})
    done = subprocess.run(
        [sys.executable, "-m", "passerelle", "drain", "-c", str(router.config_path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "drain: dns FAILED (unknown-node): no Node 'passerelle-7d9f-abcde' matches" in done.stderr
    assert done.stdout.splitlines()[-1] == "drain: router stopped", done.stdout
    assert router.process is not None and router.process.wait(timeout=10) == 0, router.log()
    assert bind.addresses(HOST) == {"10.0.0.1"}  # nothing removed: the node was not found


def test_sigterm_drains_when_configured(
    bind: Bind, make_router: Callable[..., Router], backends: Backends
) -> None:
    router = start(make_router, backends, bind, onSigterm=True)
    router.write("app.yaml", [host_ingress("app", HOST)])
    wait_for(lambda: bind.addresses(HOST) == {"10.0.0.1", "10.0.0.2"})
    assert router.process is not None
    process = router.process
    seen = watch_drain(router, bind, lambda: process.send_signal(signal.SIGTERM))
    check_order(seen, bind)
    assert process.returncode == 0, router.log()


def test_get_api_drain_only_reads(bind: Bind, make_router: Callable[..., Router], backends: Backends) -> None:
    router = start(make_router, backends, bind)
    with httpx.Client(base_url=f"http://127.0.0.1:{router.api_port}") as api:
        assert api.get("/api/drain").json()["phase"] == "serving"  # GET only reads
        assert api.get("/ping").status_code == 200


@pytest.fixture
def silent() -> Iterator[int]:
    """A TCP port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield int(listener.getsockname()[1])


async def test_a_server_that_never_answers_cannot_hold_the_drain_past_its_timeout(
    tmp_path: Path, bind: Bind, silent: int
) -> None:
    cluster = Cluster(tmp_path, bind, backoff=controller.Backoff(first_retry=0.1))  # this process is node n1
    cluster.write("nodes.yaml", [node("n1", "10.0.0.1"), node("n2", "10.0.0.2"), pod("n1"), pod("n2")])
    cluster.write("app.yaml", [host_ingress("app", HOST)])
    assert (await cluster.reconcile()).ok
    # the same provider, now pointed at a server that takes the connection and says nothing: one
    # transfer would wait up to 6 x 10 s (the timeout per answer, and the transfer's lifetime)
    cluster.sync.provider = Rfc2136Provider(
        Rfc2136Options(server="127.0.0.1", port=silent, key_name=KEY_NAME, secret=bind.secret, timeout=10.0)
    )
    report = await cluster.sync.drain_node(timeout=1.0)
    assert report.result is DrainResult.TIMEOUT and report.failed, report
    # cut off in the first attempt: not after it, which would have ended "did not answer within 10s"
    assert report.detail == "not confirmed out of DNS within 1s: its addresses are still published"
    assert bind.addresses(HOST) == {"10.0.0.1", "10.0.0.2"}  # nothing written
