"""`gateway`: which Gateway API objects are passerelle's, and which entry points their listeners use.

A GatewayClass is served when its `spec.controllerName` is `controllerName`. A Gateway listener
is placed on the entry points listed in `listeners` for its port (and, if given, its Gateway),
else on every entry point whose address has the listener's port (HTTP listeners on entry points
without TLS, HTTPS listeners on TLS ones), as Traefik's kubernetesGateway provider does.
Ports differ when the pod listens on 8080 behind a host port 80: `listeners: [{port: 80,
entryPoint: web}]`. See docs/gateway-api.md.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from passerelle.kube.gateway import CONTROLLER_NAME
from passerelle.settings.base import StrictModel, namespaced


class ListenerPlacement(StrictModel):
    """port: a Gateway listener port. entryPoint: the entry point its listeners go on.
    gateway: `namespace/name` to apply to that Gateway's listeners only (default: every Gateway)."""

    port: Annotated[int, Field(ge=1, le=65535)]
    entryPoint: str
    gateway: str = ""

    @field_validator("gateway")
    @classmethod
    def _gateway(cls, value: str) -> str:
        return namespaced(value)


class GatewaySettings(StrictModel):
    controllerName: Annotated[str, Field(min_length=1)] = CONTROLLER_NAME
    listeners: list[ListenerPlacement] = []
