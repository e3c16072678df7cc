"""ACME with the Kubernetes provider: real Pebble, the test API server, passerelle processes.

Every replica runs under deploy/'s RBAC (the ClusterRole, and the Roles only in the `passerelle`
namespace, as their RoleBindings grant them) and keeps ACME state in Secrets there
(`storage: {secret: {}}`, the namespace from $POD_NAMESPACE). Replicas share nothing else: no
directory, no process. Pebble validates HTTP-01 on one replica's port only, so a certificate
ordered by another proves its token reached that replica through the Secrets.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import hashes

from passerelle.acme.records import certificate_id
from passerelle.kube.acme_secrets import certificate_secret, lease_name
from tests.integration.harness import Backends, Router, free_port, ingress, rule, service
from tests.integration.pebble import Pebble
from tests.integration.test_acme import STARTUP, acme_status, issued, served_certificate, wait_for
from tests.kubeapi import KubeAPI
from tests.kubeapi.fixtures import deploy_rules

NS = "passerelle"
LEASE = {"leaseDuration": "3s", "renewDeadline": "2s", "retryPeriod": "0.5s"}


class Cluster:
    """A test API server holding one app, Pebble, and router replicas (one token each)."""

    def __init__(self, api: KubeAPI, workdir: Path, backends: Backends) -> None:
        self.api, self.workdir = api, workdir
        self.routers: list[Router] = []
        self.pebble: Pebble | None = None
        port = backends.whoami("acme-kube")
        api.create(service("app"))
        api.create(
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": "app-1",
                    "namespace": "default",
                    "labels": {"kubernetes.io/service-name": "app"},
                },
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": port}],
                "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}],
            }
        )

    def app(self, host: str, labels: dict[str, str] | None = None) -> None:
        obj = ingress("app", [rule(host, ("/", "Prefix", "app"))], tls=[{"hosts": [host]}])
        obj["metadata"].update(
            namespace="default", labels=labels or {}, annotations={"passerelle.io/cert-resolver": "pebble"}
        )
        self.api.create(obj)

    def start_pebble(self, *, http_port: int) -> Pebble:
        self.pebble = Pebble(self.workdir / "pebble", http_port=http_port, tls_port=free_port()).start(
            timeout=STARTUP
        )
        return self.pebble

    def router(self, name: str, *, web: int, delay: str = "0.3s", selector: str = "") -> Router:
        assert self.pebble is not None
        kubeconfig = self.api.kubeconfig(self.workdir / f"kubeconfig-{name}", token=name)
        acme = {
            "email": "ops@example.test",
            "caServer": self.pebble.directory,
            "caCertificates": [str(self.pebble.ca_file)],
            "storage": {"secret": {}},
            "httpChallenge": {"entryPoint": "web", "delay": delay},
            "retry": {"initialInterval": "1s", "maxInterval": "2s"},
        }
        kubernetes = {
            "kubeconfig": str(kubeconfig),
            "throttle": "0.1s",
            "labelSelector": selector,
            "leaderElection": {"identity": name, **LEASE},
            "ingressEndpoint": None,
        }
        config = {
            "entryPoints": {
                "web": {"address": f"127.0.0.1:{web}"},
                "websecure": {"address": f"127.0.0.1:{free_port()}", "tls": {}},
            },
            "providers": {"kubernetes": kubernetes},
            "certificatesResolvers": {"pebble": {"acme": acme}},
            "workers": 2,
        }
        router = Router(
            self.workdir / f"{name}-{len(self.routers)}", config=config, env={"POD_NAMESPACE": NS}
        )
        self.routers.append(router)
        return router

    def secure(self, router: Router) -> int:
        config = yaml.safe_load(router.config_path.read_text())
        return int(config["entryPoints"]["websecure"]["address"].rpartition(":")[2])

    def certificate_secret(self, host: str) -> dict[str, Any] | None:
        return self.api.get("v1", "Secret", NS, certificate_secret("pebble", certificate_id((host,))))

    def denied(self) -> list[Any]:
        return [r for r in self.api.requests() if r.status in (401, 403)]

    def close(self) -> None:
        for router in self.routers:
            router.stop()
        if self.pebble is not None:
            self.pebble.stop()


TOKENS = {name: name for name in ("a", "b", "a2")}


@pytest.fixture
def cluster(kubeapi: Callable[..., KubeAPI], tmp_path: Path, backends: Backends) -> Iterator[Cluster]:
    rules = deploy_rules()
    api = kubeapi(tokens=TOKENS, rules={name: rules for name in TOKENS.values()})
    c = Cluster(api, tmp_path, backends)
    yield c
    c.close()


def test_the_token_reaches_the_replica_that_did_not_order_and_a_restart_orders_nothing(
    cluster: Cluster,
) -> None:
    web_a, web_b = free_port(), free_port()
    pebble = cluster.start_pebble(http_port=web_b)  # the CA's validation reaches replica B only
    host = "shared.example.test"
    cluster.app(host, labels={"owner": "a"})
    # B does not serve the Ingress (its label selector leaves it out), so it wants no certificate
    # and orders nothing; it has the token only if it read it from the challenge Secret.
    b = cluster.router("b", web=web_b, selector="owner!=a").start(timeout=STARTUP)
    a = cluster.router("a", web=web_a, delay="3s").start(timeout=STARTUP)
    root = pebble.root()
    leaf = wait_for("issuance through replica B", issued(cluster.secure(a), host, root), 40, a)
    assert acme_status(a)["orders"] == 1 and acme_status(b)["orders"] == 0, a.log() + b.log()
    writes = [
        (r.user, r.verb)
        for r in cluster.api.requests()
        if r.resource == "secrets" and r.verb in ("create", "delete")
    ]
    assert ("a", "create") in writes and ("a", "delete") in writes  # the challenge, published then withdrawn
    assert not [w for w in writes if w[0] == "b"]
    secret = cluster.certificate_secret(host)
    assert secret is not None and secret["type"] == "kubernetes.io/tls"
    assert secret["metadata"]["labels"] == {
        "passerelle.io/acme": "certificate",
        "passerelle.io/acme-resolver": "pebble",
    }
    assert secret["metadata"]["annotations"]["passerelle.io/acme-names"] == host
    assert secret["metadata"]["annotations"][
        "passerelle.io/acme-not-after"
    ] == leaf.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    # B serves it too, from the Secret (SNI), though it wants nothing
    picked = wait_for("B serving the stored certificate", issued(cluster.secure(b), host, root), 10, b)
    assert picked.fingerprint(hashes.SHA256()) == leaf.fingerprint(hashes.SHA256())
    assert not [
        s
        for s in cluster.api.objects("v1", "Secret")
        if s["metadata"]["name"].startswith("passerelle-acme-challenge")
    ]
    a.stop()
    again = cluster.router("a2", web=web_a).start(timeout=STARTUP)  # another replica, the same Secrets
    served = served_certificate(cluster.secure(again), host, root)
    assert served.fingerprint(hashes.SHA256()) == leaf.fingerprint(hashes.SHA256())
    time.sleep(2)  # several plans and storage readings later
    assert acme_status(again)["orders"] == 0 and "ordering" not in again.log(), again.log()
    assert "registered" not in again.log()  # the account Secret's account
    assert not cluster.denied(), cluster.denied()[:5]  # nothing deploy/'s RBAC does not grant


def test_one_order_when_both_replicas_want_the_certificate(cluster: Cluster) -> None:
    web_a, web_b = free_port(), free_port()
    pebble = cluster.start_pebble(http_port=web_b)
    host = "both.example.test"
    a = cluster.router("a", web=web_a, delay="2s").start(timeout=STARTUP)
    b = cluster.router("b", web=web_b, delay="2s").start(timeout=STARTUP)
    cluster.app(host)  # both see it at once, through their watches, and both want the certificate
    root = pebble.root()
    wait_for("issuance", issued(cluster.secure(a), host, root), 40, a)
    wait_for("issuance", issued(cluster.secure(b), host, root), 20, b)
    time.sleep(1.5)
    statuses = [acme_status(a), acme_status(b)]
    assert sum(s["orders"] for s in statuses) == 1, a.log() + b.log()
    assert sum(s["issued"] for s in statuses) == 1 and sum(s["failures"] for s in statuses) == 0
    assert "another replica is ordering" in a.log() + b.log()  # both wanted it while it was ordered
    assert not cluster.denied(), cluster.denied()[:5]


def test_the_lease_holder_killed_mid_order_leaves_the_order_to_the_other(cluster: Cluster) -> None:
    web_a, web_b = free_port(), free_port()
    pebble = cluster.start_pebble(http_port=web_b)
    host = "orphan.example.test"
    cluster.app(host)
    a = cluster.router("a", web=web_a, delay="60s").start(timeout=STARTUP)  # holds the Lease, then waits
    wait_for("A ordering", lambda: "ordering a certificate" in a.log(), 30, a)
    b = cluster.router("b", web=web_b).start(timeout=STARTUP)
    wait_for("B waiting for A", lambda: "another replica is ordering" in b.log(), 15, b)
    assert a.process is not None
    a.process.kill()  # no release: B takes the Lease once it has not been renewed for leaseDuration
    a.process.wait()
    wait_for("B ordering instead", issued(cluster.secure(b), host, pebble.root()), 40, b)
    assert acme_status(b)["orders"] == 1
    lease = cluster.api.get(
        "coordination.k8s.io/v1", "Lease", NS, lease_name("pebble", certificate_id((host,)))
    )
    assert lease is not None and lease["spec"]["holderIdentity"] in ("b", "")  # B's, released after the order


def test_api_errors_and_a_conflict_while_storing_do_not_lose_the_certificate(cluster: Cluster) -> None:
    web = free_port()
    pebble = cluster.start_pebble(http_port=web)
    host = "stubborn.example.test"
    cluster.app(host)
    a = cluster.router("a", web=web, delay="3s").start(timeout=STARTUP)
    wait_for(
        "the challenge published",
        lambda: any(
            s["metadata"]["name"].startswith("passerelle-acme-challenge")
            for s in cluster.api.objects("v1", "Secret")
        ),
        30,
        a,
    )
    # While the CA validates: a Secret of that name appears (not one A knows: a 409 on its create),
    # and the API refuses the next two writes.
    name = certificate_secret("pebble", certificate_id((host,)))
    cluster.api.create(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": NS}, "type": "Opaque"}
    )
    cluster.api.inject(500, times=2, verb="create", resource="secrets")
    root = pebble.root()
    leaf = wait_for("issuance, served from memory", issued(cluster.secure(a), host, root), 40, a)
    wait_for(
        "the certificate stored after all",
        lambda: (cluster.certificate_secret(host) or {}).get("type") == "kubernetes.io/tls",
        20,
        a,
    )
    assert "could not be stored" in a.log()
    statuses = [
        r.status for r in cluster.api.requests() if r.resource == "secrets" and r.verb in ("create", "update")
    ]
    assert 500 in statuses and 409 in statuses
    served = served_certificate(cluster.secure(a), host, root)
    assert served.fingerprint(hashes.SHA256()) == leaf.fingerprint(hashes.SHA256())
    assert acme_status(a)["orders"] == 1  # not ordered again


def test_a_replica_that_loses_the_lease_mid_order_stops_and_the_other_finishes(cluster: Cluster) -> None:
    web_a, web_b = free_port(), free_port()
    pebble = cluster.start_pebble(http_port=web_b)
    host = "lost.example.test"
    cluster.app(host)
    a = cluster.router("a", web=web_a, delay="30s").start(timeout=STARTUP)
    wait_for("A ordering", lambda: "ordering a certificate" in a.log(), 30, a)
    b = cluster.router("b", web=web_b).start(timeout=STARTUP)
    wait_for("B waiting for A", lambda: "another replica is ordering" in b.log(), 15, b)
    # A can no longer renew its Leases (its RBAC changed): it must give the order up by itself
    no_leases = [r for r in deploy_rules() if "coordination.k8s.io" not in r["apiGroups"]]
    cluster.api._run(lambda: cluster.api.rules.__setitem__("a", no_leases))  # type: ignore[union-attr]
    wait_for("A stopping", lambda: "while ordering it; stopped" in a.log(), 15, a)
    leaf = wait_for("B ordering instead", issued(cluster.secure(b), host, pebble.root()), 40, b)
    status_a, status_b = acme_status(a), acme_status(b)
    assert status_a["issued"] == 0 and status_a["failuresByReason"] == {"leaseLost": 1}, a.log()
    assert status_b["orders"] == 1 and status_b["issued"] == 1
    secret = cluster.certificate_secret(host)
    assert secret is not None
    assert secret["metadata"]["annotations"][
        "passerelle.io/acme-not-after"
    ] == leaf.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
