"""The only wiring: settings -> provider -> watcher -> worker pool and API, until a signal stops it."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import signal
import socket
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from passerelle.acme.store import StorageError
from passerelle.api.admission import is_loopback_address
from passerelle.api.context import Context
from passerelle.api.routes import api_routes
from passerelle.api.server import Answer, Handler, Request, serve_api
from passerelle.api.views import problem_json
from passerelle.control.distribute import WorkerPool
from passerelle.control.leadership import AlwaysLeader
from passerelle.control.watcher import ConfigWatcher, Listener
from passerelle.dnssync import actions as dnssync_actions
from passerelle.dnssync.controller import DnsSync
from passerelle.dnssync.drain import Drain
from passerelle.kube.acme_store import CONNECTIONS as ACME_CONNECTIONS
from passerelle.kube.acme_store import LeaseTiming, storage_factory
from passerelle.kube.client import CONTROL_CONNECTIONS, ApiClient, KubeConfigError
from passerelle.kube.draining import DrainMark, OwnPod
from passerelle.kube.events import EventRecorder
from passerelle.kube.gateway_status import GatewayStatusWriter
from passerelle.kube.lease import Leadership
from passerelle.kube.manifests import Loaded, ManifestsProvider
from passerelle.kube.selector import parse_selector
from passerelle.kube.status import EndpointPolicy, StatusWriter
from passerelle.kube.termination import check_grace_period, stop_budget
from passerelle.kube.watch import KubernetesProvider, WatchOptions, connections_needed
from passerelle.observability import metrics
from passerelle.observability.aggregate import Totals
from passerelle.proxy.listeners import ListenError
from passerelle.settings import Settings, SettingsError, split_address
from passerelle.settings.observability import worker_settings
from passerelle.tls import openssl

if TYPE_CHECKING:
    from passerelle.acme.controller import AcmeController

log = logging.getLogger("passerelle")


STOP_STEP = 2.0  # seconds: a step of the stop that takes longer is logged (and API connections let go)


class StartupError(Exception):
    """passerelle cannot start; the message is one line for the operator."""


async def serve(settings: Settings) -> None:
    loop = asyncio.get_running_loop()
    manifests, kube = settings.providers.manifests, settings.providers.kubernetes
    if manifests is None and kube is None:
        raise StartupError(
            "no provider configured: set providers.manifests.directory or providers.kubernetes"
        )
    client = reflecting = None
    if kube is not None:
        try:  # a kubeconfig that cannot be read is fatal; an API that does not answer is retried
            # two pools: Lease, status and Events must never wait behind the watches' connections
            client = ApiClient.connect(kube.kubeconfig, kube.context, connections=CONTROL_CONNECTIONS)
            reflecting = ApiClient.connect(
                kube.kubeconfig, kube.context, connections=connections_needed(_watch_options(settings))
            )
        except KubeConfigError as e:
            raise StartupError(str(e)) from None
    acme_client = _acme_client(settings)

    tls = settings.tls_static()  # the default certificate is made here, once, for every worker
    if tls is not None and tls.needs_openssl:
        try:  # in a child process: a wrong struct layout may crash rather than raise
            await asyncio.to_thread(openssl.probe)  # here, not in workers that would crash in a loop
        except openssl.OpenSSLBindingError as e:
            raise StartupError(str(e)) from None
    alpn_seam = await acme_alpn_seam(settings, probed=tls is not None and tls.needs_openssl)
    leadership = _leadership(settings, client) if client is not None else None
    dns = dns_sync(settings, leadership)  # reads the TSIG secret file: before any socket is bound
    if dns is not None and leadership is not None:
        leadership.on_change(dns.wake)  # a new leader reconciles DNS at once
    elif dns is not None:
        log.warning(
            "dns: manifests mode: this process always writes DNS (no leader election); it assumes it is "
            "the only writer for ownerId %r in zones %s (docs/dns-sync.md#leadership-only-one-replica-writes)",
            dns.options.owner,
            ", ".join(dns.options.zones),
        )
    access_log = settings.accessLog
    if access_log is not None and access_log.filePath:
        try:  # here, with a clear message, rather than in workers that would crash in a loop
            open(access_log.filePath, "ab").close()
        except OSError as e:
            raise StartupError(
                f"accessLog.filePath: cannot write {access_log.filePath}: {e.strerror}"
            ) from None
    prometheus = settings.metrics.prometheus
    totals = Totals(prometheus.buckets) if prometheus is not None else None
    reloads = metrics.Reloads()
    workers = WorkerPool(
        count=settings.worker_count(),
        entrypoints=settings.entrypoint_options(),
        forwarding=settings.forwarding_options(),
        grace=settings.graceTimeout,
        log_level=settings.log.level,
        tls=tls,
        log_format=settings.log.format,
        observability=worker_settings(settings.metrics, settings.accessLog),
        totals=totals,
        reloads=reloads,
    )
    try:
        ports = workers.bind()
    except ListenError as e:
        raise StartupError(str(e.strerror)) from None

    listeners: list[Listener] = [workers.publish]
    if totals is not None:
        live = metrics.LiveRouters()
        listeners.append(lambda v: totals.retire(live.update(v.number, v.base, v.config, v.delta)))
    if dns is not None:
        listeners.append(dns.served)
    watcher = ConfigWatcher(settings.ingress_options(), listeners)
    acme: AcmeController | None = None
    if settings.certificatesResolvers:
        # Imported only when used: the ACME client pulls in requests and pyOpenSSL (startup time).
        from passerelle.acme.controller import AcmeController

        try:
            acme = AcmeController(
                {name: r.acme for name, r in settings.certificatesResolvers.items()},
                contribute=lambda certs, problems: watcher.contribute(
                    "acme", certificates=certs, problems=problems
                ),
                challenges=workers.set_challenges,
                alpn_seam=alpn_seam,
                storage=storage_factory(
                    acme_client,
                    namespace=os.environ.get("POD_NAMESPACE") or (client.namespace if client else ""),
                    lease=_acme_leases(settings),
                ),
            )
            await acme.load()  # stored certificates are in the first version: a restart orders nothing
        except (StorageError, OSError) as e:
            workers.close_sockets()
            raise StartupError(f"certificatesResolvers: {e}") from None
        listeners.append(acme.on_version)
    stop = asyncio.Event()
    sync = settings.dnsSync
    drain = Drain(
        dns=dns,
        dns_wait=sync.dns_wait() if sync else 0.0,
        timeout=sync.drain.timeout if sync else 0.0,
        accept_grace=sync.drain.acceptGrace if sync else 0.0,
        stop=stop.set,
        mark=DrainMark(client, OwnPod.from_env(client.namespace)).write if dns and client else None,
    )
    api_host, api_port = split_address(settings.api.address)
    routes = api_routes(
        applied=lambda: workers.applied,
        latest=lambda: watcher.current,
        workers=workers.status,
        context=Context.of(settings, tls, ports),
        dashboard=settings.api.dashboard,
    )
    actions = drain_routes(routes, drain, dns)
    routes["/api/acme"] = lambda _: Answer.json(acme.status() if acme is not None else {})
    if prometheus is not None and totals is not None:
        routes["/metrics"] = metrics_route(
            metrics.Sources(
                totals=totals,
                reloads=reloads,
                keep=metrics.keep_mask(
                    entrypoints=prometheus.addEntryPointsLabels,
                    routers=prometheus.addRoutersLabels,
                    services=prometheus.addServicesLabels,
                ),
                problems=lambda: watcher.current.problems if watcher.current else (),
                certificates=lambda: metrics.served_certificates(
                    workers.applied.config.tls if workers.applied else None, tls
                ),
                providers=lambda: {
                    "kubernetes" if isinstance(provider, KubernetesProvider) else "manifests": provider
                },
                workers=workers.status,
                acme=acme.metrics if acme is not None else dict,
                dnssync=lambda: dataclasses.asdict(dns.health()) if dns is not None else {},
                extra=(metrics.ProcessCollector(registry=None),),
            ),
            workers.collect,
        )
    try:
        api = await serve_api(api_host, api_port, routes, actions)
    except OSError as e:
        workers.close_sockets()
        raise StartupError(f"cannot listen on {settings.api.address} (api): {e.strerror or e}") from None

    side = []  # listeners that serve one or two of the API's paths on an address of their own
    for address, paths in side_listeners(settings, routes).items():
        try:
            side.append(await serve_api(*split_address(address), paths))
        except OSError as e:
            for server in (api, *side):
                server.close()
            workers.close_sockets()
            what = " and ".join(p.removeprefix("/") for p in paths)
            raise StartupError(f"cannot listen on {address} ({what}): {e.strerror or e}") from None
        log.info("%s listening on %s", " and ".join(paths), address)

    await workers.start()
    provider: ManifestsProvider | KubernetesProvider
    status: list[Leadership | StatusWriter | EventRecorder | GatewayStatusWriter] = []
    if client is not None and reflecting is not None and kube is not None:
        provider = KubernetesProvider(reflecting, _watch_options(settings))
        source = f"Kubernetes API {client.server}"
        assert leadership is not None
        status = _writers(settings, client, provider, watcher, leadership)
    else:
        assert manifests is not None
        provider = ManifestsProvider(Path(manifests.directory), watch=manifests.watch)
        source = f"manifests from {manifests.directory}"

    async def publish(loaded: Loaded) -> None:
        if dns is not None:
            dns.observe(loaded.snapshot)  # Nodes and Pods: they change DNS, not routing
        await watcher.publish(loaded)

    drains_on_sigterm = sync is not None and sync.drain.on_sigterm(kubernetes=kube is not None)

    def terminate() -> None:  # SIGTERM drains when configured; a second one stops at once
        if drains_on_sigterm and drain.phase == "serving":
            drain.request()
        else:
            stop.set()

    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGTERM, terminate)
    loop.add_signal_handler(signal.SIGUSR1, lambda: reopen_logs(workers))
    for name, port in ports.items():
        log.info("entry point %s listening on port %d, %d workers", name, port, settings.worker_count())
    log.info("api listening on %s; %s", settings.api.address, source)
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
        background = [
            tasks.create_task(provider.run(publish), name="provider"),
            tasks.create_task(watcher.run(), name="watcher"),
            tasks.create_task(drain.run(), name="drain"),
        ]
        if dns is not None:
            background.append(tasks.create_task(dns.run(), name="dns sync"))
        if acme is not None:
            background.append(tasks.create_task(acme.run(), name="acme"))
        background += [tasks.create_task(s.run(), name=type(s).__name__) for s in status]
        if client is not None:  # does a stop fit in the pod's terminationGracePeriodSeconds?
            background.append(tasks.create_task(check_grace_period(
                client, OwnPod.from_env(client.namespace), stop_budget(settings),
                lambda problem: watcher.contribute("termination", problems=(problem,)),
            ), name="grace period check"))  # fmt: skip
        await stop.wait()
        log.info("stopping: draining in-flight requests for up to %gs", settings.graceTimeout)
        stopping = loop.time()
        for task in background:
            task.cancel()
        await _report_slow_tasks(background)
    tasks_done = loop.time()
    for server in (api, *side):
        server.close()
    for used in (client, reflecting, acme_client):
        if used is not None:
            try:  # after every task that used it has finished; a stuck connection must not hold the stop
                async with asyncio.timeout(STOP_STEP):
                    await used.aclose()
            except TimeoutError:
                log.warning(
                    "stopping: closing the Kubernetes API connections took over %gs; going on", STOP_STEP
                )
    clients_closed = loop.time()
    await workers.stop()
    log.info(
        "stopped in %.2fs: background tasks %.2fs, API connections %.2fs, workers %.2fs",
        loop.time() - stopping, tasks_done - stopping, clients_closed - tasks_done, loop.time() - clients_closed,
    )  # fmt: skip


async def _report_slow_tasks(tasks: list[asyncio.Task[None]]) -> None:
    """Cancelled tasks normally end at once; name those that do not after STOP_STEP (and where they
    wait), so that a slow stop says why. The TaskGroup still waits for them."""
    _, pending = await asyncio.wait(tasks, timeout=STOP_STEP)
    for task in pending:
        where = "; ".join(f"{f.f_code.co_filename}:{f.f_lineno} {f.f_code.co_name}" for f in task.get_stack())
        log.warning(
            "stopping: task %s has not ended %gs after it was cancelled: at %s",
            task.get_name(),
            STOP_STEP,
            where,
        )


def metrics_route(sources: metrics.Sources, collect: Callable[[], Awaitable[None]]) -> Handler:
    """`/metrics`: every worker's counts up to now (`collect` asks for them), then the whole
    registry, rendered off the event loop (metrics.scrape)."""

    async def scrape() -> Answer:
        await collect()
        return Answer(200, await metrics.scrape(sources), metrics.CONTENT_TYPE)

    return lambda request: Answer.after(scrape())


def side_listeners(settings: Settings, routes: Mapping[str, Handler]) -> dict[str, dict[str, Handler]]:
    """By address, the listeners beside the API that serve only `/ping` (`ping.address`, for the
    kubelet) or only `/metrics` (`metrics.prometheus.address`, for Prometheus): one listener
    serves both where the two addresses are the same, as Traefik's `traefik` entry point does."""
    wanted = []
    if settings.ping is not None:
        wanted.append((settings.ping.address, "/ping"))
    prometheus = settings.metrics.prometheus
    if prometheus is not None and prometheus.address:
        wanted.append((prometheus.address, "/metrics"))
    out: dict[str, dict[str, Handler]] = {}
    names: dict[tuple[str, int], str] = {}  # one spelling per (host, port)
    for address, path in wanted:
        address = names.setdefault(split_address(address), address)
        out.setdefault(address, {})[path] = routes[path]
    return out


