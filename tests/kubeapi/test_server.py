"""The test API server over real sockets, as a Kubernetes client sees it."""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.kubeapi.server import KubeAPI

AUTH = {"Authorization": "Bearer test-token"}
ING = "/apis/networking.k8s.io/v1/namespaces/default/ingresses"


def ingress(name: str) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": name}, "spec": {}}


def events(response: httpx.Response) -> Iterator[dict[str, Any]]:
    for line in response.iter_lines():
        if line:
            yield json.loads(line)


def test_discovery_lists_crd_groups_only_when_installed(kubeapi: Callable[..., KubeAPI]) -> None:
    plain, with_crds = kubeapi(), kubeapi(crds={"gateway.networking.k8s.io", "traefik.io"})
    groups = [g["name"] for g in httpx.get(f"{plain.url}/apis", headers=AUTH).json()["groups"]]
    assert "networking.k8s.io" in groups and "gateway.networking.k8s.io" not in groups
    groups = [g["name"] for g in httpx.get(f"{with_crds.url}/apis", headers=AUTH).json()["groups"]]
    assert {"gateway.networking.k8s.io", "traefik.io"} <= set(groups)
    names = [
        r["name"]
        for r in httpx.get(f"{with_crds.url}/apis/traefik.io/v1alpha1", headers=AUTH).json()["resources"]
    ]
    assert names == ["middlewares", "tlsoptions"]


def test_create_get_list_update_conflict_and_delete(kubeapi: Callable[..., KubeAPI]) -> None:
    api = kubeapi()
    with httpx.Client(base_url=api.url, headers=AUTH) as c:
        created = c.post(ING, json=ingress("a"))
        assert created.status_code == 201
        body = created.json()
        listed = c.get(ING).json()
        assert (
            listed["kind"] == "IngressList"
            and listed["metadata"]["resourceVersion"] == body["metadata"]["resourceVersion"]
        )
        assert [i["metadata"]["name"] for i in listed["items"]] == ["a"]
        assert c.put(f"{ING}/a", json={**body, "spec": {"x": 1}}).status_code == 200
        stale = c.put(f"{ING}/a", json=body)
        assert stale.status_code == 409 and stale.json()["reason"] == "Conflict"
        assert c.get(f"{ING}/missing").json()["code"] == 404
        assert c.delete(f"{ING}/a").status_code == 200
        assert c.get(ING).json()["items"] == []


def test_watch_streams_events_and_bookmarks_from_a_version(kubeapi: Callable[..., KubeAPI]) -> None:
    api = kubeapi(bookmark_interval=0.1)
    first = api.create(ingress("a"))
    api.create(ingress("b"))
    params = {
        "watch": "1",
        "resourceVersion": first["metadata"]["resourceVersion"],
        "allowWatchBookmarks": "true",
        "timeoutSeconds": "5",
    }
    with httpx.stream("GET", f"{api.url}{ING}", params=params, headers=AUTH, timeout=10) as r:
        assert r.headers["transfer-encoding"] == "chunked"
        stream = events(r)
        added = next(stream)
        assert added["type"] == "ADDED" and added["object"]["metadata"]["name"] == "b"
        assert added["object"]["kind"] == "Ingress"  # watch events carry kind, unlike list items
        api.delete("networking.k8s.io/v1", "Ingress", "default", "a")
        assert next(stream)["type"] == "DELETED"
        bookmark = next(stream)
        assert bookmark["type"] == "BOOKMARK"
        assert bookmark["object"]["metadata"]["resourceVersion"] == str(api.store.rv)


def test_expired_versions_are_410_gone(kubeapi: Callable[..., KubeAPI]) -> None:
    api = kubeapi()
    old = api.create(ingress("a"))["metadata"]["resourceVersion"]
    api.create(ingress("a2"))  # so that compaction leaves `old` behind
    with httpx.stream(
        "GET", f"{api.url}{ING}", params={"watch": "1", "resourceVersion": old}, headers=AUTH, timeout=10
    ) as r:
        api.expire()  # the open watch gets an ERROR event and ends
        assert [(e["type"], e["object"].get("code")) for e in events(r)] == [("ADDED", None), ("ERROR", 410)]
    with httpx.stream(
        "GET", f"{api.url}{ING}", params={"watch": "1", "resourceVersion": old}, headers=AUTH, timeout=10
    ) as r:
        assert r.status_code == 200
        only = list(events(r))
    assert only[0]["type"] == "ERROR" and only[0]["object"]["reason"] == "Expired"
    page = httpx.get(f"{api.url}{ING}", params={"limit": "1"}, headers=AUTH).json()
    api.create(ingress("b"))
    api.create(ingress("c"))
    assert page["metadata"].get("continue")
    api.expire()
    gone = httpx.get(
        f"{api.url}{ING}", params={"limit": "1", "continue": page["metadata"]["continue"]}, headers=AUTH
    )
    assert gone.status_code == 410


