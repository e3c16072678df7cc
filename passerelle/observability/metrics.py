"""Every Prometheus metric passerelle exposes, defined here, and the collector that renders them.

The data plane's counts arrive as worker reports summed in `Totals` (aggregate.py); the rest is
read from the control plane's own state at scrape time: reloads, providers, the applied
configuration's problems and certificates, the workers. `MetricsCollector` is a prometheus_client
custom collector over those, registered in a registry of the app's own (never the global one), so
one scrape reads one state. A scrape (`scrape`) reads that state on the event loop (`Sources.read`:
every callable once, the totals copied) and renders it in a thread, so a large registry never
stalls the control plane's loop (the API, the workers' channels). Names follow Traefik's where it
has one (`traefik_` -> `passerelle_`).
Request families carry the labels entrypoint, router, service, namespace, ingress, method, code:
namespace and ingress are those of the Ingress the router came from, so a dashboard can sum by them.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import datetime
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from passerelle.model import Certificate, DynamicConfig, Problem, TlsConfig
from passerelle.model.delta import Delta
from passerelle.observability.aggregate import LABELS, Pair, Totals
from passerelle.tls.contexts import TlsStatic

__all__ = [
    "METRICS", "LivePairs", "LiveRouters", "MetricsCollector", "ProcessCollector", "Reloads", "Sources",
    "live_pairs", "registry_of",
    "render", "scrape",
]  # fmt: skip

log = logging.getLogger("passerelle.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REQUEST_LABELS = ("entrypoint", "router", "service", "namespace", "ingress", "method", "code")
UPSTREAM_LABELS = ("router", "service", "namespace", "ingress")
CERT_LABELS = ("cn", "sans", "namespace", "secret", "fingerprint")

# name: (help, kind). Kind: counter, gauge or histogram. Request families first, in label order above.
METRICS: dict[str, tuple[str, str]] = {
    "passerelle_requests": (
        "HTTP requests answered, by the router and service that handled them.",
        "counter",
    ),
    "passerelle_request_duration_seconds": (
        "Time from request head to the end of the response.",
        "histogram",
    ),
    "passerelle_requests_bytes": ("Request body bytes received from clients.", "counter"),
    "passerelle_responses_bytes": ("Response body bytes sent to clients.", "counter"),
    "passerelle_open_connections": ("Client connections open now, by entry point and protocol.", "gauge"),
    "passerelle_upstream_connect_errors": ("Failed connection attempts to a service's servers.", "counter"),
    "passerelle_upstream_retries": (
        "Requests sent again to another server, or on a fresh connection.",
        "counter",
    ),
    "passerelle_config_reloads": ("Configuration versions applied by every worker.", "counter"),
    "passerelle_config_reloads_failure": ("Configuration versions a worker rejected.", "counter"),
    "passerelle_config_last_reload_success": (
        "Unix time of the last version applied by every worker.",
        "gauge",
    ),
    "passerelle_config_last_reload_failure": ("Unix time of the last version a worker rejected.", "gauge"),
    "passerelle_config_problems": (
        "Problems of the current configuration, by object namespace and kind.",
        "gauge",
    ),
    "passerelle_provider_errors": ("Errors a provider met (unreadable files, API failures).", "counter"),
    "passerelle_provider_up": ("1 when the provider's source is reachable and read, else 0.", "gauge"),
    "passerelle_tls_certs_not_after": ("Expiry (unix time) of each certificate passerelle serves.", "gauge"),
    "passerelle_worker_restarts": ("Times a data-plane worker was restarted after it died.", "counter"),
    "passerelle_acme_orders": ("ACME orders this replica started, by resolver.", "counter"),
    "passerelle_acme_issued": (
        "Certificates issued to this replica, by resolver (renewals included).",
        "counter",
    ),
    "passerelle_acme_renewed": (
        "Certificates issued to this replica that renewed one, by resolver.",
        "counter",
    ),
    "passerelle_acme_failures": (
        "Failed ACME attempts, by resolver and reason: unreachable, rateLimited, challenge, ca, storage, leaseLost.",
        "counter",
    ),
    "passerelle_acme_renewal_time": ("Unix time each ACME certificate is due for renewal.", "gauge"),
    # DNS sync (docs/dns-sync.md), from its controller's health; absent without dnsSync
    "passerelle_dnssync_leader": ("1 while this replica writes DNS (the Lease holder), else 0.", "gauge"),
    "passerelle_dnssync_healthy": ("1 when the last DNS reconcile succeeded, else 0.", "gauge"),
    "passerelle_dnssync_last_success": ("Unix time of the last successful DNS reconcile.", "gauge"),
    "passerelle_dnssync_reconciles": ("DNS reconciles attempted.", "counter"),
    "passerelle_dnssync_errors": (
        "DNS reconcile errors by reason: unreachable, refused, conflict, internal.",
        "counter",
    ),
    "passerelle_dnssync_changes": ("DNS record sets created, updated or deleted.", "counter"),
    "passerelle_dnssync_names": ("Names DNS sync manages (last plan).", "gauge"),
    "passerelle_dnssync_addresses": ("Addresses published for every managed name (last plan).", "gauge"),
    "passerelle_dnssync_deletions_withheld": (
        "Reconciles whose deletions the mass-deletion guard withheld (maxDeletePercent).",
        "counter",
    ),
}


class Reloads:
    """What the worker pool tells about configuration versions (control/distribute.py)."""

    __slots__ = ("succeeded", "failed", "last_success", "last_failure")

    def __init__(self) -> None:
        self.succeeded = 0
        self.failed = 0
        self.last_success = 0.0
        self.last_failure = 0.0

    def success(self, when: float) -> None:
        self.succeeded += 1
        self.last_success = when

    def failure(self, when: float) -> None:
        self.failed += 1
        self.last_failure = when


@dataclass(frozen=True, slots=True, kw_only=True)
class Sources:
    """What the collector reads at scrape time, each a callable so it sees the current state."""

    totals: Totals
    reloads: Reloads
    keep: tuple[bool, ...] = (True,) * LABELS  # request labels kept (metrics.prometheus.add*Labels)
    problems: Callable[[], Iterable[Problem]] = tuple
    certificates: Callable[[], Iterable[Certificate]] = tuple
    providers: Callable[[], Mapping[str, object]] = dict
    workers: Callable[[], Iterable[Mapping[str, Any]]] = tuple
    # per resolver: orders, issued, renewed (counts), failures ({reason: count}), renewals
    # ([(names, unix time)]): AcmeController.metrics()
    acme: Callable[[], Mapping[str, Mapping[str, Any]]] = dict
    dnssync: Callable[[], Mapping[str, Any]] = dict  # DNS sync's health (GET /api/dnssync); {}: off
    extra: tuple[Collector, ...] = field(default=())

    def read(self) -> Sources:
        """These sources as they are now, for a render in another thread: read on the event loop
        that changes them, each callable called once (a constant returns its value), the totals and
        reloads copied. Only the providers' health (single counters) is read in the render itself."""
        now: dict[str, Any] = {"totals": self.totals.copy(), "reloads": copy.copy(self.reloads)}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name not in now and f.name != "extra" and callable(value):
                now[f.name] = _constant(_materialised(value()))
        return dataclasses.replace(self, **now)


