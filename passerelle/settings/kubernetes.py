"""providers.kubernetes: the live provider's keys (docs/kubernetes.md, docs/configuration.md)."""

from __future__ import annotations

from passerelle.settings.base import Duration, StrictModel


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