def test_selectors_and_status_subresource(kubeapi: Callable[..., KubeAPI]) -> None:
    api = kubeapi()
    api.create(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tls"}, "type": "kubernetes.io/tls"}
    )
    api.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "other"}, "type": "Opaque"})
    with httpx.Client(base_url=api.url, headers=AUTH) as c:
        tls = c.get("/api/v1/secrets", params={"fieldSelector": "type=kubernetes.io/tls"}).json()
        assert [s["metadata"]["name"] for s in tls["items"]] == ["tls"]
        assert c.get("/api/v1/secrets", params={"fieldSelector": "data.x=1"}).status_code == 400
        body = c.post(ING, json=ingress("a")).json()
        status = {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}
        put = c.put(f"{ING}/a/status", json={**body, "status": status})
        assert put.status_code == 200 and put.json()["status"] == status
        patched = c.patch(
            f"{ING}/a/status",
            content=json.dumps(
                {
                    "status": {"loadBalancer": {"ingress": []}},
                    "metadata": {"resourceVersion": body["metadata"]["resourceVersion"]},
                }
            ),
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert patched.status_code == 409  # the precondition names the version before the PUT


def test_tokens_client_certificates_and_rules(kubeapi: Callable[..., KubeAPI], tmp_path: Path) -> None:
    api = kubeapi(
        tls=True,
        tokens={"good": "alice"},
        rules={
            "alice": [{"apiGroups": ["networking.k8s.io"], "resources": ["ingresses"], "verbs": ["list"]}],
            "bob": [],
        },
    )
    assert api.ca is not None
    ctx = ssl.create_default_context()
    api.ca.configure_trust(ctx)
    with httpx.Client(base_url=api.url, verify=ctx) as c:
        assert c.get(ING).status_code == 401
        assert c.get(ING, headers={"Authorization": "Bearer wrong"}).json()["reason"] == "Unauthorized"
        assert c.get(ING, headers={"Authorization": "Bearer good"}).status_code == 200
        forbidden = c.post(ING, json=ingress("a"), headers={"Authorization": "Bearer good"})
        assert (
            forbidden.status_code == 403
            and 'User "alice" cannot create resource "ingresses"' in forbidden.json()["message"]
        )
    cert = api.client_cert("bob")
    cert_ctx = ssl.create_default_context()
    api.ca.configure_trust(cert_ctx)
    cert.configure_cert(cert_ctx)
    with httpx.Client(base_url=api.url, verify=cert_ctx) as c:
        assert c.get(ING).status_code == 403  # authenticated as bob, who may do nothing
    assert [(r.user, r.status) for r in api.requests()][-1] == ("bob", 403)


def test_restart_keeps_objects_and_injected_errors_answer_once(kubeapi: Callable[..., KubeAPI]) -> None:
    api = kubeapi()
    api.create(ingress("a"))
    port = api.port
    api.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{api.url}{ING}", headers=AUTH)
    api.start()
    assert api.port == port
    api.inject(500, verb="list", resource="ingresses")
    assert httpx.get(f"{api.url}{ING}", headers=AUTH).status_code == 500
    assert [i["metadata"]["name"] for i in httpx.get(f"{api.url}{ING}", headers=AUTH).json()["items"]] == [
        "a"
    ]


def test_delete_preconditions_and_rules_limited_to_namespaces(kubeapi: Callable[..., KubeAPI]) -> None:
    role = {
        "apiGroups": [""],
        "resources": ["secrets"],
        "verbs": ["create", "delete"],
        "namespaces": ["mine"],
    }
    api = kubeapi(rules={"tester": [role]})
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}
    with httpx.Client(base_url=api.url, headers=AUTH) as c:
        created = c.post("/api/v1/namespaces/mine/secrets", json=secret)
        assert created.status_code == 201
        assert c.post("/api/v1/namespaces/other/secrets", json=secret).status_code == 403  # a Role's reach
        stale = {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"resourceVersion": "1"}}
        refused = c.request("DELETE", "/api/v1/namespaces/mine/secrets/s", json=stale)
        assert refused.status_code == 409 and refused.json()["reason"] == "Conflict"
        current = {
            **stale,
            "preconditions": {"resourceVersion": created.json()["metadata"]["resourceVersion"]},
        }
        assert c.request("DELETE", "/api/v1/namespaces/mine/secrets/s", json=current).status_code == 200
