"""Table-driven TLS translation: each `fixtures/tls/<case>.yaml` holds Kubernetes objects and the
certificates, host options, client CAs and problems translate() must produce.

Fixture format::

    certificates:                      # made for the test by a trustme CA
      www: {names: [www.example.com], expired: false}
    options: {tlsOptions: [mtls], caSecrets: [[mtls, ns/name]], defaultSecret: ns/name,
              staticDefault: false}   # tls.options.default is set
    objects: [...]                     # strings "@cert:www", "@key:www", "@b64cert:www",
                                       # "@b64key:www" and "@ca" are replaced by PEM (or base64)
    expect:
      certificates: [{names: [...], source: "Secret ns/name", default: false}]   # in order
      hosts: [{host: ..., options: ..., source: "Ingress ns/name"}]
      clientCAs: [{options: ..., source: ...}]
      options: [{name: ..., client_auth: ..., ...}]   # TLSOption definitions: these fields, in order
      problems: [{object: ..., severity: ..., message_contains: ...}]            # exactly these
"""

from __future__ import annotations

import base64
import datetime
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml

from passerelle.kube.ingress import IngressOptions, translate
from passerelle.kube.placement import EntryPointInfo
from passerelle.kube.snapshot import ClusterSnapshot
from passerelle.kube.tls import TlsTranslation, tls_options_of

FIXTURES = Path(__file__).parent / "fixtures" / "tls"
CASES = sorted(FIXTURES.glob("*.yaml"))
CA = trustme.CA()


def _materialise(node: Any, pems: dict[str, tuple[str, str]]) -> Any:
    if isinstance(node, dict):
        return {k: _materialise(v, pems) for k, v in node.items()}
    if isinstance(node, list):
        return [_materialise(v, pems) for v in node]
    if isinstance(node, str) and node.startswith("@"):
        if node == "@ca":
            return CA.cert_pem.bytes().decode()
        kind, _, name = node[1:].partition(":")
        cert, key = pems[name]
        text = {"cert": cert, "key": key, "b64cert": cert, "b64key": key}[kind]
        return base64.b64encode(text.encode()).decode() if kind.startswith("b64") else text
    return node


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_tls_translation(path: Path) -> None:
    case = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert set(case) <= {"certificates", "options", "objects", "expect"}, set(case)
    assert set(case["expect"]) <= {"certificates", "hosts", "clientCAs", "options", "problems"}, set(
        case["expect"]
    )
    pems = {}
    for name, spec in (case.get("certificates") or {}).items():
        assert set(spec) <= {"names", "expired"}, spec
        kwargs = {}
        if spec.get("expired"):
            kwargs["not_after"] = datetime.datetime(2001, 1, 1, tzinfo=datetime.UTC)
        leaf = CA.issue_cert(*spec["names"], **kwargs)
        pems[name] = (leaf.cert_chain_pems[0].bytes().decode(), leaf.private_key_pem.bytes().decode())
    raw = case.get("options") or {}
    assert set(raw) <= {"tlsOptions", "caSecrets", "defaultSecret", "staticDefault"}, raw
    options = IngressOptions(
        entrypoints=(
            EntryPointInfo(name="web", port=80),
            EntryPointInfo(name="websecure", tls=True, port=443),
        ),
        tls=TlsTranslation(
            options=frozenset(["default", *raw.get("tlsOptions", [])]),
            ca_secrets=tuple(tuple(p) for p in raw.get("caSecrets", [])),  # type: ignore[misc]
            default_secret=raw.get("defaultSecret", ""),
            static_default=raw.get("staticDefault", False),
        ),
    )
    snapshot = ClusterSnapshot.of(_materialise(case["objects"], pems))
    config, problems = translate(snapshot, options)
    expect = case["expect"]
    got_certs = [
        {"names": list(c.names), "source": c.source, "default": c.default} for c in config.tls.certificates
    ]
    assert got_certs == [{"default": False, **c} for c in expect.get("certificates") or []]
    assert [{"host": h.host, "options": h.options, "source": h.source} for h in config.tls.hosts] == (
        expect.get("hosts") or []
    )
    assert [{"options": c.options, "source": c.source} for c in config.tls.client_cas] == (
        expect.get("clientCAs") or []
    )
    got_options = [o.to_dict() for o in config.tls.options]
    wanted_options = expect.get("options") or []
    assert [{k: o[k] for k in w} for o, w in zip(got_options, wanted_options, strict=False)] == wanted_options
    assert len(got_options) == len(wanted_options), [o["name"] for o in got_options]
    for ca in config.tls.client_cas:
        assert ca.pem.startswith("-----BEGIN CERTIFICATE-----")
    wanted = expect.get("problems") or []
    # backends are not this file's subject: fixtures name Services that do not exist
    tls_problems = [p for p in problems if not p.message.startswith("Service ")]
    unmatched = list(tls_problems)
    for w in wanted:
        match = next(
            (
                p
                for p in unmatched
                if str(p.ref) == w["object"]
                and str(p.severity) == w["severity"]
                and w["message_contains"] in p.message
            ),
            None,
        )
        assert match is not None, f"no problem like {w} in {[str(p) for p in tls_problems]}"
        unmatched.remove(match)
    assert not unmatched, f"unexpected problems: {[str(p) for p in unmatched]}"
    # translation is deterministic and remembers parsed Secrets: a second pass is equal
    assert translate(snapshot, options)[0] == config