def _materialised(value: Any) -> Any:
    """A value a callable returned, made safe to read later: iterators become tuples."""
    return tuple(value) if isinstance(value, Iterator) else value


def _constant(value: Any) -> Callable[[], Any]:
    return lambda: value


def keep_mask(*, entrypoints: bool, routers: bool, services: bool) -> tuple[bool, ...]:
    """Which of REQUEST_LABELS stay, from Traefik's addEntryPointsLabels/addRoutersLabels/addServicesLabels."""
    return (entrypoints, routers, services, routers, routers, True, True)


def provider_health(provider: object) -> dict[str, float]:
    """A provider's `health` (attribute or method): `errors` (a count that only grows: unreadable
    files, failed API calls) and `up`, from a mapping with those keys (the manifests provider) or an
    object with `errors_total` and `connected` (kube/reflector.py Health). Without one: nothing."""
    health = getattr(provider, "health", None)
    if callable(health):
        health = health()
    if health is None:
        return {}
    if isinstance(health, Mapping):
        errors, up = health.get("errors"), health.get("up")
    else:
        errors, up = getattr(health, "errors_total", None), getattr(health, "connected", None)
    out = {}
    if isinstance(errors, int | float):
        out["errors"] = float(errors)
    if isinstance(up, bool | int):
        out["up"] = float(up)
    return out


