"""Providers: where the cluster's objects come from: a directory of manifests, or the Kubernetes API."""

from __future__ import annotations

from passerelle.settings.base import StrictModel
from passerelle.settings.kubernetes import KubernetesProviderSettings


class ManifestsProviderSettings(StrictModel):
    directory: str
    watch: bool = True
    ingressClasses: list[str] = ["passerelle", "traefik"]
    ingressWithoutClass: bool = True


class Providers(StrictModel):
    manifests: ManifestsProviderSettings | None = None
    kubernetes: KubernetesProviderSettings | None = None
