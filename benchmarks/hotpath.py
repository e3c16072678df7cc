"""The data plane's per-request Python cost, without sockets: `python benchmarks/hotpath.py [--profile]`.

Drives the real ClientConnection and UpstreamConnection with in-memory transports: a keep-alive
request in, through routing and the upstream pool, the response back out. What it measures is
exactly the code a request runs in passerelle (parsing, routing, header rewriting, framing, pool
hand-off), and nothing of the kernel or the event loop, so it is stable on a noisy machine and
shows where a change helps. Compare with `run.py` for the end-to-end picture.

Instructions per request, exact and repeatable even on a busy machine (valgrind):
    for n in 2000 12000; do valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        python benchmarks/hotpath.py --once -n $n 2>&1 | grep Collected; done
and divide the difference by 10,000. `--metrics` counts every exchange as a worker does with
`metrics.prometheus` on (the default in passerelle); without it, nothing is counted.
`--request-ids` makes an X-Request-Id per request (`requestId.generate`, the default in passerelle).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import time

from passerelle.model import DynamicConfig, PathMatch, PathType, Router, Server, Service
from passerelle.observability.recorder import Recorder
from passerelle.proxy.connection import ClientConnection
from passerelle.proxy.dataplane import Dataplane
from passerelle.proxy.options import EntryPointOptions, ForwardingOptions
from passerelle.proxy.upstream import UpstreamConnection
from passerelle.settings.observability import DEFAULT_BUCKETS

REQUEST = (
    b"GET /small HTTP/1.1\r\nHost: bench.local\r\nUser-Agent: wrk/4.1\r\nAccept: */*\r\n"
    b"Accept-Encoding: gzip\r\n\r\n"
)
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Thu, 26 Nov 2026 21:00:00 GMT\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 13\r\nConnection: keep-alive\r\n\r\nHello, World!"
)


class MemoryTransport(asyncio.Transport):
    """Counts what is written; never blocks, never closes by itself."""

    def __init__(self) -> None:
        super().__init__()
        self.written = 0
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += len(data)

    def writelines(self, lines: object) -> None:
        for line in lines:  # type: ignore[attr-defined]
            self.written += len(line)

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 40000) if name in ("peername", "sockname") else default

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def setup(
    routes: int, metrics: bool = False, request_ids: bool = False
) -> tuple[ClientConnection, UpstreamConnection, MemoryTransport]:
    loop = asyncio.new_event_loop()
    recorders = {"web": Recorder("web", DEFAULT_BUCKETS)} if metrics else None
    entry = EntryPointOptions(name="web", host="", port=8080, request_ids=request_ids)
    dataplane = Dataplane([entry], ForwardingOptions(), loop, observers=recorders)
    prefix = PathMatch(type=PathType.PREFIX, value="/")
    routers = [Router(name="bench", service="backend", host="bench.local", path=prefix)]
    routers += [
        Router(name=f"r{i}", service="backend", host=f"h{i}.bench.local", path=prefix) for i in range(routes)
    ]
    dataplane.apply(
        DynamicConfig(
            routers=tuple(routers),
            services=(Service(name="backend", servers=(Server(host="127.0.0.1", port=18001),)),),
        )
    )
    entry = dataplane.entrypoints["web"]
    client = ClientConnection(entry)
    client_transport = MemoryTransport()
    client.connection_made(client_transport)
    route = entry.table.match(b"bench.local", b"/")
    assert route is not None
    pool = route.upstream.pools.items[0]
    upstream = UpstreamConnection(pool, ForwardingOptions(), dataplane.deadlines)
    upstream.connection_made(MemoryTransport())
    pool.idle.append(upstream)
    return client, upstream, client_transport


def run(client: ClientConnection, upstream: UpstreamConnection, n: int) -> None:
    """n requests, in rounds of 5,000; with metrics on, the worker's report after each, so what
    it costs is measured too (a worker reports every second: ~10,000 requests apart at full load)."""
    observer = client.entry.observer
    while n > 0:
        for _ in range(min(n, 5000)):
            client.data_received(REQUEST)
            upstream.data_received(RESPONSE)
        n -= 5000
        if observer is not None:
            observer.report()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200_000, help="requests")
    parser.add_argument("--routes", type=int, default=10)
    parser.add_argument("--metrics", action="store_true", help="count exchanges (metrics.prometheus on)")
    parser.add_argument("--request-ids", action="store_true", help="make X-Request-Id (requestId.generate)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the run")
    parser.add_argument("--once", action="store_true", help="run n requests once, untimed (for callgrind)")
    args = parser.parse_args()
    client, upstream, transport = setup(args.routes, args.metrics, args.request_ids)
    client.data_received(REQUEST)
    upstream.data_received(RESPONSE)
    size = transport.written
    assert size == len(RESPONSE) - len(b"Connection: keep-alive\r\n"), size  # hop-by-hop header dropped
    if args.metrics:
        assert client.entry.observer is not None
        [row] = client.entry.observer.report()["requests"]
        assert row[7] == 1, row  # counted, once
    run(client, upstream, 999)  # warm up; every response the same size, so none was lost or doubled
    assert transport.written == 1000 * size, transport.written
    if args.once:
        run(client, upstream, args.n)
        return
    if args.profile:
        cProfile.runctx("run(client, upstream, args.n)", globals(), locals(), "/tmp/hotpath.prof")
        pstats.Stats("/tmp/hotpath.prof").sort_stats("tottime").print_stats(15)
        return
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        run(client, upstream, args.n)
        best = min(best, (time.perf_counter() - start) / args.n)
    print(f"{best * 1e6:.2f} us of Python per proxied request (best of 5 x {args.n}, {args.routes} routes)")


if __name__ == "__main__":
    main()