def reopen_logs(workers: WorkerPool) -> None:
    """SIGUSR1 (logrotate's `postrotate`, as for Traefik): each worker reopens its access log file."""
    for worker in workers.status():
        if worker["pid"] is not None:
            try:
                os.kill(worker["pid"], signal.SIGUSR1)
            except ProcessLookupError:  # it died just now; its successor opens the file afresh
                pass


def drain_routes(routes: dict[str, Handler], drain: Drain, dns: DnsSync | None) -> dict[str, Handler]:
    """Adds the drain's and DNS sync's paths to `routes`; returns the POST actions."""
    ping, problems = routes["/ping"], routes["/api/problems"]

    def draining_ping(request: Request) -> Answer:
        return Answer(503, b"draining\n") if drain.refusing else ping(request)

    def all_problems(request: Request) -> Answer:  # translation's, then DNS sync's
        answer = problems(request)
        if dns is None or answer.status != 200:
            return answer
        return Answer.json(json.loads(answer.body) + [problem_json(p, {}) for p in dns.problems()])

    def start_drain(_: Request) -> Answer:
        drain.request()
        return Answer.json(drain.status(), status=202)

    routes["/ping"] = draining_ping
    routes["/api/problems"] = all_problems
    routes["/api/drain"] = lambda _: Answer.json(drain.status())
    routes["/api/dnssync"] = lambda _: Answer.json(dataclasses.asdict(dns.health()) if dns else {})
    actions: dict[str, Handler] = {"/api/drain": start_drain}
    if dns is not None:  # `passerelle dnssync --force / --dry-run` in a cluster (dnssync/actions.py)

        async def answer(work: Awaitable[tuple[int, dict[str, Any]]]) -> Answer:
            status, body = await work
            return Answer.json(body, status)

        actions["/api/dnssync/force"] = lambda _: Answer.after(answer(dnssync_actions.force(dns)))
        actions["/api/dnssync/plan"] = lambda _: Answer.after(answer(dnssync_actions.dry_run(dns)))
    return actions


