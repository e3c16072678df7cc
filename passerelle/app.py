"""The only wiring: settings -> provider -> watcher -> worker pool and API, until a signal stops it."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from passerelle import __version__
from passerelle.api.server import Answer, serve_api
from passerelle.control.distribute import WorkerPool
from passerelle.control.watcher import ConfigWatcher
from passerelle.kube.manifests import ManifestsProvider
from passerelle.model import codec
from passerelle.proxy.listeners import ListenError
from passerelle.settings import Settings, SettingsError, split_address
from passerelle.tls import openssl

log = logging.getLogger("passerelle")


class StartupError(Exception):
    """passerelle cannot start; the message is one line for the operator."""


async def serve(settings: Settings) -> None:
    loop = asyncio.get_running_loop()
    manifests = settings.providers.manifests
    if manifests is None:
        raise StartupError("no provider configured: set providers.manifests.directory")

    tls = settings.tls_static()  # the default certificate is made here, once, for every worker
    if tls is not None and tls.needs_openssl:
        try:  # in a child process: a wrong struct layout may crash rather than raise
            await asyncio.to_thread(openssl.probe)  # here, not in workers that would crash in a loop
        except openssl.OpenSSLBindingError as e:
            raise StartupError(str(e)) from None
    workers = WorkerPool(
        count=settings.worker_count(),
        entrypoints=settings.entrypoint_options(),
        forwarding=settings.forwarding_options(),
        grace=settings.graceTimeout,
        log_level=settings.log.level,
        tls=tls,
    )
    try:
        ports = workers.bind()
    except ListenError as e:
        raise StartupError(str(e.strerror)) from None

    watcher = ConfigWatcher(settings.ingress_options(), [workers.publish])
    api_host, api_port = split_address(settings.api.address)
    routes = {
        "/ping": lambda: (
            Answer(200, b"OK") if workers.applied else Answer(503, b"no configuration applied yet\n")
        ),
        "/api/version": lambda: Answer.json({"version": __version__}),
        "/api/rawdata": lambda: Answer.json(
            {"version": workers.applied.number, **codec.dump(workers.applied.config)}
            if workers.applied
            else {}
        ),
        "/api/problems": lambda: Answer.json(
            [
                {"object": str(p.ref), "severity": str(p.severity), "message": p.message}
                for p in (watcher.current.problems if watcher.current else ())
            ]
        ),
        "/api/workers": lambda: Answer.json(workers.status()),
    }
    try:
        api = await serve_api(api_host, api_port, routes)
    except OSError as e:
        workers.close_sockets()
        raise StartupError(f"cannot listen on {settings.api.address} (api): {e.strerror or e}") from None

    await workers.start()
    provider = ManifestsProvider(Path(manifests.directory), watch=manifests.watch)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    for name, port in ports.items():
        log.info("entry point %s listening on port %d, %d workers", name, port, settings.worker_count())
    log.info("api listening on %s; manifests from %s", settings.api.address, manifests.directory)

    async with asyncio.TaskGroup() as tasks:
        provider_task = tasks.create_task(provider.run(watcher.publish))
        watcher_task = tasks.create_task(watcher.run())
        await stop.wait()
        log.info("stopping: draining in-flight requests for up to %gs", settings.graceTimeout)
        provider_task.cancel()
        watcher_task.cancel()
    api.close()
    await workers.stop()


def run(settings: Settings) -> None:
    import uvloop

    try:
        uvloop.run(serve(settings))
    except (StartupError, SettingsError) as e:
        raise StartupError(str(e)) from None
