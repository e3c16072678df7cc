"""Static configuration: YAML with Traefik-like camelCase keys, checked strictly at the boundary.

Every key has a default (below, and in docs/configuration.md). An unknown key or a wrong type is a
`SettingsError` naming the key and the line it is on. Durations accept `30s`, `1m`, `500ms`, `1h`
or a number of seconds. Relative paths are read relative to the config file's directory.

One module a section (`entrypoints.py`, `tls.py`, ...) built on `base.StrictModel`; this one holds
the document's root, the resolved views the components take, and loading with file:line errors.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import Field, ValidationError

from passerelle.kube.acme import AcmeTranslation
from passerelle.kube.gateway import GatewayOptions
from passerelle.kube.ingress import IngressOptions
from passerelle.kube.placement import EntryPointInfo
from passerelle.kube.tls import TlsTranslation
from passerelle.proxy.options import EntryPointOptions, ForwardingOptions
from passerelle.settings.acme import CertificatesResolver, check_secret_storage, resolve_acme_paths
from passerelle.settings.api import Api
from passerelle.settings.base import Duration, SettingsError, StrictModel, reason, split_address
from passerelle.settings.dnssync import DnsSync, resolve_dnssync_paths
from passerelle.settings.entrypoints import EntryPoint
from passerelle.settings.gateway import GatewaySettings
from passerelle.settings.observability import AccessLog, Metrics, RequestId
from passerelle.settings.ping import Ping
from passerelle.settings.providers import Providers
from passerelle.settings.tls import Tls, TlsOption, resolve_tls_paths
from passerelle.tls.contexts import TlsStatic
from passerelle.tls.options import DEFAULT
from passerelle.tls.store import CertificateError, generate_default, parse_ca_bundle, parse_pair

__all__ = ["Settings", "SettingsError", "load_settings", "parse_settings", "split_address"]


class ForwardingTimeouts(StrictModel):
    dialTimeout: Duration = 30.0
    responseHeaderTimeout: Duration = 60.0
    idleConnTimeout: Duration = 90.0


class ServersTransport(StrictModel):
    forwardingTimeouts: ForwardingTimeouts = ForwardingTimeouts()
    maxIdleConnsPerHost: Annotated[int, Field(ge=0)] = 64


class Log(StrictModel):
    level: Annotated[str, Field(pattern="^(DEBUG|INFO|WARNING|ERROR)$")] = "INFO"
    format: Literal["text", "json"] = "text"


class Settings(StrictModel):
    entryPoints: dict[str, EntryPoint] = {"web": EntryPoint(address=":8080")}
    providers: Providers = Providers()
    api: Api = Api()
    serversTransport: ServersTransport = ServersTransport()
    log: Log = Log()
    metrics: Metrics = Metrics()
    accessLog: AccessLog | None = None
    tls: Tls = Tls()
    certificatesResolvers: dict[str, CertificatesResolver] = {}
    graceTimeout: Duration = 10.0
    workers: Literal["auto"] | Annotated[int, Field(ge=1, le=256)] = "auto"
    dnsSync: DnsSync | None = None
    ping: Ping | None = None  # a listener serving only /ping (settings/ping.py)
    requestId: RequestId = RequestId()  # X-Request-Id (settings/observability.py)
    gateway: GatewaySettings = GatewaySettings()  # Gateway API objects (settings/gateway.py)

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
                    tls=ep.tls is not None,
                    tls_options=ep.tls.options if ep.tls is not None else "",
                    request_ids=self.requestId.generate,
                )
            )
        return out

    def _redirect_port(self, to: str) -> int | None:
        """`to` names an entry point (its port) or is a port itself, as in Traefik. None: the
        scheme's default, for an entry point on port 0 (any free port) that no client can be sent to."""
        target = self.entryPoints.get(to)
        if target is not None:
            return split_address(target.address)[1] or None
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
        ports = {name: split_address(ep.address)[1] for name, ep in self.entryPoints.items()}
        entrypoints = []
        for name, ep in self.entryPoints.items():
            redirect = ep.http.redirections.entryPoint
            to = ""
            if redirect is not None:
                # `to` names an entry point, or is a port: the entry point listening there, if any.
                to = redirect.to if redirect.to in ports else ""
                if not to:
                    port = self._redirect_port(redirect.to)
                    to = next((n for n, p in ports.items() if p == port and n != name), "")
            entrypoints.append(
                EntryPointInfo(
                    name=name,
                    tls=ep.tls is not None,
                    port=ports[name],
                    redirect_scheme=redirect.scheme if redirect is not None else "",
                    redirect_to=to,
                )
            )
        gateway = GatewayOptions(
            controller=self.gateway.controllerName,
            listeners=tuple((p.port, p.entryPoint, p.gateway) for p in self.gateway.listeners),
        )
        provider = self.providers.manifests or self.providers.kubernetes
        if provider is None:
            return IngressOptions(entrypoints=tuple(entrypoints), tls=self.tls_translation(), gateway=gateway)
        return IngressOptions(
            ingress_classes=tuple(provider.ingressClasses),
            ingress_without_class=provider.ingressWithoutClass,
            entrypoints=tuple(entrypoints),
            tls=self.tls_translation(),
            gateway=gateway,
        )

    def tls_translation(self) -> TlsTranslation:
        default = self.tls.defaultCertificate
        return TlsTranslation(
            options=frozenset(self.tls.options) | {DEFAULT},
            static_default=DEFAULT in self.tls.options,
            ca_secrets=tuple(
                (name, o.clientAuth.caSecret) for name, o in self.tls.options.items() if o.clientAuth.caSecret
            ),
            default_secret=default.secret if default is not None else "",
            acme=AcmeTranslation(
                resolvers=frozenset(self.certificatesResolvers),
                entrypoints=tuple(
                    (name, ep.tls.certResolver if ep.tls is not None else "")
                    for name, ep in self.entryPoints.items()
                ),
            ),
        )

    def configured_secrets(self) -> tuple[str, ...]:
        """`namespace/name` of the Secrets the static configuration names (the provider watches them)."""
        t = self.tls_translation()
        return tuple(
            dict.fromkeys(
                [name for _, name in t.ca_secrets] + ([t.default_secret] if t.default_secret else [])
            )
        )

    def tls_static(self) -> TlsStatic | None:
        """The TLS options with their caFiles read, and the default certificate (read from its
        files, or generated); None when no entry point terminates TLS. Reads files: call once."""
        if not any(ep.tls is not None for ep in self.entryPoints.values()):
            return None
        options = {}
        for name, option in {DEFAULT: TlsOption(), **self.tls.options}.items():
            ca_pem = ""
            for path in option.clientAuth.caFiles:
                try:
                    ca_pem += parse_ca_bundle(Path(path).read_bytes())
                except (OSError, CertificateError) as e:
                    why = e.strerror if isinstance(e, OSError) else str(e)
                    raise SettingsError(f"tls.options.{name}.clientAuth.caFiles: {path}: {why}") from None
            options[name] = option.resolve(name, ca_pem)
        default = self.tls.defaultCertificate
        if default is None or default.secret:
            certificate = generate_default()
        else:
            try:
                pair = parse_pair(
                    Path(default.certFile).read_bytes(), Path(default.keyFile).read_bytes(), source="file"
                )
            except (OSError, CertificateError) as e:
                raise SettingsError(f"tls.defaultCertificate: {reason(e)}") from None
            certificate = dataclasses.replace(pair.certificate, default=True, source=default.certFile)
        return TlsStatic(options=options, default_certificate=certificate)


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
        if ep.tls is not None and ep.tls.options not in settings.tls.options and ep.tls.options != DEFAULT:
            where = _line_of(node, ["entryPoints", name, "tls", "options"])
            raise SettingsError(
                f"{source}:{where}: entryPoints.{name}.tls.options: TLS option {ep.tls.options!r} is not "
                f"defined in tls.options"
            )
    split_address(settings.api.address)
    if settings.ping is not None:
        split_address(settings.ping.address)
    if settings.metrics.prometheus is not None and settings.metrics.prometheus.address:
        split_address(settings.metrics.prometheus.address)
    if settings.providers.manifests is not None and settings.providers.kubernetes is not None:
        where = _line_of(node, ["providers", "kubernetes"])
        raise SettingsError(
            f"{source}:{where}: providers: configure one of manifests and kubernetes, not both"
        )
    kube = settings.providers.kubernetes
    if kube is not None and kube.kubeconfig and base is not None:
        path = Path(kube.kubeconfig).expanduser()
        resolved_kube = kube.model_copy(
            update={"kubeconfig": str(path if path.is_absolute() else (base / path).resolve())}
        )
        settings = settings.model_copy(
            update={"providers": settings.providers.model_copy(update={"kubernetes": resolved_kube})}
        )
    _check_resolvers(settings, source)
    manifests = settings.providers.manifests
    if manifests is not None and base is not None and not Path(manifests.directory).is_absolute():
        resolved = (base / manifests.directory).resolve()
        settings = settings.model_copy(
            update={
                "providers": settings.providers.model_copy(
                    update={"manifests": manifests.model_copy(update={"directory": str(resolved)})}
                )
            }
        )
    if base is not None:
        settings = settings.model_copy(update={"tls": resolve_tls_paths(settings.tls, base)})
        settings = settings.model_copy(
            update={"certificatesResolvers": resolve_acme_paths(settings.certificatesResolvers, base)}
        )
    if base is not None and settings.accessLog is not None and settings.accessLog.filePath:
        log_path = str(base / settings.accessLog.filePath)  # an absolute filePath stays as it is
        settings = settings.model_copy(
            update={"accessLog": settings.accessLog.model_copy(update={"filePath": log_path})}
        )
    if base is not None and settings.dnsSync is not None:
        settings = settings.model_copy(update={"dnsSync": resolve_dnssync_paths(settings.dnsSync, base)})
    return settings