async def acme_alpn_seam(settings: Settings, *, probed: bool) -> bool:
    """Whether workers may see ALPN offers through the ctypes seam (TLS-ALPN-01, docs/acme.md):
    probed already for TLS options, or now in a child process; without it, a documented fallback."""
    if probed:
        return True
    if not any(r.acme.tlsChallenge is not None for r in settings.certificatesResolvers.values()):
        return False
    try:
        await asyncio.to_thread(openssl.probe)
    except openssl.OpenSSLBindingError as e:
        log.warning("TLS-ALPN-01: %s; challenge certificates go to every handshake of a pending name", e)
        return False
    return True


def dns_sync(settings: Settings, leadership: Leadership | None = None) -> DnsSync | None:
    """The DNS sync controller `dnsSync` asks for: with the Kubernetes provider it writes while
    this replica holds the Lease; outside a cluster it is always the leader."""
    sync = settings.dnsSync
    if sync is None or sync.provider.rfc2136 is None:
        return None
    from passerelle.dnssync.rfc2136 import Rfc2136Provider  # dnspython: only where DNS sync runs

    if not sync.nodeName and not os.environ.get("NODE_NAME"):
        log.warning(
            "dns: this node's name is the host name %r (no dnsSync.nodeName, no $NODE_NAME): in a pod that "
            "is the pod's name, and a drain would not find its node; set NODE_NAME from spec.nodeName",
            sync.node_name(),
        )
    return DnsSync(
        options=sync.plan_options(),
        provider=Rfc2136Provider(sync.provider.rfc2136.options()),
        leadership=leadership or AlwaysLeader(),
        interval=sync.interval,
        node_name=sync.node_name(),
        settle=sync.settleTime,
    )


