"""The worker's TLS: one SSLContext per (certificate, TLS option), chosen per handshake by SNI.

A `SniTable` is one version's TLS state in a worker: the certificates by name (store.py's rules),
the hosts' options (`HostOptions`, else the entry point's option, else `default`), the options
themselves — the static ones with the version's cluster-defined ones (TlsConfig.options) over
them — and the context built for each (certificate, option) pair. `choose()` answers the SNI
callback of dispatcher.py: a context, or the alert that refuses the handshake (sniStrict, an
option whose context could not be built). The cipher list, ALPN, certificate and CA store
follow a switch to the chosen context; what does not is dispatcher.py's business.

On reload `compile_steps` builds the next table beside the live one, reusing the context of every
(certificate, option, CA) it already has with the same option definition — building one costs
about a millisecond — and the entry points see it in one rebinding: new handshakes use it,
established connections keep theirs. When any option asks for client certificates, session
resumption is off (tickets and the session cache): a session made under a host without client
authentication must not resume under one that requires it, and OpenSSL does not tell them apart.
Without client certificates, curves and with one version range, nothing here touches openssl.py
(`needs_openssl`).
"""

from __future__ import annotations

import logging
import os
import ssl
from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from passerelle.model import Certificate, TlsConfig
from passerelle.model.codec import dump_certificate, load_certificate
from passerelle.tls import openssl
from passerelle.tls.options import TlsOptions
from passerelle.tls.store import NameIndex, certificate_index