def _check_resolvers(settings: Settings, source: str) -> None:
    """Resolvers name entry points that exist, of the right kind; entry points name resolvers."""
    eps = settings.entryPoints
    for name, resolver in settings.certificatesResolvers.items():
        acme, where = resolver.acme, f"{source}: certificatesResolvers.{name}.acme"
        if acme.httpChallenge is None and acme.tlsChallenge is None:
            raise SettingsError(f"{where}: needs httpChallenge or tlsChallenge (DNS-01 is not supported)")
        if acme.httpChallenge is not None:
            ep = eps.get(acme.httpChallenge.entryPoint)
            if ep is None:
                raise SettingsError(
                    f"{where}.httpChallenge.entryPoint: no entry point named {acme.httpChallenge.entryPoint!r}"
                )
            if ep.tls is not None:
                raise SettingsError(
                    f"{where}.httpChallenge.entryPoint: {acme.httpChallenge.entryPoint} terminates TLS; "
                    "HTTP-01 is plain HTTP (port 80)"
                )
        if acme.tlsChallenge is not None and not any(ep.tls is not None for ep in eps.values()):
            raise SettingsError(f"{where}.tlsChallenge: no entry point terminates TLS")
        if acme.storage.secret is not None:
            check_secret_storage(name, where, kubernetes=settings.providers.kubernetes is not None)
    for name, ep in eps.items():
        if (
            ep.tls is not None
            and ep.tls.certResolver
            and ep.tls.certResolver not in settings.certificatesResolvers
        ):
            raise SettingsError(
                f"{source}: entryPoints.{name}.tls.certResolver: no resolver named {ep.tls.certResolver!r} "
                "in certificatesResolvers"
            )


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
