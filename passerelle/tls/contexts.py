"""The worker's TLS: one SSLContext per (certificate, TLS option), chosen per handshake by SNI.

Each TLS entry point listens with a *dispatcher* context whose `sni_callback` looks the SNI name
up in the live `SniTable` and switches the connection to the context built for that name's
certificate (store.py's rules) and TLS option (the host's `HostOptions`, else the entry point's
option, else `default`). OpenSSL keeps some settings of the context a connection started with, so
the callback also applies the chosen verify mode (openssl.adopt_verify), and refuses a protocol
version outside the chosen option's range (the version is negotiated before SNI is seen). The
cipher list, ALPN, certificate and CA store do follow the switch. While an ACME TLS-ALPN-01
challenge is pending for a name, a handshake for it that offers ALPN acme-tls/1 is switched to the
challenge's context instead (`SniState.challenges`, docs/acme.md).

On reload `compile_steps` builds the next table beside the live one, reusing the context of every
(certificate, option, CA) it already has — building one costs about a millisecond — and the
entry points see it in one rebinding: new handshakes use it, established connections keep theirs.
When any option asks for client certificates, session resumption is off (tickets and the session
cache): a session made under a host without client authentication must not resume under one that
requires it, and OpenSSL does not tell them apart. Without client certificates and with one version
range, nothing here touches openssl.py (TlsStatic.needs_openssl).
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
from passerelle.tls.options import DEFAULT, TlsOptions
from passerelle.tls.store import NameIndex, certificate_index

log = logging.getLogger("passerelle.tls")
_PROTOCOL_VERSION = ssl.AlertDescription.ALERT_DESCRIPTION_PROTOCOL_VERSION.value
_INTERNAL_ERROR = ssl.AlertDescription.ALERT_DESCRIPTION_INTERNAL_ERROR.value
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
    def resumption(self) -> bool:
        return not self.switches_verify

    @property
    def switches_verify(self) -> bool:
        """Some option asks for client certificates: handshakes may need another verify mode."""
        return any(o.auth.request for o in self.options.values())

    @property
    def needs_openssl(self) -> bool:
        """Whether serving needs openssl.py's ctypes seam: for client certificates (verify modes,
        the accept-any callback, no session cache) or an option narrower than the widest version
        range (the SNI callback reads the negotiated version). Otherwise `ssl` alone serves."""
        widest = version_range(self)
        return self.switches_verify or any(_narrower(o, widest) for o in self.options.values())

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
    """One version's SNI state: names -> certificate, hosts -> option, (cert, option) -> context."""

    __slots__ = ("certificates", "hosts", "default", "choices", "_static", "_extra_ca", "_range", "_logged")

    def __init__(
        self,
        static: TlsStatic,
        tls: TlsConfig,
        choices: dict[ContextKey, Choice],
        version_range: tuple[int, int],
    ) -> None:
        self._static = static
        self.certificates = certificate_index(tls.certificates)
        self.default = next((c for c in tls.certificates if c.default), static.default_certificate)
        self.hosts = NameIndex((h.host, h.options) for h in tls.hosts if h.options in static.options)
        self._extra_ca = {ca.options: ca.pem for ca in tls.client_cas}
        self._range = version_range
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

    def choose(self, server_name: str | None, entry_options: str) -> Choice:
        try:
            cert, options = self.resolve(server_name, entry_options)
            key = self.key(cert, options)
            choice = self.choices.get(key)
            if choice is None:  # compile_steps builds every reachable pair; this is a safety net
                choice = self.choices[key] = self._build(cert, options)
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

    def _build(self, cert: Certificate, options: str) -> Choice:
        option = self._static.options[options]
        ca_pem = option.ca_pem + self._extra_ca.get(options, "")
        try:
            context = build_context(cert, option, ca_pem=ca_pem, resumption=self._static.resumption)
        except (ssl.SSLError, OSError, ValueError) as e:
            fallback = self._static.default_certificate
            if cert is fallback:
                raise
            # The control plane validated the pair; OpenSSL refusing it anyway must cost this
            # certificate, not the whole version.
            log.error("certificate from %s cannot be loaded (%s); serving the default one", cert.source, e)
            context = build_context(fallback, option, ca_pem=ca_pem, resumption=self._static.resumption)
        if isinstance(context, ServerContext):
            context.option = options
        verify = openssl.verify_of(context) if self._static.switches_verify else openssl.NO_VERIFY
        return Choice(context, option, _narrower(option, self._range), verify)

    def names(self) -> Iterable[str]:
        yield from self.certificates.exact
        yield from (f"*.{p}" for p in self.certificates.wildcard)
        yield from self.hosts.exact
        yield from (f"*.{p}" for p in self.hosts.wildcard)


def _narrower(option: TlsOptions, widest: tuple[int, int]) -> bool:
    low, high = widest
    return option.min_version > low or (option.max_version is not None and option.max_version < high)


def version_range(static: TlsStatic) -> tuple[int, int]:
    """The widest range any option allows: what a dispatcher context negotiates."""
    low = min(int(o.min_version) for o in static.options.values())
    highs = [o.max_version for o in static.options.values()]
    high = int(ssl.TLSVersion.TLSv1_3) if None in highs else max(int(h) for h in highs if h is not None)
    return low, high