def test_annotation_keys() -> None:
    assert tls_options_of({}) == (None, None)
    assert tls_options_of({"traefik.ingress.kubernetes.io/router.tls.options": "mtls@file"}) == (
        "mtls@file",
        None,
    )
    name, warning = tls_options_of(
        {"passerelle.io/tls-options": "a", "traefik.ingress.kubernetes.io/router.tls.options": "b"}
    )
    assert name == "a" and warning is not None and "overrides" in warning


def test_spec_tls_is_validated_as_the_api_server_does() -> None:
    from passerelle.kube.objects import InvalidObject, read_ingress

    def ingress(tls: Any) -> dict[str, Any]:
        backend = {"service": {"name": "web", "port": {"number": 80}}}
        return {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": "t"},
            "spec": {"defaultBackend": backend, "tls": tls},
        }

    spec = read_ingress(ingress([{"hosts": ["a.example.com", "*.example.org"], "secretName": "s"}, {}]))
    assert [(t.hosts, t.secret_name) for t in spec.tls] == [
        (("a.example.com", "*.example.org"), "s"),
        ((), ""),
    ]
    for bad, message in (
        ({"hosts": ["A_B"]}, "spec.tls[0].hosts: 'A_B' must be a lower-case DNS name"),
        ("s", "spec.tls: must be a list"),
        ([{"secretName": 3}], "spec.tls[0].secretName: must be a string"),
    ):
        with pytest.raises(InvalidObject, match=message.replace("[", r"\[").replace("]", r"\]")):
            read_ingress(ingress(bad if isinstance(bad, list | str) else [bad]))


def test_a_secret_is_parsed_once_while_it_does_not_change(monkeypatch: pytest.MonkeyPatch) -> None:
    import passerelle.kube.tls as kube_tls
    from passerelle.kube.ingress import Translator

    calls = []
    real = kube_tls.parse_pair

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(kube_tls, "parse_pair", counting)
    leaf = CA.issue_cert("once.example.com")
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "once"},
        "type": "kubernetes.io/tls",
        "stringData": {
            "tls.crt": leaf.cert_chain_pems[0].bytes().decode(),
            "tls.key": leaf.private_key_pem.bytes().decode(),
        },
    }
    backend = {"service": {"name": "web", "port": {"number": 80}}}
    ingresses = [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": n},
            "spec": {"defaultBackend": backend, "tls": [{"secretName": "once"}]},
        }
        for n in ("a", "b")
    ]
    objects = [secret, *ingresses]
    translator = Translator()
    first, _ = translator.translate(ClusterSnapshot.of(objects))
    second, _ = translator.translate(ClusterSnapshot.of(objects))
    assert len(calls) == 1 and first == second and len(first.tls.certificates) == 1
    changed = {**secret, "metadata": {"name": "once"}}  # a new object: parsed again
    translator.translate(ClusterSnapshot.of([changed, *objects[1:]]))
    assert len(calls) == 2


