"""CPU cost of a reload at N Ingresses, phase by phase: `python benchmarks/reload_cpu.py [-n 10000]`.

Runs the real control plane (manifests provider, ConfigWatcher, WorkerPool framing) and the real
worker code (frame decoding, receive_version: Dataplane.apply_steps / patch_steps) in one process, without sockets or event-loop
waits, and reports `time.process_time()` per phase: CPU time, which neighbours on a shared machine
disturb far less than wall-clock time. The garbage collector is paused as passerelle pauses it in
those phases (passerelle/memory.py).

Scenarios, each repeated (`--repeat`) and reported as the median:
  scratch   N Ingresses (each with a Service and an EndpointSlice) loaded and compiled from nothing;
  ingress   one Ingress added to or removed from the N (what run.py's reload scenario writes);
  endpoint  one EndpointSlice's address changed (one Service's servers).
`--profile SCENARIO` prints cProfile's top functions for that scenario instead. `--live WRITES`
runs `passerelle run` as run.py's reload scenario does (its passerelle_spec, `--workers`, 1 by
default, pinned), rewrites reload.yaml WRITES times with run.py's reload_step, RELOAD_PERIOD apart,
and reports each process's CPU seconds per write and, over as long without writes, idle
(/proc/PID/stat); `--record FILE` profiles the control plane meanwhile with py-spy.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import os
import pstats
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from run import (  # benchmarks/ is on sys.path
    EXTRA_INGRESS,  # run.py's reload: one Ingress more, or less
    PASSERELLE,
    RELOAD_PERIOD,
    Target,
    free_port,
    host_of,
    launch,
    passerelle_state,
    reload_step,
    stop,
)

from passerelle.control.distribute import WorkerPool
from passerelle.control.watcher import ConfigWatcher
from passerelle.kube.ingress import IngressOptions
from passerelle.kube.manifests import ManifestsProvider
from passerelle.proxy.channel import Channel, Message
from passerelle.proxy.dataplane import Dataplane
from passerelle.proxy.options import EntryPointOptions, ForwardingOptions
from passerelle.proxy.worker import receive_version

SPY = PASSERELLE.with_name("py-spy")  # pip install py-spy, for --record

ROUTE = """apiVersion: v1
kind: Service
metadata: {{name: svc-{i}}}
spec: {{ports: [{{name: http, port: 80}}]}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: ing-{i}}}
spec:
  rules:
  - host: h{i}.bench.local
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: svc-{i}, port: {{name: http}}}}}}}}
"""
SLICE = """apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: svc-{i}-1, labels: {{kubernetes.io/service-name: svc-{i}}}}}
addressType: IPv4
ports: [{{name: http, port: {port}}}]
endpoints: [{{addresses: ["127.0.0.1"]}}]
"""


class Wire:
    """A channel transport that keeps what is written, for the worker side to read."""

    def __init__(self) -> None:
        self.data = bytearray()

    def is_closing(self) -> bool:
        return False

    def write(self, data: bytes) -> None:
        self.data += data


class WorkerSide:
    """One worker's receiving end: frames decoded and applied as proxy/worker.py does."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.channel = Channel(self.inbox.put_nowait, lambda: None)
        self.dataplane = Dataplane(
            [EntryPointOptions(name="web", host="127.0.0.1", port=0)], ForwardingOptions(), loop
        )
        self.held = 0

    def receive(self, wire: Wire) -> None:
        data, wire.data = bytes(wire.data), bytearray()
        self.channel.data_received(data)
        self.loop.run_until_complete(self._apply())

    async def _apply(self) -> None:
        while not self.inbox.empty():  # as the worker's loop does (proxy/worker.py)
            self.held = await receive_version(self.inbox, self.dataplane, self.held, self.answer, index=0)

    def answer(self, message: Message) -> None:
        if message["type"] != "applied":
            raise SystemExit(f"the worker rejected v{message['version']}: {message.get('error')}")


