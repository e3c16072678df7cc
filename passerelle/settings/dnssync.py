"""dnsSync: keep every served host's A/AAAA records on the healthy ingress nodes (docs/dns-sync.md)."""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, field_validator, model_validator

from passerelle.dnssync.desired import PlanOptions, Policy
from passerelle.dnssync.tsig import ALGORITHMS as TSIG_ALGORITHMS
from passerelle.dnssync.tsig import secret_error
from passerelle.kube.selector import parse_selector
from passerelle.settings.base import Duration, SettingsError, StrictModel

if TYPE_CHECKING:
    from passerelle.dnssync.rfc2136 import Rfc2136Options

_OWNER = re.compile(r"^[A-Za-z0-9][-A-Za-z0-9_.]{0,62}$")
_ZONE = re.compile(r"^([a-z0-9]([-a-z0-9_]*[a-z0-9])?\.)*[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
Selector = str | dict[str, str]


class Rfc2136(StrictModel):
    server: str
    port: Annotated[int, Field(ge=1, le=65535)] = 53
    tsigKeyName: str = ""
    tsigSecret: str = ""  # base64; or tsigSecretFile (a mounted Secret)
    tsigSecretFile: str = ""
    tsigAlgorithm: str = "hmac-sha256"
    timeout: Duration = 5.0
    batchSize: Annotated[int, Field(ge=1, le=1000)] = 50
    # A full zone transfer at least every this many reads; between them, a zone whose SOA serial
    # is unchanged (and that passerelle did not write) is not transferred again. 1: every read.
    fullTransferEvery: Annotated[int, Field(ge=1, le=1000)] = 10

    @field_validator("tsigAlgorithm")
    @classmethod
    def _algorithm(cls, value: str) -> str:
        if value.lower() not in TSIG_ALGORITHMS:
            raise ValueError(f"{value!r} is not one of {', '.join(TSIG_ALGORITHMS)}")
        return value.lower()

    @model_validator(mode="after")
    def _secret(self) -> Rfc2136:
        if self.tsigSecret and self.tsigSecretFile:
            raise ValueError("set tsigSecret or tsigSecretFile, not both")
        if self.tsigKeyName and not (self.tsigSecret or self.tsigSecretFile):
            raise ValueError("tsigKeyName needs tsigSecret or tsigSecretFile")
        if self.tsigSecret and (error := secret_error(self.tsigKeyName or "-", self.tsigSecret)):
            raise ValueError(f"tsigSecret: {error}")
        return self

    def options(self) -> Rfc2136Options:
        """Reads tsigSecretFile: call when starting."""
        from passerelle.dnssync.rfc2136 import Rfc2136Options

        secret = self.tsigSecret
        if self.tsigSecretFile:
            try:
                secret = Path(self.tsigSecretFile).read_text(encoding="utf-8").strip()
            except OSError as e:
                raise SettingsError(
                    f"dnsSync.provider.rfc2136.tsigSecretFile: {self.tsigSecretFile}: {e.strerror}"
                ) from None
        try:
            return Rfc2136Options(
                server=self.server, port=self.port, key_name=self.tsigKeyName, secret=secret,
                algorithm=self.tsigAlgorithm, timeout=self.timeout or 5.0, batch_size=self.batchSize,
                full_transfer_every=self.fullTransferEvery,
            )  # fmt: skip
        except ValueError as e:
            raise SettingsError(f"dnsSync.provider.rfc2136: {e}") from None


class DnsProviderSettings(StrictModel):
    rfc2136: Rfc2136 | None = None

    @model_validator(mode="after")
    def _one(self) -> DnsProviderSettings:
        if self.rfc2136 is None:
            raise ValueError("name a provider: rfc2136")
        return self


class Drain(StrictModel):
    # SIGTERM drains as `passerelle drain` does. Unset: it does with the Kubernetes provider (a
    # pod's SIGTERM is its node leaving service: kube/termination.py checks the grace period),
    # not with manifests alone (a SIGTERM on a laptop or from systemd stops at once).
    onSigterm: bool | None = None
    dnsWait: Duration | None = None  # after leaving DNS, before /ping turns 503; default: the ttl
    timeout: Duration = 60.0  # give up on leaving DNS (server down) after this, and go on
    # Keep serving with /ping at 503 this long before closing listeners: at least the readiness
    # probe's periodSeconds x failureThreshold (10 s = the DaemonSet's 5 s x 2), so the kubelet and
    # load balancers see the 503 and stop sending before the listeners close.
    acceptGrace: Duration = 10.0

    def on_sigterm(self, *, kubernetes: bool) -> bool:
        return kubernetes if self.onSigterm is None else self.onSigterm


class DnsSync(StrictModel):
    zones: Annotated[list[str], Field(min_length=1)]
    provider: DnsProviderSettings
    ownerId: str = "default"
    ttl: Annotated[int, Field(ge=1, le=86400)] = 60
    policy: Literal["sync", "upsert-only"] = "sync"
    interval: Annotated[Duration, Field(gt=0)] = 60.0
    nodeSelector: Selector = "role=ingress"
    addressType: Literal["InternalIP", "ExternalIP"] = "InternalIP"
    target: Literal["nodes"] | Annotated[list[str], Field(min_length=1)] = "nodes"
    requirePod: bool = True
    podSelector: Selector = "app.kubernetes.io/name=passerelle"
    podNamespace: str = ""
    nodeName: str = ""  # this process's node; default $NODE_NAME, else the host name
    # A node eligible again (Ready, uncordoned, ...) joins DNS only after this long (a flapping
    # node is not added and removed each time); leaving DNS is immediate. 0: no wait.
    settleTime: Duration = 30.0
    # Deleting more than this share of the owned names in one reconcile (with 10 or more owned)
    # is withheld until `passerelle dnssync --force` (octoDNS's unsafe-plan guard); 100: off.
    maxDeletePercent: Annotated[int, Field(ge=1, le=100)] = 30
    drain: Drain = Drain()

    @field_validator("zones")
    @classmethod
    def _zones(cls, value: list[str]) -> list[str]:
        out = []
        for zone in value:
            name = zone.lower().rstrip(".")
            if not _ZONE.match(name):
                raise ValueError(f"{zone!r} is not a DNS zone name")
            out.append(name)
        return out

    @field_validator("ownerId")
    @classmethod
    def _owner(cls, value: str) -> str:
        if not _OWNER.match(value):
            raise ValueError(f"{value!r}: letters, digits, '-', '_' and '.', at most 63")
        return value

    @field_validator("nodeSelector", "podSelector")
    @classmethod
    def _selector(cls, value: Selector) -> Selector:
        parse_selector(value)  # ValueError names the bad part
        return value

    @field_validator("target")
    @classmethod
    def _target(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, str):
            return value
        try:
            return [ipaddress.ip_address(v).compressed for v in value]
        except ValueError as e:
            raise ValueError(f"{e} (give `nodes` or a list of IP addresses)") from None

    def plan_options(self) -> PlanOptions:
        return PlanOptions(
            zones=tuple(self.zones),
            owner=self.ownerId,
            ttl=self.ttl,
            policy=Policy(self.policy),
            node_selector=parse_selector(self.nodeSelector),
            address_type=self.addressType,
            pod_selector=parse_selector(self.podSelector) if self.requirePod else None,
            pod_namespace=self.podNamespace,
            targets=tuple(self.target) if isinstance(self.target, list) else (),
            max_delete_percent=self.maxDeletePercent,
        )

    def node_name(self) -> str:
        return self.nodeName or os.environ.get("NODE_NAME", "") or socket.gethostname()

    def dns_wait(self) -> float:
        return float(self.ttl) if self.drain.dnsWait is None else self.drain.dnsWait


def resolve_dnssync_paths(settings: DnsSync, base: Path) -> DnsSync:
    rfc2136 = settings.provider.rfc2136
    if rfc2136 is None or not rfc2136.tsigSecretFile or Path(rfc2136.tsigSecretFile).is_absolute():
        return settings
    resolved = rfc2136.model_copy(update={"tsigSecretFile": str((base / rfc2136.tsigSecretFile).resolve())})
    return settings.model_copy(
        update={"provider": settings.provider.model_copy(update={"rfc2136": resolved})}
    )
