"""In process, under uvloop as a worker runs: each TLS client connection holds the client's
certificate (DER) once the handshake is done, for the client-certificate headers to use."""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any

import trustme
import uvloop

from passerelle.model import DynamicConfig
from passerelle.proxy.dataplane import Dataplane
from passerelle.proxy.listeners import bind, port_of
from passerelle.proxy.options import EntryPointOptions, ForwardingOptions
from passerelle.tls.contexts import TlsStatic
from passerelle.tls.options import TlsOptions
from passerelle.tls.store import generate_default

CLIENT_CA = trustme.CA()


def handshake(port: int, client: trustme.LeafCert | None) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    if client is not None:
        client.configure_cert(context)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="peer.test") as conn:
            conn.sendall(b"GET / HTTP/1.1\r\nHost: peer.test\r\n\r\n")
            assert conn.recv(65536).startswith(b"HTTP/1.1 404")


def test_the_connection_holds_the_client_certificate() -> None:
    alice, unknown = CLIENT_CA.issue_cert("alice"), trustme.CA().issue_cert("anyone")
    options = {
        "default": TlsOptions(name="default"),
        "any": TlsOptions(name="any", client_auth="RequestClientCert"),
    }
    static = TlsStatic(options=options, default_certificate=generate_default())
    entry = EntryPointOptions(name="websecure", host="127.0.0.1", port=0, tls=True, tls_options="any")
    seen: list[Any] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        sockets = bind(entry)
        dataplane = Dataplane([entry], ForwardingOptions(), loop, static)
        dataplane.apply(DynamicConfig())
        await dataplane.start({"websecure": sockets})
        ep = dataplane.entrypoints["websecure"]
        assert (ep.scheme, ep.default_port) == (b"https", b"443")
        for client in (alice, unknown, None):
            task = loop.run_in_executor(None, handshake, port_of(sockets), client)
            while not ep.connections:
                await asyncio.sleep(0.005)
            peer = next(iter(ep.connections)).peer
            seen.append((peer.cert, peer.verified) if peer is not None else None)
            await task
            while ep.connections:
                await asyncio.sleep(0.005)
        await dataplane.stop(grace=0)

    uvloop.run(main())
    der = [ssl.PEM_cert_to_DER_cert(c.cert_chain_pems[0].bytes().decode()) for c in (alice, unknown)]
    # RequestClientCert takes any certificate, and so verifies none
    assert seen == [(der[0], False), (der[1], False), (None, False)]
