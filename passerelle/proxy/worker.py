"""A data-plane worker process: `python -m passerelle.proxy.worker INIT_JSON`.

The control plane starts it with the listening sockets and one end of a socketpair already open
(their descriptors are in INIT_JSON). The channel's first message (`static`) carries the static TLS
state — keys and CA bundles stay off the command line, which /proc shows to every user. The
worker serves the sockets, applies every configuration the
channel brings and answers `applied` or `rejected`, and never talks to anything else. A version is
decoded frame by frame and compiled in slices, with the event loop serving requests in between, so a
reload of 20,000 routers never stops traffic for more than a slice; a change set (a Delta on the
version it serves) rebuilds only the hosts it names. A change set on another version is rejected:
the control plane then sends the whole latest version. It drains and
exits on a `drain` message, on SIGTERM, or when the channel closes (the control plane is gone).
SIGINT is ignored: a Ctrl-C reaches the control plane too, which drains the workers in order.
With metrics on, the worker sends its counts since the last `metrics` message every
REPORT_SECONDS, when asked (`report`, at a scrape), and once more after draining.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

from passerelle.memory import gc_paused, settle
from passerelle.model import Certificate, DynamicConfig, Middleware, Router, Service, TlsConfig, codec
from passerelle.model.delta import Delta
from passerelle.observability.accesslog import AccessLog, Shape
from passerelle.observability.logging import configure
from passerelle.observability.recorder import LoggingRecorder, Recorder
from passerelle.observability.writer import LineWriter
from passerelle.proxy.channel import Channel, Message
from passerelle.proxy.dataplane import Dataplane
from passerelle.proxy.options import EntryPointOptions, ForwardingOptions
from passerelle.tls.contexts import TlsStatic

log = logging.getLogger("passerelle.worker")
REPORT_SECONDS = 1.0  # what a worker killed outright loses of its counts, at most


def recorders_of(
    settings: dict[str, Any], entrypoints: list[str], loop: asyncio.AbstractEventLoop
) -> tuple[dict[str, Recorder], AccessLog | None]:
    """Each entry point's Recorder, from the init message's `observability` part (none when
    metrics and the access log are off), and the access log they share."""
    buckets, access = settings.get("buckets"), settings.get("accessLog")
    if access is None:
        return ({name: Recorder(name, buckets) for name in entrypoints} if buckets is not None else {}), None
    writer = LineWriter(access["filePath"], buffering=access["bufferingSize"], loop=loop)
    log = AccessLog(writer, format=access["format"], shape=Shape.of(access))
    counting = buckets is not None
    return {
        name: LoggingRecorder(name, buckets or (), counting=counting, log=log) for name in entrypoints
    }, log


def _ignored() -> None:
    """SIGUSR1 with no access log file: nothing to reopen."""


async def serve(init: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    grace = float(init["grace"])
    done = asyncio.Event()
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    static: asyncio.Future[Message] = loop.create_future()
    names = [ep["options"]["name"] for ep in init["entrypoints"]]
    recorders, access_log = recorders_of(init.get("observability", {}), names, loop)
    # logrotate's SIGUSR1 (also forwarded by the control plane): without a handler it would kill us
    loop.add_signal_handler(signal.SIGUSR1, access_log.reopen if access_log is not None else _ignored)
    counting = any(r.counting for r in recorders.values())
    dataplane: Dataplane | None = None

    def report(request: int | None = None) -> None:
        message: Message = {"type": "metrics", "id": request}
        if counting and dataplane is not None:
            reports = [r.report() for r in recorders.values()]
            message["requests"] = [row for r in reports for row in r["requests"]]
            message["upstream"] = [row for r in reports for row in r["upstream"]]
            message["connections"] = dataplane.open_connections()
        channel.send(message)

    async def report_regularly() -> None:
        while True:
            await asyncio.sleep(REPORT_SECONDS)
            report()

    challenges: Message | None = None  # the latest, until the data plane exists

    def on_message(message: Message) -> None:
        nonlocal grace, challenges
        if message["type"] == "challenges":  # small, and urgent: applied at once (proxy/acme.py)
            if dataplane is not None:
                dataplane.set_challenges(message)
            else:
                challenges = message
        elif message["type"] == "report":
            report(message.get("id"))
        elif message["type"] == "static":
            if not static.done():
                static.set_result(message)
        elif message["type"] == "drain":
            grace = float(message.get("grace", grace))
            done.set()
        else:
            inbox.put_nowait(message)  # decoded and applied by `receive`, between requests

    async def receive() -> None:
        assert dataplane is not None
        held = 0  # the version this worker serves
        while True:
            before = held
            held = await receive_version(inbox, dataplane, held, channel.send, index=init["index"])
            if held and not before:
                settle()  # the first version's tables are out of the collector's scans

    channel_socket = socket.socket(fileno=init["channel"])
    _, channel = await loop.connect_accepted_socket(lambda: Channel(on_message, done.set), channel_socket)
    loop.add_signal_handler(signal.SIGTERM, done.set)
    stopped = loop.create_task(done.wait())
    first: list[asyncio.Future[Any]] = [static, stopped]
    await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if not static.done():  # the control plane went away (or asked to drain) before sending it
        channel.close()
        return
    entrypoints = [EntryPointOptions(**ep["options"]) for ep in init["entrypoints"]]
    sockets = {
        ep["options"]["name"]: [socket.socket(fileno=fd) for fd in ep["fds"]] for ep in init["entrypoints"]
    }
    tls_state = static.result()["tls"]
    tls = TlsStatic.from_dict(tls_state) if tls_state else None
    dataplane = Dataplane(entrypoints, ForwardingOptions(**init["forwarding"]), loop, tls, recorders)
    if challenges is not None:
        dataplane.set_challenges(challenges)
    await dataplane.start(sockets=sockets)
    receiver = loop.create_task(receive())
    reporter = loop.create_task(report_regularly()) if counting else None
    channel.send({"type": "ready"})
    await done.wait()
    receiver.cancel()
    await dataplane.stop(grace=grace)
    if reporter is not None:
        reporter.cancel()
        report()  # the last counts: the control plane reads them before it closes its end
    if access_log is not None:
        access_log.close()
    channel.close()


async def receive_version(
    inbox: asyncio.Queue[Message],
    dataplane: Dataplane,
    held: int,
    answer: Callable[[Message], object],
    *,
    index: int,
) -> int:
    """Take the next version from `inbox` and make it live, then `answer` `applied` or, keeping
    the live one, `rejected`; returns the version held now. Frames before a `begin` (the tail of
    a version whose beginning was missed) are let go."""
    begin = await inbox.get()
    if begin["type"] != "begin":
        return held
    version = begin["version"]
    try:
        with gc_paused():
            held = await apply_version(inbox, begin, dataplane, held)
    except Exception as e:  # a bad snapshot must not take the worker down: keep the last one
        log.exception("worker %d: configuration v%d rejected", index, version)
        answer({"type": "rejected", "version": version, "error": str(e)})
    else:
        answer({"type": "applied", "version": version})
    return held


async def apply_version(
    inbox: asyncio.Queue[Message], begin: Message, dataplane: Dataplane, held: int
) -> int:
    """Read the version `begin` starts and make it live, yielding to requests between slices;
    returns its number. Raises, with the live version kept, when it cannot be applied."""
    version, base = begin["version"], begin.get("base")
    assembled = await _assemble(inbox, version, dataplane, begin.get("tls", True))
    if isinstance(assembled, DynamicConfig):
        steps = dataplane.apply_steps(assembled)
    elif base != held:
        raise ValueError(f"v{version} is a change set on v{base}, but this worker serves v{held}")
    else:
        steps = dataplane.patch_steps(*assembled)
    for _ in steps:
        await asyncio.sleep(0)  # serve requests between slices of the reload
    return int(version)


async def _assemble(
    inbox: asyncio.Queue[Message], version: int, dataplane: Dataplane, with_tls: bool = True
) -> DynamicConfig | tuple[Delta, TlsConfig | None]:
    """Collect one version's frames, yielding to requests after each frame: a whole version, or
    a change set with the TLS state it brings (None: unchanged). TLS state left out of a whole
    version is the one this worker holds."""
    routers: list[Router] = []
    services: list[Service] = []
    middlewares: list[Middleware] = []
    tls = TlsConfig()
    certificates: list[Certificate] = []
    removed: Message | None = None
    hosts: dict[str | None, tuple[str, ...]] = {}
    while True:
        frame = await inbox.get()
        if frame.get("version") != version:
            raise ValueError(f"frame of v{frame.get('version')} inside v{version}")
        kind = frame["type"]
        if kind == "routers":
            routers.extend(codec.load_router(r) for r in frame["items"])
        elif kind == "middlewares":
            middlewares.extend(codec.load_middleware(m) for m in frame["items"])
        elif kind == "services":
            services.extend(codec.load_service(s) for s in frame["items"])
        elif kind == "tls":
            tls = codec.load_tls(frame["tls"])
        elif kind == "certificates":
            certificates.extend(codec.load_certificate(c) for c in frame["items"])
        elif kind == "removed":
            removed = frame
        elif kind == "hosts":
            hosts.update((host, tuple(names)) for host, names in frame["items"])
        elif kind == "commit":
            break
        await asyncio.sleep(0)
    if with_tls:
        tls = TlsConfig(
            certificates=tuple(certificates), hosts=tls.hosts, client_cas=tls.client_cas, options=tls.options
        )
    if removed is not None:
        delta = Delta(
            routers=tuple(routers),
            removed_routers=tuple(removed["routers"]),
            services=tuple(services),
            removed_services=tuple(removed["services"]),
            hosts=hosts,
        )
        return delta, tls if with_tls else None
    if not with_tls and not dataplane.holds:
        raise ValueError("the TLS state was left out, but this worker has none yet")
    return DynamicConfig(
        routers=tuple(routers),
        services=tuple(services),
        middlewares=tuple(middlewares),
        tls=tls if with_tls else dataplane.tls_config,
    )


def main() -> None:
    import uvloop

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    init = json.loads(sys.argv[1])
    configure(init["log_level"], init.get("log_format", "text"))
    uvloop.run(serve(init))


if __name__ == "__main__":
    main()
