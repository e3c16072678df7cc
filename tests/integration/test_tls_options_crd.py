"""Traefik TLSOption objects over real sockets, from the manifests provider and from the test API
server: per-host versions, client certificates from a CA Secret, edits and deletions without a
restart, sniStrict, and curvePreferences on the default option (clients: Python's ssl and
`openssl s_client`)."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trustme

from tests.integration.harness import Backends, Router, free_port, ingress, rule, service, wait_for
from tests.integration.test_kubernetes import slice_for, with_ns
from tests.integration.test_tls import (
    CA,
    CLIENT_CA,
    GOOD_CLIENT,
    ROGUE_CLIENT,
    call,
    refused,
    tls_secret,
)
from tests.kubeapi import KubeAPI

TRAEFIK = "traefik.io/v1alpha1"
TLS12 = ssl.TLSVersion.TLSv1_2
CERT = CA.issue_cert("strict.test", "guarded.test", "open.test")


def tls_option(name: str, spec: dict[str, Any], namespace: str = "default") -> dict[str, Any]:
    return {
        "apiVersion": TRAEFIK,
        "kind": "TLSOption",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def ca_secret() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "client-ca", "namespace": "default"},
        "type": "Opaque",
        "stringData": {"ca.crt": CLIENT_CA.cert_pem.bytes().decode()},
    }


def host(name: str, option: str | None, backend: str) -> dict[str, Any]:
    obj = with_ns(
        ingress(name, [rule(f"{name}.test", ("/", "Prefix", backend))], tls=[{"secretName": "cert"}])
    )
    if option is not None:
        obj["metadata"]["annotations"] = {"traefik.ingress.kubernetes.io/router.tls.options": option}
    return obj


def backend(backends: Backends, name: str) -> list[dict[str, Any]]:
    return [with_ns(service(name)), slice_for(name, backends.whoami(name))]


def objects(backends: Backends) -> list[dict[str, Any]]:
    """strict.test: TLS 1.3 only (by Traefik's full name); guarded.test: client certificates
    verified against a CA Secret (by a bare name, resolved in the Ingress's namespace)."""
    return [
        *backend(backends, "crd"),
        with_ns(tls_secret("cert", CERT)),
        ca_secret(),
        tls_option("modern", {"minVersion": "VersionTLS13"}),
        tls_option("mtls", {"clientAuth": {"secretNames": ["client-ca"]}}),
        host("strict", "default-modern@kubernetescrd", "crd"),
        host("guarded", "mtls", "crd"),
        host("open", None, "crd"),
    ]


def tls_config(port: int) -> dict[str, Any]:
    return {"entryPoints": {"websecure": {"address": f"127.0.0.1:{port}", "tls": {}}}}


def check_served(router: Router, port: int, edit: Callable[[dict[str, Any]], None]) -> None:
    """What the objects ask for, then an edit of `modern` and the deletion of `mtls` through `edit`
    ({"replace": obj} or {"delete": obj}), each seen without a restart."""
    # minVersion TLS13 refuses a TLS 1.2 client on its host only
    assert refused(port, "strict.test", maximum=TLS12)
    assert call(port, "strict.test").version == "TLSv1.3"
    assert call(port, "open.test", maximum=TLS12).status == 200
    # clientAuth with a CA Secret: required and verified, on its host only
    for tls_max in (None, TLS12):
        assert refused(port, "guarded.test", maximum=tls_max)
        assert refused(port, "guarded.test", client=ROGUE_CLIENT, maximum=tls_max)
        assert call(port, "guarded.test", client=GOOD_CLIENT, maximum=tls_max).status == 200
    assert call(port, "open.test").status == 200
    # an edit applies to new handshakes
    version = router.version()
    edit({"replace": tls_option("modern", {"minVersion": "VersionTLS12", "maxVersion": "VersionTLS12"})})
    router.wait_version(version, timeout=10)
    assert call(port, "strict.test", maximum=TLS12).status == 200
    assert refused(port, "strict.test", minimum=ssl.TLSVersion.TLSv1_3)
    # an edit gone wrong: the last valid definition stays in use
    edit({"replace": tls_option("modern", {"minVersion": "VersionTLS99"})})
    router.wait_problem("TLSOption default/modern", "its last valid definition stays in use", timeout=10)
    assert call(port, "strict.test", maximum=TLS12).status == 200
    assert refused(port, "strict.test", minimum=ssl.TLSVersion.TLSv1_3)
    # deleted: the Ingress naming it is not served (never served without client authentication)
    version = router.version()
    edit({"delete": tls_option("mtls", {})})
    router.wait_version(version, timeout=10)
    router.wait_problem("Ingress default/guarded", "namespace default has no TLSOption 'mtls'")
    assert call(port, "guarded.test").status == 404
    assert call(port, "open.test").status == 200
    # a TLSOption `default` with sniStrict: names without a certificate are refused from now on
    assert call(port, "unknown.test").status == 404
    version = router.version()
    edit({"replace": tls_option("default", {"sniStrict": True}, "infra")})
    router.wait_version(version, timeout=10)
    assert refused(port, "unknown.test")
    assert call(port, "open.test").status == 200


def test_tls_options_from_manifests(backends: Backends, make_router: Callable[..., Router]) -> None:
    port = free_port()
    listed = objects(backends)
    router = make_router(listed, config=tls_config(port))

    def edit(change: dict[str, Any]) -> None:
        nonlocal listed
        for verb, obj in change.items():
            listed = [
                o
                for o in listed
                if (o["kind"], o["metadata"]["name"]) != (obj["kind"], obj["metadata"]["name"])
            ]
            if verb == "replace":
                listed.append(obj)
        router.write("objects.yaml", listed)

    check_served(router, port, edit)


def test_tls_options_from_the_kubernetes_api(
    backends: Backends, kubeapi: Callable[..., KubeAPI], make_router: Callable[..., Router], tmp_path: Path
) -> None:
    api = kubeapi(crds={"traefik.io"})
    for obj in objects(backends):
        api.create(obj)
    port = free_port()
    kubeconfig = api.kubeconfig(tmp_path / "kubeconfig")
    providers = {"providers": {"kubernetes": {"kubeconfig": str(kubeconfig), "throttle": "0.1s"}}}
    router = make_router(config={**tls_config(port), **providers})
    wait_for(lambda: not refused(port, "open.test"), "the Ingresses are served", timeout=10)

    def edit(change: dict[str, Any]) -> None:
        for verb, obj in change.items():
            if verb == "replace":
                meta = obj["metadata"]
                current = api.get(TRAEFIK, "TLSOption", meta["namespace"], meta["name"])
                if current is None:
                    api.create(obj)
                else:
                    api.replace({**current, "spec": obj["spec"]})
            else:
                api.delete(TRAEFIK, "TLSOption", "default", obj["metadata"]["name"])

    check_served(router, port, edit)


def test_sni_strict_and_curves_on_the_default_tls_option(
    backends: Backends, make_router: Callable[..., Router]
) -> None:
    """A TLSOption `default` replaces the default option: sniStrict refuses names no certificate
    covers (and handshakes without SNI); curvePreferences limits the key exchange groups."""
    port = free_port()
    listed = [
        *backend(backends, "strict"),
        with_ns(tls_secret("cert", CERT)),
        host("open", None, "strict"),
        tls_option("default", {"sniStrict": True, "curvePreferences": ["CurveP384", "CurveP521"]}, "infra"),
    ]
    router = make_router(listed, config=tls_config(port))
    assert call(port, "open.test").status == 200
    assert refused(port, "unknown.test")
    assert refused(port, None)
    for groups, accepted in (("prime256v1", False), ("secp384r1", True), ("secp521r1", True)):
        client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
        client.set_ecdh_curve(groups)  # a client context offers only this group
        assert refused(port, "open.test", context=client) is not accepted, groups
    openssl = shutil.which("openssl")
    assert openssl is not None, "openssl is installed by scripts/test"
    done = subprocess.run(
        [
            openssl,
            "s_client",
            "-connect",
            f"127.0.0.1:{port}",
            "-servername",
            "open.test",
            "-groups",
            "X25519:P-384",
        ],
        input=b"",
        capture_output=True,
        timeout=10,
        check=False,
    )
    assert b"Server Temp Key: ECDH, secp384r1" in done.stdout, done.stdout.decode(errors="replace")
    # the option goes: the default certificate is served again, for any name
    listed = listed[:-1]
    version = router.version()
    router.write("objects.yaml", listed)
    router.wait_version(version, timeout=10)
    assert call(port, "unknown.test").status == 404


def test_sni_strict_and_curves_in_static_options(
    backends: Backends, make_router: Callable[..., Router]
) -> None:
    """The same two keys in `tls.options`, on the entry point's option and per host."""
    port = free_port()
    listed = [
        *backend(backends, "static"),
        # RSA: with TLS 1.2 an ECDSA certificate's own curve must be among the client's groups too
        with_ns(
            tls_secret(
                "cert", CA.issue_cert("open.test", "p384.test", "any.test", key_type=trustme.KeyType.RSA)
            )
        ),
        host("open", None, "static"),
        host("guarded", "strict", "static"),  # strict, and no certificate names guarded.test
        host("p384", "p384", "static"),
        host("any", "plain", "static"),
    ]
    options = {
        "default": {"curvePreferences": ["CurveP521"]},
        "strict": {"sniStrict": True},
        "p384": {"curvePreferences": ["CurveP384"]},
        "plain": {},  # OpenSSL's groups, not the entry point's
    }
    make_router(listed, config={**tls_config(port), "tls": {"options": options}})
    assert call(port, "open.test").status == 200
    assert call(port, "unknown.test").status == 404  # the default option is not strict
    assert refused(port, "guarded.test")
    cases = [
        ("open.test", "X25519", False),
        ("open.test", "secp521r1", True),
        ("p384.test", "secp521r1", False),
        ("p384.test", "secp384r1", True),
        ("any.test", "X25519", True),
        ("unknown.test", "secp384r1", False),
    ]
    for tls_max in (None, TLS12):
        for sni, group, accepted in cases:
            client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
            client.set_ecdh_curve(group)  # a client context offers only this group
            assert refused(port, sni, context=client, maximum=tls_max) is not accepted, (sni, group, tls_max)
