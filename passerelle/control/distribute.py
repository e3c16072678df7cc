"""Distribute configuration versions to the data-plane worker processes, and keep them alive.

The pool binds every entry point once per worker (SO_REUSEPORT, see proxy/listeners.py), starts
`python -m passerelle.proxy.worker` with those sockets and one end of a socketpair, sends the static
TLS state as the channel's first message, and then each new Version: as its change set (a Delta)
to a worker that was sent the version it changes, otherwise whole; a worker that rejects a change
set (it missed or rejected the version before) is sent the latest version whole at once. The
command line carries only small, public things (descriptors, entry point options): it is
world-readable in /proc and limited to 128 KiB an argument, and the TLS state holds the default
certificate's private key and the CA bundles. A version counts as applied when every live worker has said so;
`/ping` and `/api/rawdata` report that, not what was merely translated. A worker that dies is
restarted on the same sockets and handed the latest version (its in-flight requests are the only
ones lost); a worker that keeps dying is restarted with a growing delay. Workers' `metrics`
messages go to `Totals` (observability/aggregate.py); `collect()` asks every worker for its latest
counts before a scrape, and a dead worker's channel is read to its end before it is let go.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import sys
import time
from dataclasses import asdict
from typing import Any

from passerelle.control.watcher import Version, changes
from passerelle.observability.aggregate import Totals
from passerelle.observability.metrics import Reloads
from passerelle.proxy.channel import Channel, Message, config_frames, delta_frames
from passerelle.proxy.listeners import bind, port_of
from passerelle.proxy.options import EntryPointOptions, ForwardingOptions
from passerelle.tls.contexts import TlsStatic

log = logging.getLogger("passerelle.workers")


def static_message(tls: TlsStatic | None) -> Message:
    """The channel's first message: what a worker needs before it can serve, too secret or too
    large for its command line (the default certificate's key, caFiles bundles)."""
    return {"type": "static", "tls": tls.to_dict() if tls is not None else None}


class _Worker:
    def __init__(self, index: int) -> None:
        self.index = index
        self.process: asyncio.subprocess.Process | None = None
        self.channel: Channel | None = None
        self.ready = asyncio.Event()
        self.applied = 0  # the newest version this worker acknowledged
        # The newest version sent to it, in an unbroken chain of change sets from one sent whole
        # (0: none, or broken by a rejection): a change set on it can follow; the newest sent
        # whole; and the newest sent whole to repair a rejected change set.
        self.sent = 0
        self.whole = 0
        self.repaired = 0
        self.restarts = 0
        self.closed = asyncio.Event()  # its channel reached its end


class WorkerPool:
    def __init__(
        self,
        *,
        count: int,
        entrypoints: list[EntryPointOptions],
        forwarding: ForwardingOptions,
        grace: float,
        log_level: str,
        tls: TlsStatic | None = None,
        log_format: str = "text",
        observability: dict[str, Any] | None = None,
        totals: Totals | None = None,
        reloads: Reloads | None = None,
    ) -> None:
        self._log_format = log_format
        self._observability = observability or {}
        self.totals = totals
        self.reloads = reloads
        self._report = 0  # the latest report id asked for
        self._waiting: list[tuple[int, set[int], asyncio.Future[None]]] = []  # id, workers, done
        self._failed = 0  # the newest version a worker rejected
        self._entrypoints = entrypoints
        self._tls = tls
        self._forwarding = forwarding
        self._grace = grace
        self._log_level = log_level
        self._workers = [_Worker(i) for i in range(count)]
        self._sockets: list[dict[str, list[socket.socket]]] = []
        self._versions: dict[int, Version] = {}
        self.latest: Version | None = None
        self.applied: Version | None = None
        self._stopping = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._challenges: Message | None = None  # the pending ACME challenges (acme/controller.py)

    def bind(self) -> dict[str, int]:
        """Bind every entry point for every worker; returns the port of each entry point."""
        ports: dict[str, int] = {}
        try:
            for _ in self._workers:
                sockets = {}
                for ep in self._entrypoints:
                    sockets[ep.name] = bind(ep, port=ports.get(ep.name))
                    ports.setdefault(ep.name, port_of(sockets[ep.name]))
                self._sockets.append(sockets)
        except OSError:
            self.close_sockets()
            raise
        return ports

    async def start(self) -> None:
        for worker in self._workers:
            await self._spawn(worker)
        await asyncio.gather(*(w.ready.wait() for w in self._workers))

    def publish(self, version: Version) -> None:
        """Send a new version to every worker (the watcher's listener): as a change set to the
        workers that were sent the version it changes, whole to the others."""
        latest = self.latest
        changed = version.changed  # found by the watcher, off the event loop
        if changed is None or latest is None or version.base != latest.number:
            changed = changes(latest.config if latest is not None else None, version.config)
        delta = version.delta
        if (
            latest is None
            or version.base != latest.number
            or (delta is not None and (delta.middlewares or delta.whole))
        ):
            delta = None
        tls_changed = "tls" in changed
        self.latest = version
        self._versions = {version.number: version}
        if self.applied is not None:
            self._versions[self.applied.number] = self.applied
        frames: dict[tuple[bool, bool], list[Message]] = {}
        for worker in self._workers:
            if worker.channel is None:
                continue
            chained = latest is not None and worker.sent == latest.number
            key = (delta is not None and chained, tls_changed or not chained)
            if key not in frames:
                tls = version.config.tls if key[1] else None
                frames[key] = (
                    delta_frames(version.number, version.base, delta, tls)
                    if delta is not None and key[0]
                    else config_frames(version.number, version.config, with_tls=key[1])
                )
            self._send(worker, frames[key], whole=not key[0])

    async def collect(self, timeout: float = 1.0) -> None:
        """Ask every live worker for its counts and wait (up to `timeout`) until all have sent them."""
        self._report += 1
        wanted = {
            w.index
            for w in self._workers
            if w.channel is not None
            and w.ready.is_set()
            and w.channel.send({"type": "report", "id": self._report})
        }
        if not wanted:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (self._report, wanted, done)
        self._waiting.append(entry)
        try:
            async with asyncio.timeout(timeout):
                await done
        except TimeoutError:
            log.warning("workers %s did not report their counts within %gs", sorted(wanted), timeout)
        finally:
            self._waiting.remove(entry)

    def _reported(self, index: int, report: int) -> None:
        for wanted, workers, done in self._waiting:
            if report >= wanted:
                workers.discard(index)
            if not workers and not done.done():
                done.set_result(None)

    def set_challenges(self, message: Message) -> None:
        """Send every worker the pending ACME challenges (a whole `challenges` message); a worker
        started later gets them when it is ready."""
        self._challenges = message
        for worker in self._workers:
            if worker.channel is not None:
                worker.channel.send(message)

    def status(self) -> list[dict[str, Any]]:
        return [
            {
                "index": w.index,
                "pid": w.process.pid if w.process else None,
                "applied": w.applied,
                "restarts": w.restarts,
            }
            for w in self._workers
        ]

    async def stop(self) -> None:
        """Drain every worker (they finish in-flight requests for up to the grace period), then exit."""
        self._stopping = True
        for worker in self._workers:
            if worker.channel is not None:
                worker.channel.send({"type": "drain", "grace": self._grace})
        processes = [w.process for w in self._workers if w.process is not None]
        try:
            async with asyncio.timeout(self._grace + 5):
                await asyncio.gather(*(p.wait() for p in processes))
        except TimeoutError:
            for process in processes:
                if process.returncode is None:
                    log.warning("worker pid %d did not stop in time; killing it", process.pid)
                    process.kill()
        for task in self._tasks:
            task.cancel()
        self.close_sockets()

    def close_sockets(self) -> None:
        for sockets in self._sockets:
            for group in sockets.values():
                for sock in group:
                    sock.close()
        self._sockets.clear()

    # -- internals --------------------------------------------------------------------------
    async def _spawn(self, worker: _Worker) -> None:
        loop = asyncio.get_running_loop()
        parent, child = socket.socketpair()
        sockets = self._sockets[worker.index]
        init = {
            "index": worker.index,
            "channel": child.fileno(),
            "entrypoints": [
                {"options": asdict(ep), "fds": [s.fileno() for s in sockets[ep.name]]}
                for ep in self._entrypoints
            ],
            "forwarding": asdict(self._forwarding),
            "grace": self._grace,
            "log_level": self._log_level,
            "log_format": self._log_format,
            "observability": self._observability,
        }
        fds = [child.fileno()] + [s.fileno() for group in sockets.values() for s in group]
        worker.ready = asyncio.Event()
        worker.closed = closed = asyncio.Event()
        worker.applied = 0
        worker.sent = worker.whole = worker.repaired = 0
        try:
            worker.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "passerelle.proxy.worker", json.dumps(init), pass_fds=fds
            )
        except OSError:
            parent.close()
            raise
        finally:
            child.close()
        _, worker.channel = await loop.connect_accepted_socket(
            lambda: Channel(lambda m: self._on_message(worker, m), closed.set), parent
        )
        worker.channel.send(static_message(self._tls))
        task = loop.create_task(self._supervise(worker, worker.process))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_message(self, worker: _Worker, message: Message) -> None:
        kind = message["type"]
        if kind == "ready":
            worker.ready.set()
            if self._challenges is not None and worker.channel is not None:
                worker.channel.send(self._challenges)
            if self.latest is not None:
                self._send(worker, config_frames(self.latest.number, self.latest.config), whole=True)
        elif kind == "metrics":
            if self.totals is not None:
                try:
                    self.totals.add(worker.index, message)
                except (ValueError, TypeError, KeyError) as e:  # a worker of another layout: say so, go on
                    log.error("worker %d sent a metrics report that does not fit: %s", worker.index, e)
            if message.get("id") is not None:
                self._reported(worker.index, int(message["id"]))
        elif kind == "applied":
            worker.applied = max(worker.applied, int(message["version"]))
            self._update_applied()
        elif kind == "rejected":
            rejected = int(message["version"])
            latest = self.latest
            if rejected == worker.whole:  # the latest it could have: the next version goes whole
                worker.sent = 0
            elif latest is not None and latest.number > worker.repaired:
                # a change set (or a version after it) on a version it does not serve: repair it now
                worker.repaired = latest.number
                self._send(worker, config_frames(latest.number, latest.config), whole=True)
            if self.reloads is not None and int(message["version"]) > self._failed:
                self._failed = int(message["version"])
                self.reloads.failure(time.time())
            log.error(
                "worker %d rejected configuration v%s: %s; it keeps serving v%d",
                worker.index, message["version"], message.get("error"), worker.applied,
            )  # fmt: skip

    def _send(self, worker: _Worker, frames: list[Message], *, whole: bool) -> None:
        if worker.channel is None:
            return
        for frame in frames:
            worker.channel.send(frame)
        worker.sent = frames[0]["version"]
        if whole:
            worker.whole = worker.sent

    def _update_applied(self) -> None:
        floor = min(w.applied for w in self._workers)
        if floor in self._versions:
            newer = self.applied is None or floor > self.applied.number
            self.applied = self._versions[floor]
            if newer and self.reloads is not None:
                self.reloads.success(time.time())

    async def _supervise(self, worker: _Worker, process: asyncio.subprocess.Process) -> None:
        code = await process.wait()
        try:  # what it sent last (its final counts) may still be unread
            async with asyncio.timeout(1.0):
                await worker.closed.wait()
        except TimeoutError:
            pass
        if worker.channel is not None:
            worker.channel.close()
            worker.channel = None
        if self.totals is not None:
            self.totals.worker_gone(worker.index)
        self._reported(worker.index, self._report)  # nobody waits for a dead worker's report
        if self._stopping:
            return
        worker.restarts += 1
        delay = min(0.1 * 2 ** min(worker.restarts - 1, 6), 5.0)
        log.warning(
            "worker %d (pid %d) exited with code %s; restarting it in %.1fs",
            worker.index, process.pid, code, delay,
        )  # fmt: skip
        while not self._stopping:
            await asyncio.sleep(delay)
            try:
                await self._spawn(worker)
                return
            except OSError as e:
                delay = min(delay * 2, 5.0)
                log.error(
                    "worker %d could not be started (%s); trying again in %.1fs", worker.index, e, delay
                )
