"""A TLS entry point's listening context and SNI callback (Dispatcher), and the live table.

The dispatcher context is the one every connection starts with; its `sni_callback` switches the
connection to the context contexts.py built for the SNI name (`SniTable.choose`), applies that
context's verify mode (openssl.adopt_verify), and refuses a version outside the option's range or
a name sniStrict refuses. What OpenSSL keeps from the first context — the version range, the
session policy, the key exchange groups — is set on the dispatcher context itself whenever a new
table goes live (`SniState.swap` -> `Dispatcher.adopt`), and a host's own curves are set per
connection by a ClientHello callback (openssl.ClientHelloHook), only while some host needs it.
"""

from __future__ import annotations

import logging
import ssl

from passerelle.tls import openssl
from passerelle.tls.contexts import (
    SERVER_NAME,
    ServerContext,
    SniTable,
    TlsStatic,
    build_context,
    host_option,
    set_resumption,
)
from passerelle.tls.options import DEFAULT, TlsOptions

log = logging.getLogger("passerelle.tls")
_PROTOCOL_VERSION = ssl.AlertDescription.ALERT_DESCRIPTION_PROTOCOL_VERSION.value
_INTERNAL_ERROR = ssl.AlertDescription.ALERT_DESCRIPTION_INTERNAL_ERROR.value


class SniState:
    """The live table, rebound whole on reload; shared by a worker's TLS entry points.

    challenges: SNI name -> the TLS-ALPN-01 validation context (RFC 8737), while one is pending;
    given only to handshakes that offer ALPN acme-tls/1 (Dispatcher, proxy/acme.py)."""

    __slots__ = ("table", "challenges", "dispatchers")

    def __init__(self, table: SniTable) -> None:
        self.table = table
        self.challenges: dict[str, ssl.SSLContext] = {}
        self.dispatchers: list[Dispatcher] = []

    def swap(self, table: SniTable) -> None:
        """Make `table` live: the entry points' listening contexts first take what a connection
        keeps from the context it starts with (version range, session policy, curves)."""
        for dispatcher in self.dispatchers:
            dispatcher.adopt(table)
        self.table = table


class Dispatcher:
    """A TLS entry point's listening context and its SNI callback."""

    __slots__ = (
        "context",
        "entry_options",
        "_state",
        "_verify",
        "_alpn",
        "_hook",
        "_resumption",
        "_curves",
        "_host_groups",
    )

    def __init__(self, static: TlsStatic, state: SniState, entry_options: str) -> None:
        table = state.table
        if static.needs_openssl or table.needs_openssl:
            openssl.check()  # proven in a child process by the control plane already (openssl.probe)
        self.entry_options = entry_options or DEFAULT
        self._state = state
        low, high = table.range
        base = TlsOptions(
            name="dispatcher", min_version=ssl.TLSVersion(low), max_version=ssl.TLSVersion(high)
        )
        self._resumption = table.resumption
        self.context = build_context(static.default_certificate, base, ca_pem="", resumption=self._resumption)
        self.context.sni_callback = self._on_server_name
        self._verify = openssl.verify_of(self.context) if table.switches_verify else openssl.NO_VERIFY
        self._curves: tuple[str, ...] = ()
        self._host_groups: dict[str, bytes] = {}  # option name -> groups, where not the entry point's
        # The ClientHello callback, made when first needed (TLS-ALPN-01, or per-host curves).
        self._hook: openssl.ClientHelloHook | None = None
        # Whether handshakes offering acme-tls/1 are noted, set up with the first TLS-ALPN-01
        # challenge. False: the ctypes seam is unusable, and a pending name's challenge goes to
        # every handshake.
        self._alpn: bool | None = None
        state.dispatchers.append(self)
        self.adopt(table)

    def adopt(self, table: SniTable) -> None:
        """Set what OpenSSL copies from the listening context into each new connection, and does
        not take from the context the SNI callback switches to: the version range (negotiated
        before SNI is seen), session resumption, and the key exchange groups — the entry point's
        option's curvePreferences (measured: a switched-to context's groups are not used), and
        for hosts whose option names others, the ClientHello callback's answer."""
        low, high = table.range
        self.context.minimum_version = ssl.TLSVersion(low)
        self.context.maximum_version = ssl.TLSVersion(high)
        if table.resumption != self._resumption:
            set_resumption(self.context, table.resumption)
            self._resumption = table.resumption
        option = table.options.get(self.entry_options)
        curves = option.curves if option is not None else ()
        if curves != self._curves:
            try:
                openssl.set_groups(self.context, curves or openssl.DEFAULT_GROUPS)
                self._curves = curves
            except (ValueError, ssl.SSLError, openssl.OpenSSLBindingError) as e:
                # the table is going live whatever happens here: keep the groups it had
                log.error("entry point option %s: curvePreferences not applied: %s", self.entry_options, e)
        # Hosts whose option names other curves: set on each connection in the ClientHello callback.
        used = {*table.hosts.exact.values(), *table.hosts.wildcard.values()}
        self._host_groups = {
            name: ":".join(table.options[name].curves or openssl.DEFAULT_GROUPS).encode()
            for name in used
            if table.options[name].curves != curves
        }
        if self._host_groups:
            self._client_hello().groups = self._groups_for
        elif self._hook is not None:
            self._hook.groups = None

    def _client_hello(self) -> openssl.ClientHelloHook:
        if self._hook is None:
            self._hook = openssl.ClientHelloHook(self.context)
        return self._hook

    def _groups_for(self, server_name: str) -> bytes | None:
        """The ClientHello callback's question: groups for this SNI name, if not the entry point's."""
        option = self._state.table.hosts.get(server_name)
        return None if option is None else self._host_groups.get(option)

    def watch_acme_alpn(self, *, seam: bool = True) -> None:
        """TLS-ALPN-01 challenges are pending: from now on, note handshakes offering acme-tls/1.

        seam False: the control plane's probe found the ctypes seam unusable (openssl.probe)."""
        if self._alpn is None:
            try:
                if not seam:
                    raise openssl.OpenSSLBindingError("the OpenSSL binding check failed in the control plane")
                openssl.check()
                self._client_hello().watch(b"acme-tls/1")
                self._alpn = True
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
        if alpn is False or (alpn and self._hook is not None and self._hook.offered(ssl_object)):
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
            if isinstance(choice, int):
                return choice
            ssl_object.context = choice.context
            if choice.verify != self._verify:
                openssl.adopt_verify(ssl_object, choice.verify)
            if choice.check_version and not choice.options.accepts(openssl.negotiated_version(ssl_object)):
                return _PROTOCOL_VERSION
        except Exception:  # an exception here would only be printed by OpenSSL's caller
            return _INTERNAL_ERROR
        return None
