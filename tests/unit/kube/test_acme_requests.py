"""Which Ingresses get which certificates from which resolver (kube/acme.py), table-driven."""

from __future__ import annotations

from typing import Any

import pytest
import trustme

from passerelle.kube.acme import AcmeTranslation
from passerelle.kube.ingress import IngressOptions, translate
from passerelle.kube.placement import EntryPointInfo
from passerelle.kube.snapshot import ClusterSnapshot
from passerelle.kube.tls import TlsTranslation

CERT = trustme.CA().issue_cert("kept.example.com")
ENTRYPOINTS = (EntryPointInfo(name="web", port=80), EntryPointInfo(name="websecure", tls=True, port=443))
TRAEFIK = "traefik.ingress.kubernetes.io/router.tls.certresolver"
OURS = "passerelle.io/cert-resolver"


def ingress(
    name: str,
    hosts: list[str],
    *,
    annotations: dict[str, str] | None = None,
    tls: list[Any] | None = None,
    path: str = "/",
) -> dict[str, Any]:
    backend = {"service": {"name": "svc", "port": {"number": 80}}}
    paths = [{"path": path, "pathType": "Prefix", "backend": backend}]
    spec: dict[str, Any] = {"rules": [{"host": h, "http": {"paths": paths}} for h in hosts]}
    if tls is not None:
        spec["tls"] = tls
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "namespace": "default", "annotations": annotations or {}},
        "spec": spec,
    }


SECRET = {
    "apiVersion": "v1",
    "kind": "Secret",
    "type": "kubernetes.io/tls",
    "metadata": {"name": "kept", "namespace": "default"},
    "stringData": {
        "tls.crt": CERT.cert_chain_pems[0].bytes().decode(),
        "tls.key": CERT.private_key_pem.bytes().decode(),
    },
}

CASES = [
    # (name, objects, entry point defaults, expected [(resolver, names, sources)], problem fragments)
    ("Traefik annotation, spec.tls without a Secret: one SAN certificate for the entry",
     [ingress("a", ["a.example.com", "b.example.com"], annotations={TRAEFIK: "le"},
              tls=[{"hosts": ["a.example.com", "b.example.com"]}])],
     {}, [("le", ("a.example.com", "b.example.com"), ("a",))], []),
    ("passerelle's annotation wins over Traefik's, with a warning",
     [ingress("a", ["a.example.com"], annotations={OURS: "le", TRAEFIK: "staging"}, tls=[{}])],
     {}, [("le", ("a.example.com",), ("a",))], ["overrides"]),
    ("no spec.tls: one certificate per rule host",
     [ingress("a", ["a.example.com", "b.example.com"], annotations={OURS: "le"})],
     {}, [("le", ("a.example.com",), ("a",)), ("le", ("b.example.com",), ("a",))], []),
    ("a usable Secret is served, not ordered; the entry without one is ordered",
     [SECRET, ingress("a", ["kept.example.com", "new.example.com"], annotations={OURS: "le"},
                      tls=[{"hosts": ["kept.example.com"], "secretName": "kept"}, {"hosts": ["new.example.com"]}])],
     {}, [("le", ("new.example.com",), ("a",))], []),
    ("a name another Ingress's Secret covers is not ordered: SNI serves the Secret's certificate",
     [SECRET, ingress("owner", ["kept.example.com"], tls=[{"hosts": ["kept.example.com"], "secretName": "kept"}]),
      ingress("a", ["kept.example.com", "x.example.com"], annotations={OURS: "le"}, path="/a")],
     {}, [("le", ("x.example.com",), ("a",))], []),
    ("a missing Secret: ordered instead",
     [ingress("a", ["lost.example.com"], annotations={OURS: "le"}, tls=[{"hosts": ["lost.example.com"], "secretName": "gone"}])],
     {}, [("le", ("lost.example.com",), ("a",))], ["Secret default/gone not found"]),
    ("the entry point default resolver (onHostRule) covers Ingresses served there",
     [ingress("a", ["a.example.com"], tls=[{"hosts": ["a.example.com"]}]), ingress("plain", ["p.example.com"])],
     {"websecure": "le"}, [("le", ("a.example.com",), ("a",))], []),
    ("a router on every entry point counts as served on the one with a default resolver",
     [ingress("both", ["both.example.com"], annotations={"passerelle.io/entrypoints": "web,websecure"})],
     {"websecure": "le"}, [("le", ("both.example.com",), ("both",))], []),
    ("no resolver anywhere: nothing", [ingress("a", ["a.example.com"], tls=[{}])], {}, [], []),
    ("wildcards need DNS-01: a Problem, the other names are still ordered",
     [ingress("a", ["*.example.com", "x.example.com"], annotations={OURS: "le"}, tls=[{"hosts": ["*.example.com", "x.example.com"]}])],
     {}, [("le", ("x.example.com",), ("a",))], ["a wildcard needs the DNS-01 challenge"]),
    ("an undefined resolver is a Problem",
     [ingress("a", ["a.example.com"], annotations={OURS: "nope"}, tls=[{}])],
     {}, [], ["certificate resolver 'nope' is not defined"]),
    ("two Ingresses wanting the same names make one request",
     [ingress("a", ["s.example.com"], annotations={OURS: "le"}, tls=[{"hosts": ["s.example.com"]}]),
      ingress("b", ["s.example.com"], annotations={OURS: "le"}, tls=[{"hosts": ["s.example.com"]}], path="/b")],
     {}, [("le", ("s.example.com",), ("a", "b"))], []),
]  # fmt: skip


@pytest.mark.parametrize(
    ("objects", "defaults", "expected", "problems"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_certificate_requests(
    objects: list[dict[str, Any]], defaults: dict[str, str], expected: list[Any], problems: list[str]
) -> None:
    acme = AcmeTranslation(
        resolvers=frozenset({"le", "staging"}),
        entrypoints=tuple((ep.name, defaults.get(ep.name, "")) for ep in ENTRYPOINTS),
    )
    options = IngressOptions(entrypoints=ENTRYPOINTS, tls=TlsTranslation(acme=acme))
    config, found = translate(ClusterSnapshot.of(objects), options)
    got = [(r.resolver, r.names, tuple(s.name for s in r.sources)) for r in config.tls.requests]
    assert got == expected
    messages = [p.message for p in found]
    for fragment in problems:
        assert any(fragment in m for m in messages), messages
    if not problems:
        assert not [m for m in messages if "certificate" in m or "resolver" in m], messages


def test_without_static_configuration_any_resolver_name_is_accepted() -> None:
    """`passerelle check` without a config: IngressOptions() knows no resolvers and no entry point
    defaults; the annotation's request is still made (and its wildcard still reported)."""
    objects = [
        ingress(
            "a",
            ["a.example.com"],
            annotations={OURS: "whatever"},
            tls=[{"hosts": ["a.example.com", "*.w.com"]}],
        )
    ]
    config, found = translate(ClusterSnapshot.of(objects), IngressOptions())
    assert [(r.resolver, r.names) for r in config.tls.requests] == [("whatever", ("a.example.com",))]
    assert any("a wildcard needs" in p.message for p in found)
