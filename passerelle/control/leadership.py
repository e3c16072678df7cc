"""The leadership seam: which replica may write shared state (DNS records, later Ingress status).

Several replicas run at once (a DaemonSet); each computes the same plans, one writes. A component
that writes asks `is_leader()` right before it writes, every time: leadership can be lost between
two reconciles, and a replica that is not sure it leads must not write. The Lease-based election
(issue 5, `coordination.k8s.io/v1` Lease, the same one status publishing uses) implements this
protocol; it should also call `on_change` callbacks it was given when leadership is gained or lost,
so that a new leader reconciles at once rather than at its next interval.

Outside a cluster (the manifests provider) there is one replica, always the leader: `AlwaysLeader`.
"""

from __future__ import annotations

from typing import Protocol


class Leadership(Protocol):
    def is_leader(self) -> bool:
        """True while this replica holds the lease and may write; cheap, called before each write."""
        ...


class AlwaysLeader:
    """One replica: it leads. The manifests provider's mode, and `passerelle dnssync`."""

    def is_leader(self) -> bool:
        return True
