"""`ping`: a listener that serves only the readiness probe (Traefik's `ping` with its own entry point).

The API (`api.address`) serves the whole routing configuration and the drain action; in a
cluster it should stay on loopback. The kubelet's probes need an address on the pod's network:
`ping: {address: ":8082"}` listens there and answers only `GET`/`HEAD /ping`, exactly as the
API's `/ping` (200 once the first configuration is applied by every worker, 503 before that
and while draining); every other path is 404, every other method 405.
"""

from __future__ import annotations

from passerelle.settings.base import StrictModel


class Ping(StrictModel):
    """address: `host:port` of the ping listener (`:8082`: every address of the pod)."""

    address: str
