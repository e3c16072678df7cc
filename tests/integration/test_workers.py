"""Several worker processes: connections spread over them, versions reach all, a dead one is replaced."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.integration.harness import Backends, Router, echo, endpoint_slice, ingress, rule, service


def established_on(pid: int, port: int) -> int:
    """How many established TCP connections to local `port` process `pid` holds."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "01" and fields[9] in inodes:  # 01 = ESTABLISHED
                count += 1
    return count


def _router(backends: Backends, make_router: Callable[..., Router], workers: int = 2) -> Router:
    port = backends.whoami("w")
    return make_router(
        [service("w"), endpoint_slice("w", [port]), ingress("w", [rule(None, ("/", "Prefix", "w"))])],
        config={"workers": workers},
    )


def test_connections_spread_over_the_workers(backends: Backends, make_router: Callable[..., Router]) -> None:
    router = _router(backends, make_router)
    workers = router.workers()
    assert len(workers) == 2 and len({w["pid"] for w in workers}) == 2
    clients = [socket.create_connection(("127.0.0.1", router.port)) for _ in range(40)]
    try:
        for c in clients:
            c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert c.recv(65536).startswith(b"HTTP/1.1 200 OK")
        per_worker = [established_on(w["pid"], router.port) for w in workers]
        assert sum(per_worker) == 40
        assert min(per_worker) >= 5, per_worker  # SO_REUSEPORT hashing: not all on one worker
    finally:
        for c in clients:
            c.close()


def test_every_worker_applies_each_version(backends: Backends, make_router: Callable[..., Router]) -> None:
    router = _router(backends, make_router)
    version = router.version()
    router.write("more.yaml", [ingress("more", [rule("more.test", ("/", "Prefix", "w"))])])
    new = router.wait_version(version)
    assert [w["applied"] for w in router.workers()] == [new, new]
    # a fresh connection, whichever worker takes it, sees the new route
    for _ in range(10):
        assert echo(httpx.get(f"{router.base}/", headers={"Host": "more.test"}))["pod"] == "w"


def test_a_killed_worker_is_replaced_and_serves_again(
    backends: Backends, make_router: Callable[..., Router]
) -> None:
    router = _router(backends, make_router)
    version = router.version()
    victim = router.workers()[0]["pid"]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        workers = router.workers()
        if workers[0]["pid"] not in (victim, None) and workers[0]["applied"] == version:
            break
        time.sleep(0.05)
    else:
        raise AssertionError(f"worker 0 was not replaced: {router.workers()}\n{router.log()}")
    assert workers[0]["restarts"] == 1
    assert f"worker 0 (pid {victim}) exited with code -9; restarting it" in router.log()
    with httpx.Client(base_url=router.base, headers={"Host": "x"}) as client:
        for _ in range(30):  # new connections land on both workers, the new one included
            assert client.get("/", headers={"Connection": "close"}).status_code == 200
    assert router.version() == version
