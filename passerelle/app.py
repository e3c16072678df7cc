"""The only wiring: settings -> provider -> watcher -> worker pool and API, until a signal stops it."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from passerelle.api.context import Context
from passerelle.api.routes import api_routes
from passerelle.api.server import is_loopback_address, serve_api
from passerelle.control.distribute import WorkerPool
from passerelle.control.watcher import ConfigWatcher
from passerelle.kube.manifests import ManifestsProvider
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
    routes = api_routes(
        applied=lambda: workers.applied,
        latest=lambda: watcher.current,
        workers=workers.status,
        context=Context.of(settings, tls, ports),
        dashboard=settings.api.dashboard,
    )
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
    if settings.api.dashboard:
        shown = f"[{api_host}]" if ":" in api_host else (api_host or "127.0.0.1")
        log.info("dashboard at http://%s:%d/dashboard/", shown, api_port)
    if not is_loopback_address(api_host):
        log.warning(
            "the api listens on %s, beyond loopback: anyone who can reach it reads the whole routing "
            "configuration (docs/api.md, 'Exposing the API')",
            settings.api.address,
        )

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
