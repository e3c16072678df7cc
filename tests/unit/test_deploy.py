"""deploy/: the manifests parse, the RBAC grants exactly what the code uses, the DaemonSet fits the config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from passerelle.kube.ingress import CONTROLLER
from passerelle.kube.rbac import acme_access, cluster_access, namespace_access
from passerelle.kube.termination import Budget, grace_problem, read_termination, stop_budget
from passerelle.model import ObjectRef
from passerelle.settings import parse_settings, split_address

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
POD = ObjectRef(kind="Pod", namespace="passerelle", name="passerelle-x7k2p")


def objects() -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for path in sorted(DEPLOY.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            out[(doc["kind"], doc["metadata"]["name"])] = doc
    return out


def granted(rules: list[dict[str, Any]]) -> dict[tuple[str, str], frozenset[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out.setdefault((group, resource), set()).update(rule["verbs"])
    return {k: frozenset(v) for k, v in out.items()}


def test_rbac_grants_exactly_what_the_code_uses() -> None:
    found = objects()
    assert granted(found[("ClusterRole", "passerelle")]["rules"]) == cluster_access()
    assert granted(found[("Role", "passerelle")]["rules"]) == namespace_access()
    for kind, role in (("ClusterRoleBinding", "ClusterRole"), ("RoleBinding", "Role")):
        binding = found[(kind, "passerelle")]
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": role,
            "name": "passerelle",
        }
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "passerelle", "namespace": "passerelle"}
        ]


def test_acme_secret_storage_is_granted_by_a_role_in_the_router_namespace_only() -> None:
    found = objects()
    role = found[("Role", "passerelle-acme")]
    assert role["metadata"]["namespace"] == "passerelle"
    assert granted(role["rules"]) == acme_access()
    binding = found[("RoleBinding", "passerelle-acme")]
    assert binding["metadata"]["namespace"] == "passerelle"
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "passerelle-acme",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "passerelle", "namespace": "passerelle"}
    ]
    # cluster-wide, Secrets are only read: no ClusterRole lets the router write one
    cluster = granted(found[("ClusterRole", "passerelle")]["rules"])
    assert cluster[("", "secrets")] <= {"get", "list", "watch"}


def test_the_daemonset_matches_the_static_configuration() -> None:
    found = objects()
    settings = parse_settings(found[("ConfigMap", "passerelle")]["data"]["passerelle.yaml"])
    assert settings.providers.kubernetes is not None
    pod = found[("DaemonSet", "passerelle")]["spec"]["template"]
    spec, [container] = pod["spec"], pod["spec"]["containers"]
    assert spec["nodeSelector"] == {"role": "ingress"} and spec["serviceAccountName"] == "passerelle"
    ports = {p["name"]: p for p in container["ports"]}
    assert (ports["web"]["hostPort"], ports["websecure"]["hostPort"]) == (80, 443)
    for name in ("web", "websecure"):
        assert ports[name]["containerPort"] == split_address(settings.entryPoints[name].address)[1]
    assert "api" not in ports and split_address(settings.api.address)[0] == "127.0.0.1"  # loopback only
    assert (
        settings.ping is not None
        and ports["ping"]["containerPort"] == split_address(settings.ping.address)[1]
    )
    assert container["readinessProbe"]["httpGet"] == {"path": "/ping", "port": "ping"}
    # Prometheus scrapes the metrics listener (only /metrics) where the annotations say
    prometheus = settings.metrics.prometheus
    assert prometheus is not None and prometheus.address
    metrics_port = split_address(prometheus.address)[1]
    assert ports["metrics"]["containerPort"] == metrics_port and "hostPort" not in ports["metrics"]
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(metrics_port)
    assert annotations["prometheus.io/path"] == "/metrics"
    # liveness must not follow /ping's 503 (draining, no configuration yet): a restart cures neither
    assert container["livenessProbe"] == container["livenessProbe"] | {"tcpSocket": {"port": "ping"}}
    assert "httpGet" not in container["livenessProbe"]
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["resources"]["limits"]["memory"]
    namespace = found[("Namespace", "passerelle")]["metadata"]["labels"]
    assert namespace["pod-security.kubernetes.io/enforce"] == "privileged"  # hostPort needs it
    # SIGTERM without dnsSync: the preStop pause, then graceTimeout
    assert read_termination(pod).pre_stop == 5 and stop_budget(settings) == Budget(
        grace=settings.graceTimeout
    )
    assert grace_problem(stop_budget(settings), read_termination(pod), POD) is None
    # the status writer finds the router's pods by this label
    assert pod["metadata"]["labels"]["app.kubernetes.io/name"] == "passerelle"
    assert settings.providers.kubernetes.ingressEndpoint is not None
    assert settings.providers.kubernetes.ingressEndpoint.podSelector == "app.kubernetes.io/name=passerelle"
    assert "preStop" in container["lifecycle"]
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in container["env"]}
    assert env == {
        "POD_NAME": "metadata.name",
        "POD_NAMESPACE": "metadata.namespace",
        "NODE_NAME": "spec.nodeName",
    }


def with_dns_sync(config: str) -> str:
    """The ConfigMap's static configuration with its commented `dnsSync` section turned on."""
    lines = config.splitlines()
    start = lines.index("# dnsSync:")
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("#")), len(lines))
    section = [line.removeprefix("# ") for line in lines[start:end]]
    assert section[0] == "dnsSync:" and all(line.startswith("  ") for line in section[1:]), section
    return "\n".join(lines[:start] + section + lines[end:]) + "\n"