def _identity(settings: Settings) -> str:
    """This replica's name in Leases: leaderElection.identity, $POD_NAME, the host name."""
    kube = settings.providers.kubernetes
    return (
        (kube.leaderElection.identity if kube else "") or os.environ.get("POD_NAME") or socket.gethostname()
    )


def _acme_client(settings: Settings) -> ApiClient | None:
    """ACME's own pool to the API (its watch, Leases, writes), when a resolver keeps Secrets."""
    kube = settings.providers.kubernetes
    resolvers = settings.certificatesResolvers.values()
    if kube is None or not any(r.acme.storage.secret is not None for r in resolvers):
        return None
    try:
        return ApiClient.connect(kube.kubeconfig, kube.context, connections=ACME_CONNECTIONS)
    except KubeConfigError as e:
        raise StartupError(str(e)) from None


def _acme_leases(settings: Settings) -> LeaseTiming:
    """The certificate Leases take the leader election's identity and timings."""
    kube = settings.providers.kubernetes
    if kube is None:
        return LeaseTiming(identity=_identity(settings))
    election = kube.leaderElection
    return LeaseTiming(
        identity=_identity(settings),
        duration=election.leaseDuration,
        renew_deadline=election.renewDeadline,
        retry_period=election.retryPeriod,
    )


