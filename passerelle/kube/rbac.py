"""Every API access the Kubernetes provider makes, as RBAC would grant it (pure).

deploy/10-rbac.yaml must grant exactly this (tests/unit/test_deploy.py checks it, and the
integration tests run the provider under those rules). Cluster-wide: reading what translation
and status need, writing Ingress status and Events (on the objects' namespaces). In the
router's own namespace only: its pods (status addresses; a draining router
annotates its own, and each reads its own at start) and the Lease (leader election). In the ACME
storage namespace only (a Role of its own, deploy/15-acme-rbac.yaml): ACME's Secrets and its
certificate Leases.
"""

from __future__ import annotations

from passerelle.kube.kinds import POD, WATCHED

Access = dict[tuple[str, str], frozenset[str]]  # (apiGroup, resource) -> verbs

READ = frozenset({"list", "watch"})


def cluster_access() -> Access:
    out: dict[tuple[str, str], set[str]] = {}
    for kind in WATCHED:
        out.setdefault((kind.group, kind.plural), set()).update(READ)
    out[("networking.k8s.io", "ingresses/status")] = {"patch"}  # status.py: merge patch
    for plural in ("gateways/status", "httproutes/status"):  # gateway_status.py: merge patch
        out[("gateway.networking.k8s.io", plural)] = {"patch"}
    out[("", "secrets")].add("get")  # secrets.py: the named non-TLS Secrets, one GET each
    out[("", "events")] = {"create", "get", "patch"}  # events.py: create, then bump count
    return {k: frozenset(v) for k, v in out.items()}


def split_by_scope() -> tuple[Access, Access]:
    """cluster_access() as (cluster-scoped kinds, namespaced ones): with `namespaces` set, the
    namespaced part can be granted by a Role in each watched namespace instead of cluster-wide
    (deploy/examples/rbac-namespaces.yaml). Events on cluster-scoped objects go to `default`."""
    cluster_scoped = {(k.group, k.plural) for k in WATCHED if not k.namespaced}
    access = cluster_access()
    return (
        {k: v for k, v in access.items() if k in cluster_scoped},
        {k: v for k, v in access.items() if k not in cluster_scoped},
    )


def namespace_access() -> Access:
    return {
        # watch.py: which nodes run a ready router (status, DNS); patch: draining.py, a draining
        # router annotates its own pod (resourceNames cannot name DaemonSet pods in advance);
        # get: termination.py reads its own pod's terminationGracePeriodSeconds at start
        (POD.group, POD.plural): READ | {"get", "patch"},
        ("coordination.k8s.io", "leases"): frozenset({"get", "create", "update"}),  # lease.py
    }


def acme_access() -> Access:
    """`storage: {secret: ...}` (kube/acme_store.py), granted by a Role in the storage namespace:
    its Secrets followed (list, watch), read after taking a Lease (get), written with
    resourceVersion preconditions (create, update), challenges and expired certificates deleted;
    a Lease per certificate and per account registration."""
    return {
        ("", "secrets"): frozenset({"get", "list", "watch", "create", "update", "delete"}),
        ("coordination.k8s.io", "leases"): frozenset({"get", "create", "update"}),
    }
