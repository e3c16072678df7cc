"""Static configuration: YAML with Traefik-like camelCase keys, checked strictly at the boundary.

Every key has a default (below, and in docs/configuration.md). An unknown key or a wrong type is a
`SettingsError` naming the key and the line it is on. Durations accept `30s`, `1m`, `500ms`, `1h`
or a number of seconds. Relative paths are read relative to the config file's directory.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from passerelle.kube.ingress import IngressOptions
from passerelle.kube.placement import EntryPointInfo
from passerelle.proxy.options import EntryPointOptions, ForwardingOptions

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def _duration(value: Any) -> Any:
    if isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError(f"{value!r} is not a duration (examples: 30s, 1m, 500ms)")
        return float(match.group(1)) * _UNITS[match.group(2)]
    return value


Duration = Annotated[float, BeforeValidator(_duration), Field(ge=0)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RespondingTimeouts(_Model):
    headerTimeout: Duration = 30.0
    idleTimeout: Duration = 180.0


class Limits(_Model):
    maxRequestLineBytes: Annotated[int, Field(ge=256)] = 8192
    maxHeaderBytes: Annotated[int, Field(ge=1024)] = 32768


class EntryPointTransport(_Model):
    respondingTimeouts: RespondingTimeouts = RespondingTimeouts()
    limits: Limits = Limits()


class RedirectEntryPoint(_Model):
    """`http.redirections.entryPoint`, Traefik's defaults (`pkg/config/static/entrypoints.go`)."""

    to: str  # an entry point name, or a port (":443", "443")
    scheme: Literal["http", "https"] = "https"
    permanent: bool = True
    priority: int | None = None  # accepted for Traefik configs; the redirect always beats Ingress routes


class Redirections(_Model):
    entryPoint: RedirectEntryPoint | None = None


class EntryPointHttp(_Model):
    redirections: Redirections = Redirections()


class EntryPoint(_Model):
    address: str
    # Presence makes this a TLS entry point (Ingresses with spec.tls are placed here). Its keys
    # belong to the TLS termination work; this branch only reads whether it is there.
    tls: dict[str, Any] | None = None
    http: EntryPointHttp = EntryPointHttp()

    transport: EntryPointTransport = EntryPointTransport()


class ForwardingTimeouts(_Model):
    dialTimeout: Duration = 30.0
    responseHeaderTimeout: Duration = 60.0
    idleConnTimeout: Duration = 90.0


class ServersTransport(_Model):
    forwardingTimeouts: ForwardingTimeouts = ForwardingTimeouts()
    maxIdleConnsPerHost: Annotated[int, Field(ge=0)] = 64


class ManifestsProviderSettings(_Model):
    directory: str
    watch: bool = True
    ingressClasses: list[str] = ["passerelle", "traefik"]
    ingressWithoutClass: bool = True


class Providers(_Model):
    manifests: ManifestsProviderSettings | None = None


class Api(_Model):
    address: str = "127.0.0.1:9000"


class Log(_Model):
    level: Annotated[str, Field(pattern="^(DEBUG|INFO|WARNING|ERROR)$")] = "INFO"


