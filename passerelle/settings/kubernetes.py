"""providers.kubernetes: the live provider's keys (docs/kubernetes.md, docs/configuration.md)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, model_validator

from passerelle.kube.selector import parse_selector
from passerelle.settings.base import Duration, StrictModel, namespaced


def _selector(value: str) -> str:
    parse_selector(value)
    return value


class IngressEndpoint(StrictModel):
    """What Ingress status.loadBalancer.ingress says (Traefik's keys, plus the node rule's).
    ip/hostname: fixed addresses (a VIP); publishedService: `namespace/name` of a Service whose
    load balancer addresses are copied; neither: the nodes matching `nodeSelector` that are Ready,
    schedulable and run a ready pod matching `podSelector` (in the pod's namespace)."""

    ip: list[str] = []
    hostname: str = ""
    publishedService: Annotated[str, AfterValidator(namespaced)] = ""
    nodeSelector: Annotated[str, AfterValidator(_selector)] = "role=ingress"
    podSelector: Annotated[str, AfterValidator(_selector)] = "app.kubernetes.io/name=passerelle"


class LeaderElection(StrictModel):
    """The Lease replicas elect the one that writes status and Events with.
    leaseNamespace: "" for $POD_NAMESPACE, then the kubeconfig's namespace; identity: "" for
    $POD_NAME, then the host name."""

    leaseName: str = "passerelle"
    leaseNamespace: str = ""
    identity: str = ""
    leaseDuration: Duration = 15.0
    renewDeadline: Duration = 10.0
    retryPeriod: Duration = 2.0

    @model_validator(mode="after")
    def _ordered(self) -> LeaderElection:
        if not self.retryPeriod < self.renewDeadline < self.leaseDuration:
            raise ValueError("needs retryPeriod < renewDeadline < leaseDuration")
        return self


class KubernetesProviderSettings(StrictModel):
    """kubeconfig: a kubeconfig file; "" reads the in-cluster service account, then
        $KUBECONFIG, then ~/.kube/config.
    context: the kubeconfig context; "" for its current-context.
    namespaces: the namespaces watched; empty for all.
    labelSelector: only Ingresses matching it are read (as Traefik's), e.g. `app=web,tier!=dev`.
    ingressClasses, ingressWithoutClass: which Ingresses are ours, as for providers.manifests.
    throttle: a change waits this long for others before a new configuration is built, so a
        burst of changes (a rollout's EndpointSlice updates) makes one version, not hundreds.
    """

    kubeconfig: str = ""
    context: str = ""
    namespaces: list[str] = []
    labelSelector: str = ""
    ingressClasses: list[str] = ["passerelle", "traefik"]
    ingressWithoutClass: bool = True
    throttle: Duration = 0.5
    ingressEndpoint: IngressEndpoint | None = IngressEndpoint()  # null: never write status
    leaderElection: LeaderElection = LeaderElection()
    events: bool = True  # Problems on objects become Kubernetes Events on them (by the leader)
