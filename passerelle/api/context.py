"""What the API knows besides one configuration version: the static configuration's parts."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from passerelle.proxy.options import EntryPointOptions
from passerelle.tls.contexts import TlsStatic
from passerelle.tls.options import DEFAULT

if TYPE_CHECKING:
    from passerelle.settings import Settings


@dataclass(frozen=True, slots=True, kw_only=True)
class Context:
    """entrypoints: as the workers got them, with the ports they listen on (a configured `:0`
    resolved to the bound port). tls: the TLS options and the default certificate, None when no
    entry point terminates TLS. provider: where the configuration comes from, for people."""

    entrypoints: tuple[EntryPointOptions, ...]
    tls: TlsStatic | None = None
    provider: str = "manifests"

    @classmethod
    def of(cls, settings: Settings, tls: TlsStatic | None, ports: Mapping[str, int] | None = None) -> Context:
        """From the static configuration; `ports`: where the entry points were bound, if known."""
        entrypoints = tuple(
            dataclasses.replace(ep, port=ports[ep.name]) if ports and ep.name in ports else ep
            for ep in settings.entrypoint_options()
        )
        provider = "kubernetes" if settings.providers.kubernetes is not None else "manifests"
        return cls(entrypoints=entrypoints, tls=tls, provider=provider)

    def entrypoint(self, name: str) -> EntryPointOptions | None:
        return next((ep for ep in self.entrypoints if ep.name == name), None)

    def tls_entry_options(self) -> list[str]:
        """The TLS option of every TLS entry point, in order, without repeats."""
        return list(dict.fromkeys(ep.tls_options or DEFAULT for ep in self.entrypoints if ep.tls))


def source_key(source: str) -> tuple[str, str, str]:
    """A router's `source` ("Ingress ns/name", "HTTPRoute ns/name rule 2") -> the object key
    manifests' origins use."""
    kind, _, rest = source.partition(" ")
    namespace, _, name = rest.partition(" ")[0].partition("/")
    return (kind, namespace, name)