def expiry(certificate: Certificate) -> float | None:
    try:
        when = datetime.datetime.strptime(certificate.not_after, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return None
    return when.replace(tzinfo=datetime.UTC).timestamp()


def served_certificates(tls: TlsConfig | None, static: TlsStatic | None) -> list[Certificate]:
    """The applied version's certificates, and the static default one unless a Secret replaces it."""
    certificates = list(tls.certificates) if tls is not None else []
    if static is not None and not any(c.default for c in certificates):
        certificates.append(static.default_certificate)
    return certificates


def certificate_labels(certificate: Certificate) -> tuple[str, str, str, str, str]:
    kind, _, where = certificate.source.partition(" ")
    namespace, _, secret = where.partition("/") if kind == "Secret" else ("", "", "")
    cn = certificate.names[0] if certificate.names else ""
    return (cn, ",".join(certificate.names), namespace, secret, certificate.fingerprint)


def _counter(name: str, labels: Iterable[str]) -> CounterMetricFamily:
    return CounterMetricFamily(name, METRICS[name][0], labels=list(labels))


def _gauge(name: str, labels: Iterable[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, METRICS[name][0], labels=list(labels))


def _histogram(name: str, labels: Iterable[str]) -> HistogramMetricFamily:
    return HistogramMetricFamily(name, METRICS[name][0], labels=list(labels))


class MetricsCollector(Collector):
    def __init__(self, sources: Sources) -> None:
        self.sources = sources

    def collect(self) -> Iterator[Metric]:
        s = self.sources
        yield from self._requests()
        connections = _gauge("passerelle_open_connections", ("entrypoint", "protocol"))
        for (entry, protocol), n in sorted(s.totals.open_connections().items()):
            connections.add_metric([entry, protocol], n)
        yield connections
        errors = _counter("passerelle_upstream_connect_errors", UPSTREAM_LABELS)
        retries = _counter("passerelle_upstream_retries", UPSTREAM_LABELS)
        for labels, (failed, retried) in sorted(s.totals.upstream.items()):
            errors.add_metric(list(labels), failed)
            retries.add_metric(list(labels), retried)
        yield from (errors, retries)
        yield from self._config()
        yield from self._providers()
        certs = _gauge("passerelle_tls_certs_not_after", CERT_LABELS)
        # One Secret listed twice would repeat a series, and Prometheus refuses the whole scrape.
        seen: set[tuple[str, ...]] = set()
        for certificate in s.certificates():
            when, cert = expiry(certificate), certificate_labels(certificate)
            if when is not None and cert not in seen:
                seen.add(cert)
                certs.add_metric(list(cert), when)
        yield certs
        restarts = _counter("passerelle_worker_restarts", ("worker",))
        for worker in s.workers():
            restarts.add_metric([str(worker["index"])], worker["restarts"])
        yield restarts
        yield from self._acme()
        yield from self._dnssync()

    def _acme(self) -> Iterator[Metric]:
        counts = {
            n: _counter(n, ("resolver",))
            for n in ("passerelle_acme_orders", "passerelle_acme_issued", "passerelle_acme_renewed")
        }
        failures = _counter("passerelle_acme_failures", ("resolver", "reason"))
        renewals = _gauge("passerelle_acme_renewal_time", ("resolver", "cn", "sans"))
        for resolver, sample in sorted(self.sources.acme().items()):
            for name, family in counts.items():
                family.add_metric([resolver], sample[name.removeprefix("passerelle_acme_")])
            for reason, n in sorted(sample["failures"].items()):
                failures.add_metric([resolver, reason], n)
            for names, when in sorted(sample["renewals"]):
                renewals.add_metric([resolver, names[0], ",".join(names)], when)
        yield from (*counts.values(), failures, renewals)

    def _requests(self) -> Iterator[Metric]:
        s = self.sources
        labels = [name for name, kept in zip(REQUEST_LABELS, s.keep, strict=True) if kept]
        count = _counter("passerelle_requests", labels)
        duration = _histogram("passerelle_request_duration_seconds", labels)
        bytes_in = _counter("passerelle_requests_bytes", labels)
        bytes_out = _counter("passerelle_responses_bytes", labels)
        bounds = [repr(float(b)) for b in s.totals.bounds] + ["+Inf"]
        for key, h in sorted(s.totals.histograms(s.keep).items()):
            values = list(key)
            count.add_metric(values, h.count)
            duration.add_metric(values, list(zip(bounds, h.cumulative, strict=True)), h.seconds)
            bytes_in.add_metric(values, h.bytes_in)
            bytes_out.add_metric(values, h.bytes_out)
        yield from (count, duration, bytes_in, bytes_out)

    def _config(self) -> Iterator[Metric]:
        reloads = self.sources.reloads
        for name, value in (
            ("passerelle_config_reloads", reloads.succeeded),
            ("passerelle_config_reloads_failure", reloads.failed),
            ("passerelle_config_last_reload_success", reloads.last_success),
            ("passerelle_config_last_reload_failure", reloads.last_failure),
        ):
            family = _counter(name, ()) if METRICS[name][1] == "counter" else _gauge(name, ())
            family.add_metric([], value)
            yield family
        problems: dict[tuple[str, str, str], int] = {}
        for problem in self.sources.problems():
            key = (problem.ref.namespace, problem.ref.kind, str(problem.severity))
            problems[key] = problems.get(key, 0) + 1
        family = _gauge("passerelle_config_problems", ("namespace", "kind", "severity"))
        for key, n in sorted(problems.items()):
            family.add_metric(list(key), n)
        yield family

    def _providers(self) -> Iterator[Metric]:
        errors = _counter("passerelle_provider_errors", ("provider",))
        up = _gauge("passerelle_provider_up", ("provider",))
        for name, provider in sorted(self.sources.providers().items()):
            health = provider_health(provider)
            if "errors" in health:
                errors.add_metric([name], health["errors"])
            if "up" in health:
                up.add_metric([name], 1.0 if health["up"] else 0.0)
        yield from (errors, up)

    def _dnssync(self) -> Iterator[Metric]:
        health = self.sources.dnssync()
        if not health:
            return
        last = health.get("last_success")
        for name, value in (
            ("passerelle_dnssync_leader", float(bool(health["leader"]))),
            ("passerelle_dnssync_healthy", float(bool(health["healthy"]))),
            ("passerelle_dnssync_last_success", last),
            ("passerelle_dnssync_reconciles", health["reconciles_total"]),
            ("passerelle_dnssync_changes", health["changes_total"]),
            ("passerelle_dnssync_names", health["names"]),
            ("passerelle_dnssync_addresses", len(health["addresses"])),
            ("passerelle_dnssync_deletions_withheld", health["guard_trips_total"]),
        ):
            if value is None:
                continue  # no successful reconcile yet: no timestamp rather than 0 (1970)
            family = _counter(name, ()) if METRICS[name][1] == "counter" else _gauge(name, ())
            family.add_metric([], value)
            yield family
        errors = _counter("passerelle_dnssync_errors", ("reason",))
        for reason, n in sorted(health["errors_by_reason"].items()):
            errors.add_metric([reason], n)
        yield errors


def registry_of(sources: Sources) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MetricsCollector(sources))
    for collector in sources.extra:
        registry.register(collector)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)