class Bench:
    def __init__(self, directory: Path, n: int) -> None:
        self.directory = directory
        self.n = n
        self.loop = asyncio.new_event_loop()
        self.provider = ManifestsProvider(directory, watch=False)
        self.pool = WorkerPool(
            count=1, entrypoints=[], forwarding=ForwardingOptions(), grace=1, log_level="INFO"
        )
        self.wire = Wire()
        sender = Channel(lambda m: None, lambda: None)
        sender.transport = self.wire  # type: ignore[assignment]
        worker = self.pool._workers[0]
        worker.channel = sender
        self.watcher = ConfigWatcher(IngressOptions(), [self.pool.publish])
        self.worker = WorkerSide(self.loop)
        self.port = 9000
        self.translation = 0.0
        translate = self.watcher._translator.translate

        def timed(snapshot: Any) -> Any:  # the translation's share of the control plane's time
            start = time.process_time()
            try:
                return translate(snapshot)
            finally:
                self.translation += time.process_time() - start

        self.watcher._translator.translate = timed  # type: ignore[method-assign]

    def write_base(self) -> None:
        (self.directory / "routes.yaml").write_text("---\n".join(ROUTE.format(i=i) for i in range(self.n)))
        slices = "---\n".join(SLICE.format(i=i, port=8080) for i in range(1, self.n))
        (self.directory / "slices.yaml").write_text(slices)
        self.write_endpoint()
        (self.directory / "reload.yaml").write_text("")

    def write_endpoint(self, _step: int = 0) -> None:
        self.port += 1
        (self.directory / "endpoint.yaml").write_text(SLICE.format(i=0, port=self.port))

    def toggle_ingress(self, step: int) -> None:
        # a different size each time, so the provider's (mtime, size) check always sees the change
        text = EXTRA_INGRESS + "#" * (step % 7) if step % 2 == 0 else "#" * (step % 7 + 1)
        (self.directory / "reload.yaml").write_text(text)

    def reload(self) -> dict[str, float]:
        """One reload, timed by phase (CPU seconds)."""
        times: dict[str, float] = {}
        t0 = time.process_time()
        loaded = self.provider.load()
        t1 = time.process_time()
        version = self.watcher.apply(loaded)  # translation, change detection, framing for the worker
        t2 = time.process_time()
        self.worker.receive(self.wire)
        t3 = time.process_time()
        times["provider"] = t1 - t0
        times["translation"], self.translation = self.translation, 0.0
        times["control plane"] = t2 - t1
        times["worker"] = t3 - t2
        times["total"] = t3 - t0
        if version is None:
            raise SystemExit("no new version: the change was not seen")
        return times


