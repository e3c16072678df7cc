"""A draining router marks its own Pod so that the DNS sync leader takes its node out of DNS.

Only the Lease holder writes DNS (docs/dns-sync.md), so a standby that drains cannot remove its
node itself: it annotates its own Pod `passerelle.io/draining: "true"` (a strategic merge patch of
metadata.annotations), the leader's pod watch sees it, and the plan (dnssync/desired.py) drops the
node. The leader writes the annotation too, so that a successor that takes over mid-drain keeps
the node out. The Pod is named by the downward API: $POD_NAME and $POD_NAMESPACE (the latter
falls back to the kubeconfig's namespace), as deploy/40-daemonset.yaml sets them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass

from passerelle.kube.client import ApiClient, KubeError
from passerelle.kube.nodes import DRAINING

log = logging.getLogger("passerelle.drain")


@dataclass(frozen=True, slots=True, kw_only=True)
class OwnPod:
    namespace: str
    name: str  # "": unknown ($POD_NAME not set)

    @classmethod
    def from_env(cls, fallback_namespace: str, env: Mapping[str, str] = os.environ) -> OwnPod:
        return cls(namespace=env.get("POD_NAMESPACE") or fallback_namespace, name=env.get("POD_NAME", ""))

    @property
    def path(self) -> str:
        return f"/api/v1/namespaces/{self.namespace}/pods/{self.name}"


def draining_patch() -> dict[str, object]:
    return {"metadata": {"annotations": {DRAINING: "true"}}}


class DrainMark:
    """`write()`: annotate the own Pod; "" when done, else why not (for the drain's status)."""

    def __init__(self, client: ApiClient, pod: OwnPod) -> None:
        self._client = client
        self.pod = pod

    async def write(self) -> str:
        if not self.pod.name:
            return (
                "$POD_NAME is not set (set it from the downward API, metadata.name): the pod is not annotated"
            )
        try:
            await self._client.patch(self.pod.path, draining_patch())
        except KubeError as e:
            return f"annotating pod {self.pod.namespace}/{self.pod.name} {DRAINING}: {e}"
        log.info("drain: annotated pod %s/%s %s=true", self.pod.namespace, self.pod.name, DRAINING)
        return ""