async def scrape(sources: Sources) -> bytes:
    """The exposition of `sources` now: read here, rendered in a thread; then the series of retired
    routers that this scrape showed are dropped (aggregate.Totals.scraped)."""
    now = sources.read()
    body = await asyncio.to_thread(render, registry_of(now))
    sources.totals.scraped(now.totals)
    return body


def live_pairs(config: DynamicConfig) -> frozenset[Pair]:
    """The (router, service) pairs a configuration has: series of other pairs are retired."""
    return frozenset((router.name, router.service) for router in config.routers)


class LivePairs(AbstractSet[Pair]):
    """live_pairs() of one version, as a view of its routers' services by name (never changed)."""

    __slots__ = ("_services",)

    def __init__(self, services: Mapping[str, str]) -> None:
        self._services = services

    def __contains__(self, pair: object) -> bool:
        if not isinstance(pair, tuple) or len(pair) != 2:
            return False
        service = self._services.get(pair[0])
        return service is not None and service == pair[1]

    def __iter__(self) -> Iterator[Pair]:
        return iter(self._services.items())

    def __len__(self) -> int:
        return len(self._services)


class LiveRouters:
    """Each new version's LivePairs, for Totals.retire: from the last one and the version's
    change set when it has one on the last (a copy of a dictionary, then the routers that
    changed), else from all of its routers."""

    def __init__(self) -> None:
        self._number = 0
        self._services: dict[str, str] = {}

    def update(self, number: int, base: int, config: DynamicConfig, delta: Delta | None) -> LivePairs:
        if delta is not None and not delta.whole and self._number and base == self._number:
            services = self._services.copy()  # the last LivePairs keeps its own
            for name in delta.removed_routers:
                services.pop(name, None)
            services.update((r.name, r.service) for r in delta.routers)
        else:
            services = {r.name: r.service for r in config.routers}
        self._number, self._services = number, services
        return LivePairs(services)