log = logging.getLogger("passerelle.tls")
_INTERNAL_ERROR = ssl.AlertDescription.ALERT_DESCRIPTION_INTERNAL_ERROR.value
_UNRECOGNIZED_NAME = ssl.AlertDescription.ALERT_DESCRIPTION_UNRECOGNIZED_NAME.value
_LOGGED_FAILURES = 100  # distinct SNI failure messages logged per table, at most


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsStatic:
    """What a worker knows of TLS from the static configuration, resolved by the control plane.

    options: every named TLS option, always with `default`.
    default_certificate: from `tls.defaultCertificate` files, or generated at start (one for all
        workers); a `defaultCertificate.secret` found in the cluster replaces it per version.
    """

    options: Mapping[str, TlsOptions]
    default_certificate: Certificate

    @property
    def switches_verify(self) -> bool:
        """Some option asks for client certificates: handshakes may need another verify mode."""
        return any(o.auth.request for o in self.options.values())

    @property
    def needs_openssl(self) -> bool:
        """Whether serving needs openssl.py's ctypes seam: for client certificates (verify modes,
        the accept-any callback, no session cache) or an option narrower than the widest version
        range (the SNI callback reads the negotiated version), or curvePreferences. Otherwise
        `ssl` alone serves."""
        widest = version_range(self)
        return self.switches_verify or any(_needs_openssl(o, widest) for o in self.options.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "options": [o.to_dict() for o in self.options.values()],
            "defaultCertificate": dump_certificate(self.default_certificate, with_keys=True),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TlsStatic:
        options = (TlsOptions.from_dict(o) for o in data["options"])
        return cls(
            options={o.name: o for o in options},
            default_certificate=load_certificate(data["defaultCertificate"]),
        )


class Choice:
    """A built context and what the SNI callback must do beside switching to it."""

    __slots__ = ("context", "verify", "options", "check_version")

    def __init__(
        self,
        context: ssl.SSLContext,
        options: TlsOptions,
        check_version: bool,
        verify: tuple[int, int | None] = openssl.NO_VERIFY,
    ) -> None:
        self.context = context
        self.verify = verify
        self.options = options
        self.check_version = check_version


ContextKey = tuple[str, str, str]  # (certificate fingerprint, option name, extra CA PEM)


class SniTable:
    """One version's SNI state: names -> certificate, hosts -> option, (cert, option) -> context.

    options: the static options with this version's cluster-defined ones (TlsConfig.options) over
    them. A choice is a Choice, or an alert number for handshakes that must be refused (an option
    whose context could not be built: its hosts are refused rather than served without it)."""

    __slots__ = (
        "certificates",
        "hosts",
        "default",
        "choices",
        "options",
        "range",
        "resumption",
        "switches_verify",
        "needs_openssl",
        "_static",
        "_extra_ca",
        "_logged",
    )

    def __init__(
        self,
        static: TlsStatic,
        tls: TlsConfig,
        choices: dict[ContextKey, Choice | int],
    ) -> None:
        self._static = static
        self.options: dict[str, TlsOptions] = {**static.options, **{o.name: o for o in tls.options}}
        self.certificates = certificate_index(tls.certificates)
        self.default = next((c for c in tls.certificates if c.default), static.default_certificate)
        self.hosts = NameIndex((h.host, h.options) for h in tls.hosts if h.options in self.options)
        self._extra_ca = {ca.options: ca.pem for ca in tls.client_cas}
        every = self.options.values()
        self.range = _widest(every)
        self.switches_verify = any(o.auth.request for o in every)
        self.resumption = not self.switches_verify
        self.needs_openssl = self.switches_verify or any(_needs_openssl(o, self.range) for o in every)
        self.choices = choices
        self._logged: set[str] = set()

    def resolve(self, server_name: str | None, entry_options: str) -> tuple[Certificate, str]:
        """The certificate and option name for an SNI name (None: the client sent none)."""
        if server_name is None:
            return self.default, entry_options
        if server_name.startswith("*."):  # a wildcard stands for names only the wildcard covers
            parent = server_name[2:]
            cert, options = self.certificates.wildcard.get(parent), self.hosts.wildcard.get(parent)
        else:
            cert, options = self.certificates.get(server_name), self.hosts.get(server_name)
        return cert or self.default, options or entry_options

    def key(self, cert: Certificate, options: str) -> ContextKey:
        return (cert.fingerprint, options, self._extra_ca.get(options, ""))

    def choose(self, server_name: str | None, entry_options: str) -> Choice | int:
        """The context for a handshake, or the alert that refuses it (sniStrict, a broken option)."""
        try:
            cert, options = self.resolve(server_name, entry_options)
            key = self.key(cert, options)
            choice = self.choices.get(key)
            if choice is None:  # compile_steps builds every reachable pair; this is a safety net
                choice = self.choices[key] = self._build(cert, options)
            if cert is self.default and not isinstance(choice, int) and choice.options.sni_strict:
                return _UNRECOGNIZED_NAME  # Traefik's sniStrict: no certificate for this name
            return choice
        except Exception as e:
            self._log_failure(e)
            raise

    def _log_failure(self, error: Exception) -> None:
        """The SNI callback can only answer internal_error: say why, at debug, once per distinct
        message (a broken host would otherwise log at every handshake)."""
        message = f"{type(error).__name__}: {error}"
        if message not in self._logged and len(self._logged) < _LOGGED_FAILURES:
            self._logged.add(message)
            log.debug("TLS handshake refused with internal_error: %s", message, exc_info=error)

    def _build(self, cert: Certificate, options: str) -> Choice | int:
        option = self.options[options]
        ca_pem = option.ca_pem + self._extra_ca.get(options, "")
        try:
            try:
                context = build_context(cert, option, ca_pem=ca_pem, resumption=self.resumption)
            except (ssl.SSLError, OSError, ValueError) as e:
                fallback = self._static.default_certificate
                if cert is fallback:
                    raise
                # The control plane validated the pair; OpenSSL refusing it anyway must cost this
                # certificate, not the whole version.
                log.error(
                    "certificate from %s cannot be loaded (%s); serving the default one", cert.source, e
                )
                context = build_context(fallback, option, ca_pem=ca_pem, resumption=self.resumption)
        except (ssl.SSLError, OSError, ValueError) as e:
            # Not the certificate, then: the option (or the default certificate). Its handshakes
            # are refused, never served with a weaker option, and the other hosts keep being served.
            log.error(
                "TLS option %s with the default certificate cannot be used (%s): handshakes that need "
                "it are refused",
                options,
                e,
            )
            return _INTERNAL_ERROR
        if isinstance(context, ServerContext):
            context.option = options
        verify = openssl.verify_of(context) if self.switches_verify else openssl.NO_VERIFY
        return Choice(context, option, _narrower(option, self.range), verify)

    def names(self) -> Iterable[str]:
        yield from self.certificates.exact
        yield from (f"*.{p}" for p in self.certificates.wildcard)
        yield from self.hosts.exact
        yield from (f"*.{p}" for p in self.hosts.wildcard)


def _needs_openssl(option: TlsOptions, widest: tuple[int, int]) -> bool:
    """Narrower than the widest range (the SNI callback reads the version), or curves (set per
    connection for hosts, or several on an entry point)."""
    return _narrower(option, widest) or bool(option.curves)


def _narrower(option: TlsOptions, widest: tuple[int, int]) -> bool:
    low, high = widest
    return option.min_version > low or (option.max_version is not None and option.max_version < high)


def version_range(static: TlsStatic) -> tuple[int, int]:
    """The widest range any static option allows."""
    return _widest(static.options.values())


def _widest(options: Iterable[TlsOptions]) -> tuple[int, int]:
    """The widest range any of the options allows: what a dispatcher context negotiates."""
    options = list(options)
    low = min(int(o.min_version) for o in options)
    highs = [o.max_version for o in options]
    high = int(ssl.TLSVersion.TLSv1_3) if None in highs else max(int(h) for h in highs if h is not None)
    return low, high


def compile_steps(
    static: TlsStatic, tls: TlsConfig, entry_options: Iterable[str], previous: SniTable | None
) -> Generator[None, None, SniTable]:
    """Build the table for `tls`, yielding after each new context; unchanged ones are reused.

    A context is reused when its option's definition, the session policy and the version range
    are the same as in `previous` (a TLSOption edited in the cluster gets new contexts)."""
    table = SniTable(static, tls, {})
    if table.needs_openssl:
        openssl.check()  # OpenSSLBindingError: this version is refused, the live one stays
    old: dict[ContextKey, Choice | int] = {}
    if previous is not None and (previous.resumption, previous.range) == (table.resumption, table.range):
        old = previous.choices
    wanted = list(dict.fromkeys(entry_options))
    names: list[str | None] = [None, *table.names()]
    for name in names:
        for entry in wanted:
            cert, options = table.resolve(name, entry)
            key = table.key(cert, options)
            if key in table.choices:
                continue
            kept = old.get(key)
            if isinstance(kept, Choice) and kept.options == table.options[options]:
                table.choices[key] = kept
            else:
                table.choices[key] = table._build(cert, options)
                yield
    return table


def compile_table(static: TlsStatic, tls: TlsConfig, entry_options: Iterable[str]) -> SniTable:
    steps = compile_steps(static, tls, entry_options, None)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]