def test_the_commented_dns_sync_section_is_valid_and_the_pod_drains_within_its_grace_period() -> None:
    found = objects()
    settings = parse_settings(with_dns_sync(found[("ConfigMap", "passerelle")]["data"]["passerelle.yaml"]))
    sync = settings.dnsSync
    assert sync is not None and sync.provider.rfc2136 is not None
    assert sync.drain.onSigterm is None  # the default: SIGTERM drains under the Kubernetes provider
    budget = stop_budget(settings)
    assert budget == Budget(leave_dns=60, dns_wait=sync.ttl, accept_grace=10, grace=settings.graceTimeout)
    pod = found[("DaemonSet", "passerelle")]["spec"]["template"]
    termination = read_termination(pod)
    assert grace_problem(budget, termination, POD) is None
    assert termination.grace_period - termination.pre_stop - budget.total >= 10  # room to exit
    # the TSIG key comes from the Secret the DaemonSet mounts (optional while dnsSync is off)
    [container] = pod["spec"]["containers"]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    key_file = Path(sync.provider.rfc2136.tsigSecretFile)
    assert mounts["tsig"]["mountPath"] == str(key_file.parent) and mounts["tsig"]["readOnly"]
    assert not key_file.is_relative_to(mounts["config"]["mountPath"])  # no mount point in a configMap
    assert volumes["tsig"]["secret"] == {"secretName": "passerelle-tsig", "optional": True}
    [secret] = yaml.safe_load_all((DEPLOY / "examples" / "dns-tsig-secret.yaml").read_text())
    assert (secret["kind"], secret["metadata"]) == (
        "Secret",
        {"name": "passerelle-tsig", "namespace": "passerelle"},
    )
    assert list(secret["stringData"]) == [key_file.name]
    # the probe sees /ping's 503 before the listeners close (acceptGrace)
    probe = container["readinessProbe"]
    assert probe["periodSeconds"] * probe["failureThreshold"] <= sync.drain.acceptGrace
    # DNS sync finds the router's pods by the pod template's label, and their nodes as the DaemonSet does
    assert sync.podSelector == "app.kubernetes.io/name=passerelle"
    assert pod["metadata"]["labels"]["app.kubernetes.io/name"] == "passerelle"
    assert sync.nodeSelector == "role=ingress" and pod["spec"]["nodeSelector"] == {"role": "ingress"}


def test_the_ingress_class_names_passerelle_as_its_controller() -> None:
    assert objects()[("IngressClass", "passerelle")]["spec"]["controller"] == CONTROLLER


def test_the_per_namespace_rbac_example_grants_the_same_split_by_scope() -> None:
    from passerelle.kube.rbac import split_by_scope

    docs = list(yaml.safe_load_all((DEPLOY / "examples" / "rbac-namespaces.yaml").read_text()))
    roles = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    cluster_scoped, namespaced = split_by_scope()
    assert granted(roles[("ClusterRole", "passerelle-cluster-scoped")]["rules"]) == cluster_scoped
    assert granted(roles[("ClusterRole", "passerelle-namespaced")]["rules"]) == namespaced
    bound = sorted(
        d["metadata"]["namespace"]
        for d in docs
        if d["kind"] == "RoleBinding" and d["roleRef"]["name"] == "passerelle-namespaced"
    )
    assert bound == ["team-a", "team-b"]
    assert granted(roles[("Role", "passerelle-events")]["rules"]) == {
        ("", "events"): namespaced[("", "events")]
    }