def _leadership(settings: Settings, client: ApiClient) -> Leadership:
    """The Lease campaign (status, Events and DNS sync write only while it leads)."""
    kube = settings.providers.kubernetes
    assert kube is not None
    election = kube.leaderElection
    return Leadership(
        client,
        namespace=election.leaseNamespace or os.environ.get("POD_NAMESPACE") or client.namespace,
        name=election.leaseName,
        identity=_identity(settings),
        lease_duration=election.leaseDuration,
        renew_deadline=election.renewDeadline,
        retry_period=election.retryPeriod,
    )


def _watch_options(settings: Settings) -> WatchOptions:
    kube = settings.providers.kubernetes
    assert kube is not None
    return WatchOptions(
        namespaces=tuple(kube.namespaces),
        label_selector=kube.labelSelector,
        throttle=kube.throttle,
        secrets=settings.configured_secrets(),
        pods=_pods(settings),
    )


def _pods(settings: Settings) -> tuple[tuple[str, str], ...]:
    """(namespace, label selector) of the router's pods that Ingress status and DNS sync read
    ("" namespace: the client's, resolved by the provider)."""
    kube, sync = settings.providers.kubernetes, settings.dnsSync
    own = os.environ.get("POD_NAMESPACE") or ""
    out = []
    endpoint = kube.ingressEndpoint if kube is not None else None
    if endpoint is not None and not (endpoint.ip or endpoint.hostname or endpoint.publishedService):
        out.append((own, endpoint.podSelector))
    if sync is not None and sync.requirePod:
        out.append((sync.podNamespace or own, parse_selector(sync.podSelector).text))
    return tuple(out)


def _writers(
    settings: Settings,
    client: ApiClient,
    provider: KubernetesProvider,
    watcher: ConfigWatcher,
    leadership: Leadership,
) -> list[Leadership | StatusWriter | EventRecorder | GatewayStatusWriter]:
    """The Lease campaign and what it gates: the Ingress and Gateway API status writers, the Event recorder."""
    kube = settings.providers.kubernetes
    assert kube is not None
    endpoint = kube.ingressEndpoint
    out: list[Leadership | StatusWriter | EventRecorder | GatewayStatusWriter] = [leadership]
    if kube.events:
        current = lambda: (watcher.current.problems if watcher.current else (), provider.latest)  # noqa: E731
        out.append(EventRecorder(client, problems=current, leadership=leadership))
    options = settings.ingress_options()
    out.append(
        GatewayStatusWriter(
            client,
            snapshots=provider,
            leadership=leadership,
            options=options.gateway,
            entrypoints=options.entrypoints,
        )
    )
    if endpoint is None:
        return out
    policy = EndpointPolicy(
        ips=tuple(endpoint.ip),
        hostname=endpoint.hostname,
        published_service=endpoint.publishedService,
        node_selector=parse_selector(endpoint.nodeSelector),
        pod_selector=parse_selector(endpoint.podSelector),
    )
    writer = StatusWriter(
        client, snapshots=provider, leadership=leadership, policy=policy, options=settings.ingress_options()
    )
    return out + [writer]


def run(settings: Settings) -> None:
    import uvloop

    try:
        uvloop.run(serve(settings))
    except (StartupError, SettingsError) as e:
        raise StartupError(str(e)) from None