def live(n: int, writes: int, *, workers: int = 1, record: Path | None = None) -> None:
    """`passerelle run` as run.py's reload scenario starts it (run.py's passerelle_spec: n Ingresses,
    each with its Service and EndpointSlice, in routes.yaml; with 1 worker pinned on one CPU), and
    reload.yaml rewritten `writes` times, RELOAD_PERIOD apart, by run.py's reload_step; prints the
    CPU seconds per write of the control plane and of each worker (/proc/PID/stat). `record`: a
    py-spy profile of the control plane over the writes, every thread, on CPU only: a flame
    graph for a .svg file, else collapsed stacks (one line per stack and its sample count)."""
    with tempfile.TemporaryDirectory() as tmp:
        target = Target("passerelle", workers, n, host_of(n), Path(tmp) / "passerelle")
        launch(target, free_port(), None)  # no backend runs: nothing is requested
        assert target.proc is not None
        spy: subprocess.Popen[bytes] | None = None
        try:
            deadline = time.monotonic() + 180
            while applied(target) < 1:
                if time.monotonic() > deadline or target.proc.poll() is not None:
                    raise SystemExit(f"passerelle did not start: see {target.dir / 'server.out'}")
                time.sleep(0.5)  # noqa: TID251 (a script, not the event loop)
            time.sleep(3)  # noqa: TID251 (start-up's garbage and first reports settle)
            pids = [target.proc.pid, *children(target.proc.pid)]
            step = reload_step(target)
            assert step is not None
            if record is not None:
                spy = subprocess.Popen(
                    [str(SPY), "record", "-p", str(pids[0]), "-o", str(record), "-r", "250", "--nonblocking"]
                    + (["-f", "raw"] if record.suffix != ".svg" else []),
                    stdout=subprocess.DEVNULL,
                )
                time.sleep(1)  # noqa: TID251 (py-spy attaches)
            idle = [cpu_seconds(pid) for pid in pids]
            time.sleep(writes * RELOAD_PERIOD + 2)  # noqa: TID251 (as long as the writes, without them)
            before, first = [cpu_seconds(pid) for pid in pids], applied(target)
            idle = [b - i for b, i in zip(before, idle, strict=True)]
            for write in range(writes):
                step(write)
                time.sleep(RELOAD_PERIOD)  # noqa: TID251
            time.sleep(2)  # noqa: TID251 (the last write's version arrives)
            after, last = [cpu_seconds(pid) for pid in pids], applied(target)
            rss = [rss_mib(pid) for pid in pids]
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(60)
        finally:
            stop(target.proc)
    spent = [(a - b) / writes for a, b in zip(after, before, strict=True)]
    idle = [i / writes for i in idle]
    print(
        f"{n} Ingresses, {writes} writes {RELOAD_PERIOD:g} s apart, {last - first} versions applied by every worker"
    )
    for what, seconds in (("per write", spent), ("idle, per as long", idle)):
        print(
            f"CPU seconds {what}: control plane {seconds[0]:.4f}, workers "
            + ", ".join(f"{w:.4f}" for w in seconds[1:])
        )
    print(f"RSS MiB: control plane {rss[0]:.0f}, workers " + ", ".join(f"{r:.0f}" for r in rss[1:]))


def applied(target: Target) -> int:
    """The newest version every worker applied (0 while the API does not answer)."""
    try:
        return passerelle_state(target)[0]
    except (OSError, ValueError):
        return 0


def children(pid: int) -> list[int]:
    return [
        int(c)
        for task in os.listdir(f"/proc/{pid}/task")
        for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()
    ]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def median_times(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=10_000, help="Ingresses (default 10,000)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--profile", choices=("scratch", "ingress", "endpoint"))
    parser.add_argument("--live", type=int, metavar="WRITES", help="measure a real passerelle instead")
    parser.add_argument("--workers", type=int, default=1, help="with --live (default 1, as run.py's W=1)")
    parser.add_argument("--record", type=Path, metavar="SVG", help="with --live: py-spy flame graph")
    args = parser.parse_args()
    if args.live:
        live(args.n, args.live, workers=args.workers, record=args.record)
        return
    gc.disable()  # as passerelle does around each phase measured here
    with tempfile.TemporaryDirectory() as tmp:
        results: dict[str, list[dict[str, float]]] = {"scratch": [], "ingress": [], "endpoint": []}
        for attempt in range(args.repeat if args.profile != "scratch" else 1):
            bench = Bench(Path(tmp), args.n)
            bench.write_base()
            if args.profile == "scratch":
                profile(bench.reload)
                return
            results["scratch"].append(bench.reload())
            gc.collect()
            if attempt == 0:
                for step in range(args.repeat):
                    for name, change in (
                        ("ingress", bench.toggle_ingress),
                        ("endpoint", bench.write_endpoint),
                    ):
                        change(step)
                        if args.profile == name:
                            profile(bench.reload)
                            return
                        results[name].append(bench.reload())
                        gc.collect()
    print(f"{args.n} Ingresses, CPU seconds (time.process_time), median of {args.repeat}")
    phases = list(results["scratch"][0])
    print(f"{'scenario':10} " + " ".join(f"{p:>14}" for p in phases))
    for name, runs in results.items():
        medians = median_times(runs)
        print(f"{name:10} " + " ".join(f"{medians[p]:14.4f}" for p in phases))


def profile(run: Callable[[], Any]) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    run()
    profiler.disable()
    pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(40)


if __name__ == "__main__":
    main()
