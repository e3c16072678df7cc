"""The collector renders every family from the sums and the control plane's state."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from passerelle.kube.reflector import Health
from passerelle.model import (
    Certificate,
    DynamicConfig,
    ObjectRef,
    Problem,
    Router,
    Service,
    Severity,
    TlsConfig,
)
from passerelle.model.delta import Delta, between
from passerelle.observability.aggregate import Totals
from passerelle.observability.metrics import (
    METRICS,
    LiveRouters,
    Reloads,
    Sources,
    keep_mask,
    live_pairs,
    provider_health,
    registry_of,
    render,
    scrape,
    served_certificates,
)


def certificate(source: str, default: bool = False) -> Certificate:
    return Certificate(
        cert_pem="", key_pem="", names=("a.test", "b.test"), fingerprint="ff", not_after="2027-01-01T00:00:00Z",
        default=default, source=source,
    )  # fmt: skip


class Provider:
    health = {"errors": 3, "up": False}


def families(sources: Sources) -> dict[str, list[tuple[dict[str, str], float]]]:
    text = render(registry_of(sources)).decode()
    return {f.name: [(s.labels, s.value) for s in f.samples] for f in text_string_to_metric_families(text)}


def test_every_family_is_rendered_with_its_values() -> None:
    totals = Totals((0.1,))
    totals.add(0, {"requests": [["web", "r", "s", "ns", "ing", "GET", "200", 3, 0.2, 5, 60, 2, 1]],
                   "upstream": [["r", "s", "ns", "ing", 2, 1]], "connections": {"web": {"h2": 4}}})  # fmt: skip
    reloads = Reloads()
    reloads.success(100.0)
    reloads.failure(200.0)
    problems = [
        Problem(
            ref=ObjectRef(kind="Ingress", namespace="ns", name="x"), message="m", severity=Severity.WARNING
        )
    ]
    out = families(
        Sources(
            totals=totals, reloads=reloads, problems=lambda: problems,
            certificates=lambda: [certificate("Secret ns/tls")], providers=lambda: {"manifests": Provider()},
            workers=lambda: [{"index": 0, "restarts": 2}], dnssync=lambda: DNS_HEALTH,
        )
    )  # fmt: skip
    assert {name for name in METRICS} == set(out)
    request = {"entrypoint": "web", "router": "r", "service": "s", "namespace": "ns", "ingress": "ing",
               "method": "GET", "code": "200"}  # fmt: skip
    assert out["passerelle_requests"] == [(request, 3)]
    assert (request | {"le": "0.1"}, 2) in out["passerelle_request_duration_seconds"]
    assert (request | {"le": "+Inf"}, 3) in out["passerelle_request_duration_seconds"]
    assert out["passerelle_requests_bytes"] == [(request, 5)]
    assert out["passerelle_responses_bytes"] == [(request, 60)]
    assert out["passerelle_open_connections"] == [({"entrypoint": "web", "protocol": "h2"}, 4)]
    upstream = {"router": "r", "service": "s", "namespace": "ns", "ingress": "ing"}
    assert out["passerelle_upstream_connect_errors"] == [(upstream, 2)]
    assert out["passerelle_upstream_retries"] == [(upstream, 1)]
    assert out["passerelle_config_reloads"] == [({}, 1)]
    assert out["passerelle_config_last_reload_failure"] == [({}, 200.0)]
    assert out["passerelle_config_problems"] == [
        ({"namespace": "ns", "kind": "Ingress", "severity": "warning"}, 1)
    ]
    assert out["passerelle_provider_errors"] == [({"provider": "manifests"}, 3)]
    assert out["passerelle_provider_up"] == [({"provider": "manifests"}, 0)]
    cert = {"cn": "a.test", "sans": "a.test,b.test", "namespace": "ns", "secret": "tls", "fingerprint": "ff"}
    assert out["passerelle_tls_certs_not_after"] == [(cert, 1798761600.0)]
    assert out["passerelle_worker_restarts"] == [({"worker": "0"}, 2)]
    assert out["passerelle_dnssync_leader"] == [({}, 1)] and out["passerelle_dnssync_healthy"] == [({}, 0)]
    assert out["passerelle_dnssync_last_success"] == [({}, 1700000000.0)]
    assert out["passerelle_dnssync_reconciles"] == [({}, 12)] and out["passerelle_dnssync_changes"] == [
        ({}, 5)
    ]
    assert out["passerelle_dnssync_names"] == [({}, 3)] and out["passerelle_dnssync_addresses"] == [({}, 2)]
    assert out["passerelle_dnssync_deletions_withheld"] == [({}, 1)]
    assert out["passerelle_dnssync_errors"] == [({"reason": "conflict"}, 1), ({"reason": "unreachable"}, 4)]


DNS_HEALTH = {
    "leader": True, "healthy": False, "last_success": 1700000000.0, "reconciles_total": 12, "changes_total": 5,
    "names": 3, "addresses": ["10.0.0.1", "10.0.0.2"], "guard_trips_total": 1,
    "errors_by_reason": {"unreachable": 4, "conflict": 1},
}  # fmt: skip


def test_dns_sync_families_only_with_dns_sync_and_no_timestamp_before_a_success() -> None:
    off = families(Sources(totals=Totals((0.1,)), reloads=Reloads()))
    assert not [name for name in off if name.startswith("passerelle_dnssync")]
    starting = families(
        Sources(totals=Totals((0.1,)), reloads=Reloads(), dnssync=lambda: DNS_HEALTH | {"last_success": None})
    )
    assert "passerelle_dnssync_last_success" not in starting  # not 0: a dashboard would read 1970
    assert starting["passerelle_dnssync_reconciles"] == [({}, 12)]


def test_labels_dropped_by_the_add_labels_options() -> None:
    totals = Totals(())
    totals.add(0, {"requests": [["web", "r", "s", "ns", "ing", "GET", "200", 1, 0.2, 0, 0, 1]]})
    keep = keep_mask(entrypoints=False, routers=False, services=True)
    out = families(Sources(totals=totals, reloads=Reloads(), keep=keep))
    assert out["passerelle_requests"] == [({"service": "s", "method": "GET", "code": "200"}, 1)]


def test_the_static_default_certificate_counts_unless_a_secret_replaces_it() -> None:
    static = type("Static", (), {"default_certificate": certificate("generated", default=True)})()
    from_secret = certificate("Secret ns/default", default=True)
    assert (
        served_certificates(TlsConfig(certificates=(certificate("Secret ns/a"),)), static)[-1].source
        == "generated"
    )  # type: ignore[arg-type]
    assert served_certificates(TlsConfig(certificates=(from_secret,)), static) == [from_secret]  # type: ignore[arg-type]
    assert served_certificates(None, None) == []


def test_provider_health_reads_an_attribute_or_a_method() -> None:
    class Method:
        def health(self) -> dict[str, object]:
            return {"errors": 1, "up": True, "other": "x"}

    assert provider_health(Method()) == {"errors": 1.0, "up": 1.0}
    kubernetes = type("P", (), {"health": Health(errors_total=4, connected=True)})()
    assert provider_health(kubernetes) == {"errors": 4.0, "up": 1.0}
    assert provider_health(Provider()) == {"errors": 3.0, "up": 0.0}
    assert provider_health(object()) == {}


def test_acme_counters_failures_by_reason_and_renewal_times() -> None:
    sample = {
        "orders": 3, "issued": 2, "renewed": 1, "failures": {"challenge": 1, "storage": 2},
        "renewals": [(("b.test", "a.test"), 1800000000.0)],
    }  # fmt: skip
    out = families(Sources(totals=Totals((0.1,)), reloads=Reloads(), acme=lambda: {"le": sample}))
    assert out["passerelle_acme_orders"] == [({"resolver": "le"}, 3)]
    assert out["passerelle_acme_issued"] == [({"resolver": "le"}, 2)]
    assert out["passerelle_acme_renewed"] == [({"resolver": "le"}, 1)]
    assert sorted(out["passerelle_acme_failures"], key=lambda s: s[0]["reason"]) == [
        ({"resolver": "le", "reason": "challenge"}, 1),
        ({"resolver": "le", "reason": "storage"}, 2),
    ]
    assert out["passerelle_acme_renewal_time"] == [
        ({"resolver": "le", "cn": "b.test", "sans": "b.test,a.test"}, 1800000000.0)
    ]


def test_a_reading_is_the_state_at_that_moment() -> None:
    totals = Totals(())
    problems: list[Problem] = []
    sources = Sources(totals=totals, reloads=Reloads(), problems=lambda: list(problems))
    now = sources.read()
    problems.append(Problem(ref=ObjectRef(kind="Ingress", namespace="ns", name="x"), message="m"))
    totals.add(0, {"requests": [["web", "r", "s", "ns", "ing", "GET", "200", 1, 0.2, 0, 0, 1]]})
    sources.reloads.success(1.0)
    assert list(now.problems()) == [] and now.totals.requests == {} and now.reloads.succeeded == 0
    assert families(now)["passerelle_requests"] == []
    assert families(sources)["passerelle_requests"] != []  # the live sources see both


async def test_a_scrape_shows_a_retired_routers_series_once_then_drops_them() -> None:
    totals = Totals(())
    totals.add(0, {"requests": [["web", "gone", "s", "ns", "old", "GET", "200", 1, 0.2, 0, 0, 1]]})
    sources = Sources(totals=totals, reloads=Reloads())
    assert b'router="gone"' in await scrape(sources)
    totals.retire(live_pairs(DynamicConfig()))
    assert b'router="gone"' in await scrape(sources)  # the last counts are shown once
    assert b'router="gone"' not in await scrape(sources)


def test_live_pairs_are_each_routers_router_and_service() -> None:
    routers = (Router(name="a", service="s1", host="a.test"), Router(name="b", service="s2"))
    config = DynamicConfig(routers=routers, services=(Service(name="s1"), Service(name="s2")))
    assert live_pairs(config) == {("a", "s1"), ("b", "s2")}


def test_live_routers_follow_change_sets_as_live_pairs_follows_versions() -> None:
    def version(*routers: tuple[str, str]) -> DynamicConfig:
        services = tuple(Service(name=s) for s in sorted({s for _, s in routers}))
        return DynamicConfig(routers=tuple(Router(name=r, service=s) for r, s in routers), services=services)

    versions = [
        version(("a", "s1"), ("b", "s2")),
        version(("a", "s1"), ("b", "s3"), ("c", "s1")),  # b changed service, c is new
        version(("c", "s1")),  # a and b gone
        version(("d", "s4")),
    ]
    live = LiveRouters()
    pairs = live.update(1, 0, versions[0], None)
    assert set(pairs) == live_pairs(versions[0]) and len(pairs) == 2
    for number, (before, after) in enumerate(zip(versions, versions[1:], strict=False), start=2):
        kept = pairs
        pairs = live.update(number, number - 1, after, between(before, after))
        assert set(pairs) == live_pairs(after)
        assert all((p in pairs) == (p in live_pairs(after)) for p in live_pairs(before) | live_pairs(after))
        assert set(kept) == live_pairs(before)  # the last one is left as it was
    # a version not on the last one (or without a change set) is read whole
    assert set(live.update(9, 2, versions[1], None)) == live_pairs(versions[1])
    assert set(live.update(10, 3, versions[2], between(versions[1], versions[2]))) == live_pairs(versions[2])
    assert "not a pair" not in pairs
    # a version that goes whole says nothing of what changed: read whole
    assert set(live.update(11, 10, versions[3], Delta(whole=True))) == live_pairs(versions[3])
