"""ACME against a real CA (Debian's Pebble): issuance over HTTP-01 and TLS-ALPN-01, renewal,
restart, two replicas sharing storage, CA down then back, a failed challenge."""

from __future__ import annotations

import datetime
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tests.integration.harness import Backends, Router, endpoint_slice, free_port, ingress, rule, service
from tests.integration.pebble import Pebble

STARTUP = 45.0  # seconds for a router (control plane and two workers) to answer /ping on a loaded machine


class Site:
    """Ports and storage for one test; replicas made with `router` share the storage."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.storage = workdir / "acme-storage"
        self.routers: list[Router] = []
        self.pebbles: list[Pebble] = []

    def pebble(self, *, http_port: int, tls_port: int, **options: Any) -> Pebble:
        pebble = Pebble(
            self.workdir / f"pebble{len(self.pebbles)}", http_port=http_port, tls_port=tls_port, **options
        )
        self.pebbles.append(pebble)
        return pebble

    def router(
        self,
        pebble: Pebble,
        *,
        web: int,
        secure: int,
        challenge: str = "http",
        objects: list[dict[str, Any]] | None = None,
        delay: str = "0.3s",
        redirect: bool = False,
        extra: dict[str, Any] | None = None,
    ) -> Router:
        acme: dict[str, Any] = {
            "email": "ops@example.test",
            "caServer": pebble.directory,
            "caCertificates": [str(pebble.ca_file)],
            "storage": str(self.storage),
            "retry": {"initialInterval": "1s", "maxInterval": "2s"},
            **(extra or {}),
        }
        if challenge == "http":
            acme["httpChallenge"] = {"entryPoint": "web", "delay": delay}
        else:
            acme["tlsChallenge"] = {"delay": delay}
        config = {
            "entryPoints": {
                "web": {"address": f"127.0.0.1:{web}"}
                | ({"http": {"redirections": {"entryPoint": {"to": "websecure"}}}} if redirect else {}),
                "websecure": {"address": f"127.0.0.1:{secure}", "tls": {}},
            },
            "certificatesResolvers": {"pebble": {"acme": acme}},
            "workers": 2,
        }
        router = Router(self.workdir / f"router{len(self.routers)}", config=config)
        if objects:
            router.write("objects.yaml", list(objects))
        self.routers.append(router)
        return router

    def close(self) -> None:
        for router in self.routers:
            router.stop()
        for pebble in self.pebbles:
            pebble.stop()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = Site(tmp_path)
    yield s
    s.close()


def app(
    backends: Backends, host: str, annotations: dict[str, str], *, tls: bool = True
) -> list[dict[str, Any]]:
    port = backends.whoami("acme-app")
    obj = ingress(
        "app", [rule(host, ("/", "Prefix", "app"))], **({"tls": [{"hosts": [host]}]} if tls else {})
    )
    obj["metadata"]["annotations"] = annotations
    return [service("app"), endpoint_slice("app", [port]), obj]


def served_certificate(port: int, host: str, root: str | None) -> x509.Certificate:
    """The leaf a TLS client gets for `host`; with `root`, the client verifies the chain to it."""
    context = ssl.create_default_context(cadata=root) if root else ssl._create_unverified_context()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=host, do_handshake_on_connect=False) as tls:
            tls.do_handshake()
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def wait_for(what: str, check: Callable[[], Any], timeout: float, router: Router) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except (OSError, ssl.SSLError, AssertionError) as e:
            last = e
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {timeout}s (last: {last!r})\n{router.log()}")


def issued(port: int, host: str, root: str) -> Callable[[], x509.Certificate | None]:
    def check() -> x509.Certificate | None:
        try:
            return served_certificate(port, host, root)
        except ssl.SSLCertVerificationError:
            return None  # still the default certificate

    return check


def acme_status(router: Router) -> dict[str, Any]:
    return dict(router.api("/api/acme")["pebble"])


def test_http01_issuance_is_served_and_a_restart_orders_nothing(site: Site, backends: Backends) -> None:
    web, secure = free_port(), free_port()
    pebble = site.pebble(http_port=web, tls_port=secure).start(timeout=STARTUP)
    host = "shop.example.test"
    objects = app(backends, host, {"traefik.ingress.kubernetes.io/router.tls.certresolver": "pebble"})
    # web redirects every request to https: the challenge is answered before that redirect.
    router = site.router(pebble, web=web, secure=secure, objects=objects, redirect=True).start(
        timeout=STARTUP
    )
    root = pebble.root()
    with pytest.raises(ssl.SSLCertVerificationError):
        served_certificate(secure, host, root)  # the default certificate, until the CA has issued
    leaf = wait_for("issuance", issued(secure, host, root), 30, router)
    assert leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName
    ) == [host]
    status = acme_status(router)
    assert status["orders"] == 1 and status["issued"] == 1 and status["failures"] == 0
    assert [c["names"] for c in status["certificates"]] == [[host]]
    # Tokens are answered only while pending: the path is redirected like any other now.
    gone = httpx.get(f"http://127.0.0.1:{web}/.well-known/acme-challenge/anything", headers={"Host": host})
    assert gone.status_code == 301
    fingerprint = leaf.fingerprint(hashes.SHA256())
    router.stop()

    again = site.router(pebble, web=web, secure=secure, objects=objects).start(timeout=STARTUP)
    assert served_certificate(secure, host, root).fingerprint(hashes.SHA256()) == fingerprint
    time.sleep(2)  # several plans and storage readings later
    status = acme_status(again)
    assert status["orders"] == 0, again.log()
    assert "ordering" not in again.log()
    assert "registered" not in again.log()  # the stored account is the one it uses (ARI lookups)


def test_tls_alpn01_issuance(site: Site, backends: Backends) -> None:
    web, secure = free_port(), free_port()
    pebble = site.pebble(http_port=free_port(), tls_port=secure).start()  # HTTP-01 would fail
    host = "alpn.example.test"
    objects = app(backends, host, {"passerelle.io/cert-resolver": "pebble"})
    router = site.router(pebble, web=web, secure=secure, challenge="tls", objects=objects).start(
        timeout=STARTUP
    )
    root = pebble.root()
    wait_for("issuance over TLS-ALPN-01", issued(secure, host, root), 30, router)
    assert acme_status(router)["failures"] == 0
    # A client that does not offer acme-tls/1 never saw a challenge certificate: it got the
    # default one before, and the issued one now.
    context = ssl.create_default_context(cadata=root)
    context.set_alpn_protocols(["http/1.1"])
    with (
        socket.create_connection(("127.0.0.1", secure)) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        assert tls.selected_alpn_protocol() == "http/1.1"


@dataclass(frozen=True)
class FirstIssuance:
    pebble: Pebble
    router: Router
    secure: int  # the router's TLS port
    root: str  # Pebble's root, PEM
    first: x509.Certificate  # the first certificate served for the host


def first_issuance(site: Site, backends: Backends, host: str, *, validity: int) -> FirstIssuance:
    """A started Pebble issuing certificates of `validity` seconds, and a router serving one Ingress
    for `host` once it serves the certificate it ordered for it."""
    web, secure = free_port(), free_port()
    pebble = site.pebble(http_port=web, tls_port=secure, validity=validity).start(timeout=STARTUP)
    objects = app(backends, host, {"passerelle.io/cert-resolver": "pebble"})
    router = site.router(pebble, web=web, secure=secure, objects=objects).start(timeout=STARTUP)
    root = pebble.root()
    first = wait_for("issuance", issued(secure, host, root), 30, router)
    return FirstIssuance(pebble=pebble, router=router, secure=secure, root=root, first=first)


def test_short_lived_certificates_are_renewed(site: Site, backends: Backends) -> None:
    host = "short.example.test"
    issuance = first_issuance(site, backends, host, validity=9)
    router, secure, root, first = issuance.router, issuance.secure, issuance.root, issuance.first
    lifetime = first.not_valid_after_utc - first.not_valid_before_utc
    assert lifetime.total_seconds() < 15

    def renewed() -> bool:
        leaf = served_certificate(secure, host, root)
        return leaf.fingerprint(hashes.SHA256()) != first.fingerprint(hashes.SHA256())

    wait_for("renewal", renewed, 30, router)
    status = acme_status(router)
    assert status["renewed"] >= 1 and status["failures"] == 0


def test_two_replicas_share_storage_and_tokens(site: Site, backends: Backends) -> None:
    web_a, secure_a, web_b, secure_b = free_port(), free_port(), free_port(), free_port()
    # Pebble validates on replica B's port; replica A is the only one that wants the certificate.
    pebble = site.pebble(http_port=web_b, tls_port=secure_b).start(timeout=STARTUP)
    host = "shared.example.test"
    objects = app(backends, host, {"passerelle.io/cert-resolver": "pebble"})
    # A's challenge delay (well above the storage poll, 1 s, on a loaded machine) lets B read the token before the CA asks.
    b = site.router(pebble, web=web_b, secure=secure_b).start(timeout=STARTUP)
    a = site.router(pebble, web=web_a, secure=secure_a, objects=objects, delay="3s").start(timeout=STARTUP)
    root = pebble.root()
    leaf = wait_for("issuance through replica B", issued(secure_a, host, root), 30, a)
    assert acme_status(a)["orders"] == 1 and acme_status(b)["orders"] == 0
    # B picks the certificate up from the storage as soon as it serves the host, ordering nothing.
    b.write("objects.yaml", objects)
    picked = wait_for("B serving the stored certificate", issued(secure_b, host, root), 10, b)
    assert picked.fingerprint(hashes.SHA256()) == leaf.fingerprint(hashes.SHA256())
    time.sleep(1.5)
    assert acme_status(b)["orders"] == 0, b.log()


def test_one_replica_orders_a_certificate_both_want(site: Site, backends: Backends) -> None:
    web_a, secure_a, web_b, secure_b = free_port(), free_port(), free_port(), free_port()
    pebble = site.pebble(http_port=web_b, tls_port=secure_b).start(timeout=STARTUP)
    host = "both.example.test"
    objects = app(backends, host, {"passerelle.io/cert-resolver": "pebble"})
    # Started together; the challenge delay gives B time to come up should A order.
    a = site.router(pebble, web=web_a, secure=secure_a, objects=objects, delay="3s")
    b = site.router(pebble, web=web_b, secure=secure_b, objects=objects, delay="3s")
    starting = threading.Thread(target=a.start, kwargs={"timeout": STARTUP})
    starting.start()
    b.start(timeout=STARTUP)
    starting.join()
    root = pebble.root()
    wait_for("issuance", issued(secure_a, host, root), 30, a)
    wait_for("issuance", issued(secure_b, host, root), 30, b)
    statuses = [acme_status(a), acme_status(b)]
    assert sum(s["orders"] for s in statuses) == 1, a.log() + b.log()
    assert sum(s["issued"] for s in statuses) == 1 and sum(s["failures"] for s in statuses) == 0


def test_ca_down_then_back(site: Site, backends: Backends) -> None:
    web, secure = free_port(), free_port()
    pebble = site.pebble(http_port=web, tls_port=secure)  # not started yet
    host = "later.example.test"
    objects = app(backends, host, {"passerelle.io/cert-resolver": "pebble"})
    router = site.router(pebble, web=web, secure=secure, objects=objects).start(timeout=STARTUP)
    router.wait_problem("Ingress default/app", "the CA cannot be reached", timeout=15)
    assert acme_status(router)["failures"] >= 1
    served_certificate(secure, host, None)  # still served, with the default certificate
    pebble.start(timeout=STARTUP)
    wait_for("issuance once the CA is back", issued(secure, host, pebble.root()), 30, router)
    wait_for(
        "the problem to go",
        lambda: not [p for p in router.problems() if "cannot be reached" in p["message"]],
        5,
        router,
    )


def test_failed_challenge_is_a_problem(site: Site, backends: Backends) -> None:
    web, secure = free_port(), free_port()
    pebble = site.pebble(http_port=free_port(), tls_port=free_port()).start()  # nothing answers there
    host = "fails.example.test"
    objects = app(backends, host, {"passerelle.io/cert-resolver": "pebble"})
    router = site.router(pebble, web=web, secure=secure, objects=objects).start(timeout=STARTUP)
    router.wait_problem("Ingress default/app", "validation failed", timeout=30)
    status = acme_status(router)
    assert status["failures"] >= 1 and status["issued"] == 0
    assert status["failing"][0]["names"] == [host]


def test_external_account_binding_rsa_keys_and_a_preferred_chain(site: Site, backends: Backends) -> None:
    web, secure = free_port(), free_port()
    hmac = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"  # base64url
    pebble = site.pebble(http_port=web, tls_port=secure, eab={"kid-1": hmac}, alternate_roots=1)
    pebble.start(timeout=STARTUP)
    alternate = x509.load_pem_x509_certificate(pebble.root(1).encode())
    alternate_cn = alternate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    host = "bound.example.test"
    objects = app(backends, host, {"passerelle.io/cert-resolver": "pebble"})
    extra = {
        "eab": {"kid": "kid-1", "hmacEncoded": hmac},
        "keyType": "RSA2048",
        "preferredChain": alternate_cn,
    }
    router = site.router(pebble, web=web, secure=secure, objects=objects, extra=extra).start(timeout=STARTUP)
    leaf = wait_for("issuance with EAB", issued(secure, host, pebble.root(1)), 30, router)
    assert isinstance(leaf.public_key(), rsa.RSAPublicKey) and leaf.public_key().key_size == 2048
    with pytest.raises(ssl.SSLCertVerificationError):  # the default chain's root does not verify it
        served_certificate(secure, host, pebble.root(0))


def test_without_external_account_binding_the_ca_refuses(site: Site, backends: Backends) -> None:
    web, secure = free_port(), free_port()
    pebble = site.pebble(http_port=web, tls_port=secure, eab={"kid-1": "c2VjcmV0"}).start(timeout=STARTUP)
    objects = app(backends, "unbound.example.test", {"passerelle.io/cert-resolver": "pebble"})
    router = site.router(pebble, web=web, secure=secure, objects=objects).start(timeout=STARTUP)
    router.wait_problem("Ingress default/app", "the CA refused", timeout=30)
    assert acme_status(router)["issued"] == 0


def test_a_failed_renewal_keeps_the_working_certificate(site: Site, backends: Backends) -> None:
    host = "keep.example.test"
    issuance = first_issuance(site, backends, host, validity=24)
    router, secure, root, first = issuance.router, issuance.secure, issuance.root, issuance.first
    issuance.pebble.stop()  # the renewal, due a third of the lifetime before expiry, cannot reach the CA
    router.wait_problem("Ingress default/app", "the CA cannot be reached", timeout=30)
    problem = next(p for p in router.problems() if "cannot be reached" in p["message"])
    assert problem["severity"] == "warning"  # a certificate still serves
    still = served_certificate(secure, host, root)
    assert still.fingerprint(hashes.SHA256()) == first.fingerprint(hashes.SHA256())
    assert still.not_valid_after_utc > datetime.datetime.now(datetime.UTC)


def test_a_replica_that_dies_while_ordering_leaves_the_order_to_another(
    site: Site, backends: Backends
) -> None:
    web_a, secure_a, web_b, secure_b = free_port(), free_port(), free_port(), free_port()
    pebble = site.pebble(http_port=web_b, tls_port=secure_b).start(timeout=STARTUP)
    host = "orphan.example.test"
    objects = app(backends, host, {"passerelle.io/cert-resolver": "pebble"})
    # A takes the certificate's lock and then waits a long challenge delay...
    a = site.router(pebble, web=web_a, secure=secure_a, objects=objects, delay="60s").start(timeout=STARTUP)
    wait_for("A ordering", lambda: "ordering a certificate" in a.log(), 30, a)
    b = site.router(pebble, web=web_b, secure=secure_b, objects=objects).start(timeout=STARTUP)
    wait_for("B waiting for A", lambda: "another replica is ordering" in b.log(), 15, b)
    assert a.process is not None
    a.process.kill()  # ...and dies: its flock goes with it
    a.process.wait()
    wait_for("B ordering instead", issued(secure_b, host, pebble.root()), 30, b)
    assert acme_status(b)["orders"] == 1