class Settings(_Model):
    entryPoints: dict[str, EntryPoint] = {"web": EntryPoint(address=":8080")}
    providers: Providers = Providers()
    api: Api = Api()
    serversTransport: ServersTransport = ServersTransport()
    log: Log = Log()
    graceTimeout: Duration = 10.0
    workers: Literal["auto"] | Annotated[int, Field(ge=1, le=256)] = "auto"

    def worker_count(self) -> int:
        """`auto`: one worker per CPU this process may run on."""
        return len(os.sched_getaffinity(0)) if self.workers == "auto" else int(self.workers)

    # -- resolved views for the components ---------------------------------------------------
    def entrypoint_options(self) -> list[EntryPointOptions]:
        out = []
        for name, ep in self.entryPoints.items():
            host, port = split_address(ep.address)
            timeouts, limits = ep.transport.respondingTimeouts, ep.transport.limits
            redirect = ep.http.redirections.entryPoint
            out.append(
                EntryPointOptions(
                    name=name,
                    host=host,
                    port=port,
                    header_timeout=timeouts.headerTimeout,
                    idle_timeout=timeouts.idleTimeout,
                    max_request_line=limits.maxRequestLineBytes,
                    max_header_bytes=limits.maxHeaderBytes,
                    redirect_scheme=redirect.scheme if redirect else "",
                    redirect_port=self._redirect_port(redirect.to) if redirect else None,
                    redirect_permanent=redirect.permanent if redirect else True,
                )
            )
        return out

    def _redirect_port(self, to: str) -> int:
        """`to` names an entry point (its port) or is a port itself, as in Traefik."""
        target = self.entryPoints.get(to)
        if target is not None:
            return split_address(target.address)[1]
        port = to.removeprefix(":")
        if port.isdigit() and 0 < int(port) < 65536:
            return int(port)
        raise SettingsError(
            f"http.redirections.entryPoint.to: {to!r} is neither an entry point ({', '.join(self.entryPoints)}) nor a port"
        )

    def forwarding_options(self) -> ForwardingOptions:
        t = self.serversTransport.forwardingTimeouts
        return ForwardingOptions(
            dial_timeout=t.dialTimeout,
            response_header_timeout=t.responseHeaderTimeout,
            idle_conn_timeout=t.idleConnTimeout,
            max_idle_per_host=self.serversTransport.maxIdleConnsPerHost,
        )

    def ingress_options(self) -> IngressOptions:
        entrypoints = tuple(
            EntryPointInfo(name=name, tls=ep.tls is not None, port=split_address(ep.address)[1])
            for name, ep in self.entryPoints.items()
        )
        manifests = self.providers.manifests
        if manifests is None:
            return IngressOptions(entrypoints=entrypoints)
        return IngressOptions(
            ingress_classes=tuple(manifests.ingressClasses),
            ingress_without_class=manifests.ingressWithoutClass,
            entrypoints=entrypoints,
        )


class SettingsError(Exception):
    """The static configuration is unusable; the message is for the operator, one line per error."""


def split_address(address: str) -> tuple[str, int]:
    """ ":8080" -> ("", 8080); "127.0.0.1:80"; "[::1]:80" -> ("::1", 80)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise SettingsError(f"address {address!r} must be host:port or :port")
    return host.strip("[]"), int(port)


def load_settings(path: Path) -> Settings:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SettingsError(f"{path}: config file not found") from None
    except OSError as e:
        raise SettingsError(f"{path}: cannot read config file: {e.strerror}") from None
    return parse_settings(text, source=str(path), base=path.parent)


def parse_settings(text: str, *, source: str = "<config>", base: Path | None = None) -> Settings:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text) if node is not None else {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise SettingsError(f"{source}{line}: not valid YAML: {getattr(e, 'problem', e)}") from None
    if not isinstance(data, dict):
        raise SettingsError(f"{source}:1: the configuration must be a mapping of keys")
    try:
        settings = Settings.model_validate(data)
    except ValidationError as e:
        lines: list[str] = []
        for error in e.errors():
            loc = [str(p) for p in error["loc"]]
            lineno = _line_of(node, loc)
            what = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
            lines.append(f"{source}:{lineno}: {'.'.join(loc)}: {what}")
        raise SettingsError("\n".join(lines)) from None
    for name, ep in settings.entryPoints.items():
        split_address(ep.address)
        redirect = ep.http.redirections.entryPoint
        if redirect is not None:
            if redirect.to == name:
                raise SettingsError(
                    f"{source}: entryPoints.{name}.http.redirections.entryPoint.to: redirects to itself"
                )
            try:
                settings._redirect_port(redirect.to)
            except SettingsError as e:
                raise SettingsError(f"{source}: entryPoints.{name}.{e}") from None
    split_address(settings.api.address)
    manifests = settings.providers.manifests
    if manifests is not None and base is not None and not Path(manifests.directory).is_absolute():
        resolved = (base / manifests.directory).resolve()
        settings = settings.model_copy(
            update={
                "providers": Providers(manifests=manifests.model_copy(update={"directory": str(resolved)}))
            }
        )
    return settings


def _line_of(node: yaml.Node | None, loc: list[str]) -> int:
    """The line of the deepest node along `loc` that exists in the document (1-based)."""
    line = node.start_mark.line + 1 if node is not None else 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == part:
                    line, node = key.start_mark.line + 1, value
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
            node = node.value[int(part)]
            line = node.start_mark.line + 1
        else:
            return line
    return line
