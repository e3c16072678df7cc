"""Table-driven Gateway API translation tests: each `fixtures/gateway/<case>.yaml` holds objects and
the problems and request routing the Gateway API calls for, through the compiled route table.

Fixture format::

    objects: [...]                       # added: GatewayClass `passerelle` (passerelle's controller),
                                         # Services v1, v2, v3 (port 8080, one endpoint each) in
                                         # namespaces infra and web
    entryPoints: {web: {port: 80}}       # default; `tls: true` for HTTPS listeners
    listeners: [[80, web, ""]]           # optional GatewayOptions.listeners
    expect:
      problems:                          # exactly this many, each matching one of these
        - {object: "HTTPRoute ns/name", severity: error, message_contains: "..."}
      requests:                          # through the compiled table of `entrypoint` (default web)
        - {host: a.example.com, path: /x?q=1, method: GET, headers: {Version: one},
           service: <service name> or null (404), source: "HTTPRoute ns/name rule 0" (optional)}
      services:                          # optional: these services exist, with this status
        - {name: ..., status: 500, weighted: [[name, weight]], scheme: h2c (default http)}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml

from passerelle.kube.gateway import CONTROLLER_NAME, GatewayOptions
from passerelle.kube.ingress import IngressOptions, translate
from passerelle.kube.placement import EntryPointInfo
from passerelle.kube.snapshot import ClusterSnapshot
from passerelle.model import Router, codec
from passerelle.routing.conditional import ConditionalTable
from passerelle.routing.table import compile_tables

FIXTURES = Path(__file__).parent / "fixtures" / "gateway"
CASES = sorted(FIXTURES.glob("*.yaml"))
GATEWAY_CLASS = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "GatewayClass",
    "metadata": {"name": "passerelle"},
    "spec": {"controllerName": CONTROLLER_NAME},
}


def _backends() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for namespace in ("infra", "web"):
        for n, name in enumerate(("v1", "v2", "v3"), start=1):
            meta = {"name": name, "namespace": namespace}
            out.append(
                {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": {"ports": [{"port": 8080}]}}
            )
            out.append(
                {
                    "apiVersion": "discovery.k8s.io/v1",
                    "kind": "EndpointSlice",
                    "metadata": {
                        "name": name,
                        "namespace": namespace,
                        "labels": {"kubernetes.io/service-name": name},
                    },
                    "ports": [{"port": 8080}],
                    "endpoints": [{"addresses": [f"10.0.0.{n}"]}],
                }
            )
    return out


def _head(method: str, target: str, host: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_gateway_translation(path: Path) -> None:
    case = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert set(case) <= {"objects", "entryPoints", "listeners", "expect"}, set(case)
    assert set(case["expect"]) <= {"problems", "requests", "services"}, set(case["expect"])
    entrypoints = tuple(
        EntryPointInfo(name=name, tls=bool(ep.get("tls")), port=ep["port"])
        for name, ep in (case.get("entryPoints") or {"web": {"port": 80}}).items()
    )
    options = IngressOptions(
        entrypoints=entrypoints,
        gateway=GatewayOptions(listeners=tuple(tuple(p) for p in case.get("listeners") or ())),  # type: ignore[misc]
    )
    config, problems = translate(ClusterSnapshot.of([GATEWAY_CLASS, *_backends(), *case["objects"]]), options)
    shown = "\n".join(str(p) for p in problems) or "(none)"
    expected = case["expect"].get("problems") or []
    assert len(problems) == len(expected), f"problems were:\n{shown}"
    for entry in expected:
        assert any(
            str(p.ref) == entry["object"]
            and str(p.severity) == entry["severity"]
            and entry["message_contains"] in p.message
            for p in problems
        ), f"no problem like {entry}; problems were:\n{shown}"
    assert codec.load(json.loads(json.dumps(codec.dump(config)))) == config
    for entry in case["expect"].get("services") or []:
        service = config.service(entry["name"])
        assert service.status == entry.get("status", 503)
        assert [[w.service, w.weight] for w in service.weighted] == entry.get("weighted", [])
        assert service.scheme == entry.get("scheme", "http"), entry["name"]
    tables = compile_tables(config, [ep.name for ep in entrypoints], lambda r: r)
    failures = []
    for request in case["expect"].get("requests") or []:
        table = tables[request.get("entrypoint", "web")]
        method, target, host = request.get("method", "GET"), request["path"], request["host"]
        head = _head(method, target, host, request.get("headers") or {})
        if isinstance(table, ConditionalTable):
            found: Router | None = table.match_request(host.encode(), target.encode(), method.encode(), head)
        else:
            found = table.match(host.encode(), target.encode())
        got = None if found is None else found.service
        if got != request["service"] or (
            "source" in request and found is not None and found.source != request["source"]
        ):
            failures.append(f"{method} {host}{target} {request.get('headers') or ''}: got {got} "
                            f"({found.source if found else '-'}), want {request['service']}")  # fmt: skip
    assert not failures, "\n".join(failures) + f"\nproblems were:\n{shown}"


def test_there_are_fixtures() -> None:
    assert len(CASES) >= 8


def test_https_listeners_serve_the_certificates_they_name() -> None:
    """certificateRefs: Secrets of the Gateway's namespace, or of another one a ReferenceGrant opens."""
    ca = trustme.CA()
    pems = {}
    for name in ("own", "granted", "refused"):
        cert = ca.issue_cert(f"{name}.example.com")
        pems[name] = (cert.cert_chain_pems[0].bytes().decode(), cert.private_key_pem.bytes().decode())

    def secret(name: str, namespace: str) -> dict[str, Any]:
        cert, key = pems[name]
        meta = {"name": name, "namespace": namespace}
        return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls", "metadata": meta,
                "stringData": {"tls.crt": cert, "tls.key": key}}  # fmt: skip

    refs = [{"name": "own"}, {"name": "granted", "namespace": "web"}, {"name": "refused", "namespace": "web"},
            {"name": "missing"}, {"kind": "ConfigMap", "name": "own"}]  # fmt: skip
    objects = [
        GATEWAY_CLASS,
        secret("own", "infra"),
        secret("granted", "web"),
        secret("refused", "web"),
        {"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
         "metadata": {"name": "g", "namespace": "web"},
         "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": "infra"}],
                  "to": [{"group": "", "kind": "Secret", "name": "granted"}]}},
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"name": "gw", "namespace": "infra"},
         "spec": {"gatewayClassName": "passerelle", "listeners": [
             {"name": "https", "port": 443, "protocol": "HTTPS", "tls": {"certificateRefs": refs}}]}},
    ]  # fmt: skip
    options = IngressOptions(entrypoints=(EntryPointInfo(name="websecure", tls=True, port=443),))
    config, problems = translate(ClusterSnapshot.of(objects), options)
    assert sorted(n for c in config.tls.certificates for n in c.names) == [
        "granted.example.com",
        "own.example.com",
    ]
    messages = sorted(p.message for p in problems)
    assert len(messages) == 3, messages
    assert "certificateRefs[2]: Secret web/refused is in another namespace" in messages[0]
    assert "certificateRefs[3]: Secret infra/missing not found" in messages[1]
    assert "certificateRefs[4]: only Secrets are supported" in messages[2]
    assert all(str(p.ref) == "Gateway infra/gw" for p in problems)