def host_option(hosts: NameIndex[str], host: bytes, entry_options: str) -> str:
    """The TLS option a request's Host header asks for: its host's, else the entry point's."""
    name = (host.partition(b":")[0] if host[:1] != b"[" else host).decode("latin-1").lower()
    return hosts.get(name) or entry_options


# The attribute of an SSLObject holding the SNI name its client sent: Python's ssl keeps it only on the
# client side (`server_hostname`), and the access log wants it (proxy/dispatch.py TlsPeer).
SERVER_NAME = "passerelle_server_name"


class ServerContext(ssl.SSLContext):
    """An SSLContext that remembers its TLS option and whether it verifies client certificates."""

    verifies_clients = False
    option = ""  # the TLS option's name ("" for the dispatcher's own context)


def verifies_clients(context: ssl.SSLContext) -> bool:
    """Whether a connection's (SNI-chosen) context verified the client's certificate against CAs.

    RequestClientCert and RequireAnyClientCert take any certificate: it is then not verified."""
    return isinstance(context, ServerContext) and context.verifies_clients


def build_context(cert: Certificate, options: TlsOptions, *, ca_pem: str, resumption: bool) -> ssl.SSLContext:
    context = ServerContext(ssl.PROTOCOL_TLS_SERVER)
    context.verifies_clients = options.auth.verify
    context.minimum_version = options.min_version
    if options.max_version is not None:
        context.maximum_version = options.max_version
    if options.ciphers:
        context.set_ciphers(":".join(options.ciphers))
    if options.alpn:
        context.set_alpn_protocols(list(options.alpn))
    load_chain(context, cert)
    auth = options.auth
    if auth.request:
        if ca_pem:
            context.load_verify_locations(cadata=ca_pem)
        context.verify_mode = ssl.CERT_REQUIRED if auth.require else ssl.CERT_OPTIONAL
        if not auth.verify:
            flags = openssl.VERIFY_PEER | (openssl.VERIFY_FAIL_IF_NO_PEER_CERT if auth.require else 0)
            openssl.set_verify(context, flags, accept_any=True)
    if not resumption:
        set_resumption(context, False)
    return context


def set_resumption(context: ssl.SSLContext, on: bool) -> None:
    """Session tickets and the server session cache, both on or both off."""
    if on:
        context.options &= ~ssl.OP_NO_TICKET
        context.num_tickets = 2  # OpenSSL's default
    else:
        context.options |= ssl.OP_NO_TICKET
        context.num_tickets = 0
    openssl.set_session_cache(context, on)


def load_chain(context: ssl.SSLContext, cert: Certificate) -> None:
    """load_cert_chain from memory: `ssl` reads only paths, so hand it anonymous memory files
    (memfd, Linux): the private key never touches a disk."""
    fds = [
        os.memfd_create("passerelle-cert", os.MFD_CLOEXEC),
        os.memfd_create("passerelle-key", os.MFD_CLOEXEC),
    ]
    try:
        for fd, text in zip(fds, (cert.cert_pem, cert.key_pem), strict=True):
            os.write(fd, text.encode())
        context.load_cert_chain(f"/proc/self/fd/{fds[0]}", f"/proc/self/fd/{fds[1]}")
    finally:
        for fd in fds:
            os.close(fd)