def test_an_ingress_naming_an_unknown_tls_option_is_not_served() -> None:
    """Fail closed: a typo in the option name must not serve the host with the entry point's option."""
    objects = [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": name, "annotations": {"passerelle.io/tls-options": option}},
            "spec": {
                "rules": [
                    {
                        "host": f"{name}.example.com",
                        "http": {
                            "paths": [
                                {
                                    "path": "/",
                                    "pathType": "Prefix",
                                    "backend": {"service": {"name": "web", "port": {"number": 80}}},
                                }
                            ]
                        },
                    }
                ]
            },
        }
        for name, option in (("typo", "mtsl"), ("good", "mtls"))
    ]
    options = IngressOptions(
        entrypoints=(
            EntryPointInfo(name="web", port=80),
            EntryPointInfo(name="websecure", tls=True, port=443),
        ),
        tls=TlsTranslation(options=frozenset(["default", "mtls"])),
    )
    config, problems = translate(ClusterSnapshot.of(objects), options)
    hosts = {r.host for r in config.routers}
    assert "typo.example.com" not in hosts and "good.example.com" in hosts
    assert [h.host for h in config.tls.hosts] == ["good.example.com"]
    errors = [p for p in problems if str(p.ref) == "Ingress default/typo"]
    assert [p.message for p in errors] == [
        "not served: TLS option 'mtsl' is not defined in tls.options, and namespace default has no TLSOption 'mtsl'"
    ]


def test_an_invalid_tls_option_keeps_its_last_valid_definition_until_deleted() -> None:
    from passerelle.kube.ingress import Translator

    def objects(spec: dict[str, Any] | None) -> ClusterSnapshot:
        backend = {"service": {"name": "web", "port": {"number": 80}}}
        rule = {
            "host": "a.example.com",
            "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]},
        }
        ingress = {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {
                "name": "a",
                "namespace": "team",
                "annotations": {
                    "traefik.ingress.kubernetes.io/router.tls.options": "team-mtls@kubernetescrd"
                },
            },
            "spec": {"rules": [rule]},
        }
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "ca", "namespace": "team"},
            "stringData": {"ca.crt": CA.cert_pem.bytes().decode()},
        }
        option = {
            "apiVersion": "traefik.io/v1alpha1",
            "kind": "TLSOption",
            "metadata": {"name": "mtls", "namespace": "team"},
        }
        return ClusterSnapshot.of(
            [ingress, secret] + ([{**option, "spec": spec}] if spec is not None else [])
        )

    translator = Translator()
    good, _ = translator.translate(objects({"clientAuth": {"secretNames": ["ca"]}}))
    assert [o.client_auth for o in good.tls.options] == ["RequireAndVerifyClientCert"]
    broken, problems = translator.translate(objects({"clientAuth": {"secretNames": ["gone"]}}))
    assert broken.tls.options == good.tls.options and broken.tls.hosts == good.tls.hosts
    assert any("its last valid definition stays in use" in p.message for p in problems)
    deleted, problems = translator.translate(objects(None))
    assert not deleted.tls.options and not deleted.tls.hosts
    assert any(str(p.ref) == "Ingress team/a" and "does not exist" in p.message for p in problems)
    # never valid: nothing to keep, the Ingress is not served
    again, problems = translator.translate(objects({"clientAuth": {"secretNames": ["gone"]}}))
    assert not again.tls.options and not any(r.host == "a.example.com" for r in again.routers)
