"""The API listener: where it listens, and whether it serves the dashboard."""

from __future__ import annotations

from passerelle.settings.base import StrictModel


class Api(StrictModel):
    """address: `host:port` of the API (default loopback). Anything else exposes the whole routing
    configuration (hosts, backends, certificates' names) to whoever can reach it: passerelle logs a
    warning at start. dashboard: serve the dashboard at `/dashboard/` (default true)."""

    address: str = "127.0.0.1:9000"
    dashboard: bool = True