def compile_steps(
    static: TlsStatic, tls: TlsConfig, entry_options: Iterable[str], previous: SniTable | None
) -> Generator[None, None, SniTable]:
    """Build the table for `tls`, yielding after each new context; unchanged ones are reused."""
    table = SniTable(static, tls, {}, version_range(static))
    old = previous.choices if previous is not None else {}
    wanted = list(dict.fromkeys(entry_options))
    names: list[str | None] = [None, *table.names()]
    for name in names:
        for entry in wanted:
            cert, options = table.resolve(name, entry)
            key = table.key(cert, options)
            if key in table.choices:
                continue
            if key in old:
                table.choices[key] = old[key]
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


class SniState:
    """The live table, rebound whole on reload; shared by a worker's TLS entry points.

    challenges: SNI name -> the TLS-ALPN-01 validation context (RFC 8737), while one is pending;
    given only to handshakes that offer ALPN acme-tls/1 (Dispatcher, proxy/acme.py)."""

    __slots__ = ("table", "challenges")

    def __init__(self, table: SniTable) -> None:
        self.table = table
        self.challenges: dict[str, ssl.SSLContext] = {}


class Dispatcher:
    """A TLS entry point's listening context and its SNI callback."""

    __slots__ = ("context", "entry_options", "_state", "_verify", "_alpn")

    def __init__(self, static: TlsStatic, state: SniState, entry_options: str) -> None:
        if static.needs_openssl:
            openssl.check()  # proven in a child process by the control plane already (openssl.probe)
        self.entry_options = entry_options or DEFAULT
        self._state = state
        low, high = version_range(static)
        base = TlsOptions(
            name="dispatcher", min_version=ssl.TLSVersion(low), max_version=ssl.TLSVersion(high)
        )
        self.context = build_context(
            static.default_certificate, base, ca_pem="", resumption=static.resumption
        )
        self.context.sni_callback = self._on_server_name
        self._verify = openssl.verify_of(self.context) if static.switches_verify else openssl.NO_VERIFY
        # Which handshakes offer acme-tls/1, set up with the first TLS-ALPN-01 challenge. False:
        # the ctypes seam is unusable, and a pending name's challenge goes to every handshake.
        self._alpn: openssl.AlpnWatch | bool | None = None

    def watch_acme_alpn(self, *, seam: bool = True) -> None:
        """TLS-ALPN-01 challenges are pending: from now on, note handshakes offering acme-tls/1.

        seam False: the control plane's probe found the ctypes seam unusable (openssl.probe)."""
        if self._alpn is None:
            try:
                if not seam:
                    raise openssl.OpenSSLBindingError("the OpenSSL binding check failed in the control plane")
                openssl.check()
                self._alpn = openssl.AlpnWatch(self.context, b"acme-tls/1")
            except openssl.OpenSSLBindingError as e:
                self._alpn = False
                log.warning(
                    "%s; while a TLS-ALPN-01 challenge is pending for a name, every handshake for it "
                    "gets the challenge certificate",
                    e,
                )

    def _challenge(self, ssl_object: ssl.SSLObject, server_name: str) -> ssl.SSLContext | None:
        context = self._state.challenges.get(server_name.lower())
        if context is None:
            return None
        alpn = self._alpn
        if alpn is False or (isinstance(alpn, openssl.AlpnWatch) and alpn.offered(ssl_object)):
            return context
        return None

    @property
    def table(self) -> SniTable:
        """The live SNI table (rebound by a reload)."""
        return self._state.table

    def misdirected(self, context: ssl.SSLContext, host: bytes) -> bool:
        """Whether a request for `host` came on a connection whose handshake ran under another TLS
        option than the host's: SNI `open.test` then `Host: guarded.test` must not skip guarded's
        client authentication (Traefik's snicheck answers 421, RFC 9110 §15.5.20)."""
        hosts = self._state.table.hosts
        if not hosts.exact and not hosts.wildcard:
            return False  # every host has the entry point's option
        return isinstance(context, ServerContext) and context.option != host_option(
            hosts, host, self.entry_options
        )

    def _on_server_name(
        self, ssl_object: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext
    ) -> int | None:
        setattr(ssl_object, SERVER_NAME, server_name)  # noqa: B010 -- SSLObject declares no such attribute
        try:
            if self._state.challenges and server_name is not None:
                challenge = self._challenge(ssl_object, server_name)
                if challenge is not None:
                    ssl_object.context = challenge
                    if self._verify != openssl.NO_VERIFY:
                        openssl.adopt_verify(ssl_object, openssl.NO_VERIFY)
                    return None
            choice = self._state.table.choose(
                None if server_name is None else server_name.lower(), self.entry_options
            )
            ssl_object.context = choice.context
            if choice.verify != self._verify:
                openssl.adopt_verify(ssl_object, choice.verify)
            if choice.check_version and not choice.options.accepts(openssl.negotiated_version(ssl_object)):
                return _PROTOCOL_VERSION
        except Exception:  # an exception here would only be printed by OpenSSL's caller
            return _INTERNAL_ERROR
        return None


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
        context.options |= ssl.OP_NO_TICKET
        context.num_tickets = 0
        openssl.disable_session_cache(context)
    return context


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
