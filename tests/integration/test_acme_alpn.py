"""In process, under uvloop as a worker runs: while a TLS-ALPN-01 challenge is pending for a
name, only handshakes that offer ALPN acme-tls/1 get the validation certificate (RFC 8737 §3);
every other client of that name keeps the certificate it was served (the ClientHello seen through
the ctypes seam, tls/openssl.py AlpnWatch). Once the challenge is withdrawn, nobody gets it."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import ssl

import trustme
import uvloop
from cryptography import x509

from passerelle.acme.protocol import ACME_IDENTIFIER, alpn_certificate
from passerelle.model import DynamicConfig, TlsConfig
from passerelle.proxy.dataplane import Dataplane
from passerelle.proxy.listeners import bind, port_of
from passerelle.proxy.options import EntryPointOptions, ForwardingOptions
from passerelle.tls.contexts import TlsStatic
from passerelle.tls.options import TlsOptions
from passerelle.tls.store import generate_default, parse_pair

CA = trustme.CA()


def handshake(port: int, alpn: list[str]) -> tuple[x509.Certificate, str | None]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    context.set_alpn_protocols(alpn)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="alpn.test") as conn:
            der = conn.getpeercert(binary_form=True)
            assert der is not None
            return x509.load_der_x509_certificate(der), conn.selected_alpn_protocol()


def test_only_acme_tls_1_handshakes_get_the_challenge_certificate() -> None:
    served = CA.issue_cert("alpn.test")
    pair = parse_pair(served.cert_chain_pems[0].bytes(), served.private_key_pem.bytes(), source="test")
    static = TlsStatic(
        options={"default": TlsOptions(name="default")}, default_certificate=generate_default()
    )
    entry = EntryPointOptions(name="websecure", host="127.0.0.1", port=0, tls=True)
    cert_pem, key_pem = alpn_certificate("alpn.test", "token.thumbprint")
    results: dict[str, tuple[x509.Certificate, str | None]] = {}

    async def main() -> None:
        loop = asyncio.get_running_loop()
        sockets = bind(entry)
        port = port_of(sockets)
        dataplane = Dataplane([entry], ForwardingOptions(), loop, static)
        dataplane.apply(DynamicConfig(tls=TlsConfig(certificates=(pair.certificate,))))
        await dataplane.start({"websecure": sockets})

        async def shake(name: str, alpn: list[str]) -> None:
            results[name] = await loop.run_in_executor(None, handshake, port, alpn)

        dataplane.set_challenges(
            {"type": "challenges", "tlsAlpn": [{"name": "alpn.test", "certPem": cert_pem, "keyPem": key_pem}]}
        )
        await shake("validation", ["acme-tls/1"])
        await shake("browser", ["h2", "http/1.1"])
        await shake("no-alpn", [])
        dataplane.set_challenges({"type": "challenges"})
        await shake("after", ["acme-tls/1"])
        await dataplane.stop(grace=0)

    uvloop.run(main())
    leaf, protocol = results["validation"]
    assert protocol == "acme-tls/1"
    digest = leaf.extensions.get_extension_for_oid(ACME_IDENTIFIER).value.value  # type: ignore[attr-defined]
    assert digest == b"\x04\x20" + hashlib.sha256(b"token.thumbprint").digest()
    expected = x509.load_pem_x509_certificate(served.cert_chain_pems[0].bytes())
    for name in ("browser", "no-alpn", "after"):
        assert results[name][0] == expected, name
    assert results["browser"][1] == "h2"
