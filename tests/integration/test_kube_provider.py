"""The live provider in-process against the test API server: what it publishes, and when.

These drive KubernetesProvider directly (its `Loaded` snapshots and `health`); the end-to-end
scenarios through a passerelle process are in test_kubernetes.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

import pytest

from passerelle.backoff import Backoff
from passerelle.kube.client import ApiClient, Gone, KubeConfigError
from passerelle.kube.manifests import Loaded
from passerelle.kube.watch import KubernetesProvider, WatchOptions
from tests.kubeapi import KubeAPI

FAST = WatchOptions(throttle=0.05, backoff=Backoff(base=0.05, cap=0.2))


@pytest.fixture
def kube() -> Iterator[KubeAPI]:
    api = KubeAPI(tls=True, crds={"traefik.io"}).start()
    yield api
    api.close()


class Published:
    def __init__(self) -> None:
        self.loaded: list[Loaded] = []
        self.event = asyncio.Event()

    async def __call__(self, loaded: Loaded) -> None:
        self.loaded.append(loaded)
        self.event.set()

    async def next(self, timeout: float = 10) -> Loaded:
        self.event.clear()
        await asyncio.wait_for(self.event.wait(), timeout)
        return self.loaded[-1]

    async def until(self, test: Callable[[Loaded], bool], timeout: float = 10) -> Loaded:
        async with asyncio.timeout(timeout):
            while not (self.loaded and test(self.loaded[-1])):
                await self.next(timeout)
        return self.loaded[-1]


@asynccontextmanager
async def running(
    kube: KubeAPI, tmp_path: Path, options: WatchOptions = FAST, **kubeconfig: Any
) -> AsyncIterator[tuple[KubernetesProvider, Published]]:
    client = ApiClient.connect(str(kube.kubeconfig(tmp_path / "kubeconfig", **kubeconfig)))
    provider = KubernetesProvider(client, options)
    published = Published()
    try:
        async with asyncio.TaskGroup() as tasks:
            task = tasks.create_task(provider.run(published))
            try:
                yield provider, published
            finally:
                task.cancel()
    finally:
        await client.aclose()


def names(loaded: Loaded, kind: str) -> list[str]:
    return [o["metadata"]["name"] for o in loaded.snapshot.of_kind(kind)]


def obj(
    api_version: str, kind: str, name: str, namespace: str | None = "default", **fields: Any
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, **fields}


def tls_secret(name: str, secret_type: str = "kubernetes.io/tls") -> dict[str, Any]:
    return obj("v1", "Secret", name, type=secret_type, data={"tls.crt": "", "tls.key": ""})


async def test_every_kind_is_listed_then_watched_and_list_items_get_their_kind(
    kube: KubeAPI, tmp_path: Path
) -> None:
    kube.create(
        obj(
            "networking.k8s.io/v1",
            "Ingress",
            "web",
            spec={"tls": [{"secretName": "opaque"}, {"secretName": "cert"}]},
        )
    )
    kube.create(
        obj(
            "networking.k8s.io/v1",
            "IngressClass",
            "passerelle",
            None,
            spec={"controller": "passerelle.io/ingress-controller"},
        )
    )
    kube.create(obj("v1", "Service", "web", spec={"ports": [{"port": 80}]}))
    kube.create(obj("discovery.k8s.io/v1", "EndpointSlice", "web-1", addressType="IPv4", endpoints=[]))
    kube.create(tls_secret("cert"))
    kube.create(tls_secret("opaque", "Opaque"))  # named by the Ingress: read alone (GET)
    kube.create(obj("v1", "Secret", "unrelated", type="Opaque"))  # never read
    kube.create(obj("v1", "Node", "node-1", None))
    kube.create(obj("traefik.io/v1alpha1", "Middleware", "mw", spec={"redirectScheme": {"scheme": "https"}}))
    async with running(kube, tmp_path) as (provider, published):
        first = await published.next()
        assert {kind: names(first, kind) for kind in ("Ingress", "IngressClass", "Service", "EndpointSlice", "Secret", "Node", "Middleware")} == {
            "Ingress": ["web"], "IngressClass": ["passerelle"], "Service": ["web"], "EndpointSlice": ["web-1"],
            "Secret": ["cert", "opaque"], "Node": ["node-1"], "Middleware": ["mw"],
        }  # fmt: skip
        assert first.snapshot.get("Ingress", "default", "web")["apiVersion"] == "networking.k8s.io/v1"  # type: ignore[index]
        secret_lists = [r.query for r in kube.requests() if r.resource == "secrets" and r.verb == "list"]
        assert secret_lists and all("fieldSelector" in q for q in secret_lists)  # never every Secret
        assert not any("metadata.name" in unquote(q) for q in secret_lists)  # no list per Secret
        assert not any(
            r.verb == "watch" and "metadata.name" in unquote(r.query) for r in kube.requests()
        )  # nor a watch per Secret: a GET (the TLS one is held already)
        singles = [r.path for r in kube.requests() if r.resource == "secrets" and r.verb == "get"]
        assert singles == ["/api/v1/namespaces/default/secrets/opaque"]
        kube.patch("v1", "Service", "default", "web", {"spec": {"ports": [{"port": 81}]}})
        changed = await published.until(
            lambda s: s.snapshot.get("Service", "default", "web")["spec"]["ports"][0]["port"] == 81
        )  # type: ignore[index]
        assert changed.snapshot.of_kind("Node") is first.snapshot.of_kind("Node")  # not rebuilt
        kube.delete("v1", "Node", "", "node-1")
        kube.delete("traefik.io/v1alpha1", "Middleware", "default", "mw")
        gone = await published.until(lambda s: not names(s, "Node") and not names(s, "Middleware"))
        assert changed is not gone
        kube.replace({**kube.get("networking.k8s.io/v1", "Ingress", "default", "web"), "spec": {}})  # type: ignore[dict-item]
        await published.until(lambda s: names(s, "Secret") == ["cert"])  # no longer named: let go
        assert provider.health.connected and provider.health.synced


async def test_nothing_is_published_before_every_kind_is_listed(kube: KubeAPI, tmp_path: Path) -> None:
    for i in range(1200):  # three pages
        kube.create(obj("networking.k8s.io/v1", "Ingress", f"i{i:04}"))
    kube.create(obj("discovery.k8s.io/v1", "EndpointSlice", "web-1", addressType="IPv4", endpoints=[]))
    kube.inject(500, verb="list", resource="endpointslices", times=3)
    async with running(kube, tmp_path) as (provider, published):
        first = await published.next()
        assert len(names(first, "Ingress")) == 1200 and names(first, "EndpointSlice") == ["web-1"]
        assert provider.health.errors_total >= 3 and "500" in provider.health.last_error
        assert len(published.loaded) == 1


async def test_410_gone_relists_and_sees_what_was_deleted_meanwhile(kube: KubeAPI, tmp_path: Path) -> None:
    kube.create(obj("v1", "Service", "a"))
    kube.create(obj("v1", "Service", "b"))
    async with running(kube, tmp_path) as (provider, published):
        await published.next()
        kube.stop()
        kube.delete("v1", "Service", "default", "a")  # while the watch is down: only a list can tell
        kube.create(obj("v1", "Service", "c"))
        kube.expire()
        kube.start()
        after = await published.until(lambda s: names(s, "Service") == ["b", "c"])
        assert provider.health.relists_total >= 1 and after.snapshot.get("Service", "default", "a") is None


async def test_a_restarted_api_server_is_watched_again_from_the_last_version(
    kube: KubeAPI, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "passerelle.kubernetes")
    kube.create(obj("v1", "Service", "a"))
    async with running(kube, tmp_path) as (provider, published):
        await published.next()
        lists = sum(1 for r in kube.requests() if r.verb == "list")
        kube.stop()
        await asyncio.sleep(0.3)  # the reflectors find it gone and back off
        assert not provider.health.connected and provider.health.errors_total > 0
        kube.create(obj("v1", "Service", "b"))
        kube.start()
        await published.until(lambda s: names(s, "Service") == ["a", "b"])
        assert sum(1 for r in kube.requests() if r.verb == "list") == lists  # resumed, not re-listed
        assert provider.health.connected
    assert "the last good configuration keeps serving" in caplog.text
    assert "answers again" in caplog.text


async def test_a_bad_token_is_a_clear_error_and_nothing_is_published(kube: KubeAPI, tmp_path: Path) -> None:
    async with running(kube, tmp_path, token="wrong") as (provider, published):
        await asyncio.sleep(0.5)
        assert not published.loaded and not provider.health.connected
        assert "401" in provider.health.last_error and "credentials" in provider.health.last_error


async def test_client_certificate_authentication(kube: KubeAPI, tmp_path: Path) -> None:
    kube.create(obj("v1", "Service", "a"))
    async with running(
        kube, tmp_path, token=None, cert=kube.client_cert("system:serviceaccount:passerelle:passerelle")
    ) as (_, published):
        assert names(await published.next(), "Service") == ["a"]
    assert {r.user for r in kube.requests()} == {"system:serviceaccount:passerelle:passerelle"}


def test_an_unreadable_kubeconfig_is_a_startup_error(tmp_path: Path) -> None:
    with pytest.raises(KubeConfigError, match="not found"):
        ApiClient.connect(str(tmp_path / "missing"))


async def test_namespaces_label_selector_and_configured_secrets(kube: KubeAPI, tmp_path: Path) -> None:
    for namespace in ("a", "b"):
        kube.create(obj("v1", "Service", "svc", namespace))
        kube.create(
            {
                **obj("networking.k8s.io/v1", "Ingress", "web", namespace),
                "metadata": {"name": "web", "namespace": namespace, "labels": {"expose": "yes"}},
            }
        )
        kube.create(obj("networking.k8s.io/v1", "Ingress", "hidden", namespace))
    kube.create(obj("v1", "Secret", "client-ca", "ops", type="Opaque", data={"ca.crt": ""}))
    kube.create(obj("v1", "Node", "n1", None))
    options = WatchOptions(
        namespaces=("a",), label_selector="expose=yes", secrets=("ops/client-ca",), throttle=0.05
    )
    async with running(kube, tmp_path, options) as (_, published):
        first = await published.next()
        assert [
            (o["metadata"]["namespace"], o["metadata"]["name"]) for o in first.snapshot.of_kind("Ingress")
        ] == [("a", "web")]
        assert [o["metadata"]["namespace"] for o in first.snapshot.of_kind("Service")] == ["a"]
        assert names(first, "Node") == ["n1"]  # cluster-scoped kinds are not restricted
        assert (
            first.snapshot.get("Secret", "ops", "client-ca") is not None
        )  # named by the static configuration
        kube.patch(
            "networking.k8s.io/v1", "Ingress", "a", "hidden", {"metadata": {"labels": {"expose": "yes"}}}
        )
        await published.until(lambda s: names(s, "Ingress") == ["hidden", "web"])
        kube.patch("networking.k8s.io/v1", "Ingress", "a", "web", {"metadata": {"labels": {"expose": "no"}}})
        await published.until(lambda s: names(s, "Ingress") == ["hidden"])  # left the selector: DELETED


async def test_a_crd_installed_later_is_watched_after_the_next_discovery(tmp_path: Path) -> None:
    api = KubeAPI().start()
    try:
        api.create(obj("v1", "Service", "a"))
        options = WatchOptions(throttle=0.05, rediscover=0.2, backoff=Backoff(base=0.05, cap=0.2))
        async with running(api, tmp_path, options) as (_, published):
            first = await published.next()
            assert names(first, "Service") == ["a"] and not names(first, "Middleware")
            api.install_crds("traefik.io")
            api.create(
                obj("traefik.io/v1alpha1", "Middleware", "mw", spec={"redirectScheme": {"scheme": "https"}})
            )
            await published.until(lambda s: names(s, "Middleware") == ["mw"])
    finally:
        api.close()


async def test_a_forbidden_crd_kind_does_not_hold_the_configuration_back(tmp_path: Path) -> None:
    everything_but_traefik = [
        {
            "apiGroups": ["", "networking.k8s.io", "discovery.k8s.io"],
            "resources": ["*"],
            "verbs": ["list", "watch"],
        }
    ]
    api = KubeAPI(crds={"traefik.io"}, rules={"tester": everything_but_traefik}).start()
    try:
        api.create(obj("v1", "Service", "a"))
        async with running(api, tmp_path) as (provider, published):
            first = await published.next()
            assert names(first, "Service") == ["a"] and not names(first, "Middleware")
            assert (
                "403 Forbidden" in provider.health.last_error and "traefik.io" in provider.health.last_error
            )
    finally:
        api.close()


async def test_the_context_setting_picks_the_kubeconfig_context(kube: KubeAPI, tmp_path: Path) -> None:
    import yaml

    path = kube.kubeconfig(tmp_path / "kubeconfig")
    config = yaml.safe_load(path.read_text())
    config["clusters"].append({"name": "nowhere", "cluster": {"server": "http://127.0.0.1:9"}})
    config["contexts"].append({"name": "broken", "context": {"cluster": "nowhere", "user": "test"}})
    config["current-context"] = "broken"
    path.write_text(yaml.safe_dump(config))
    assert ApiClient.connect(str(path)).server == "http://127.0.0.1:9"
    client = ApiClient.connect(str(path), "test")
    assert client.server == kube.url
    assert (await client.get("/apis"))["kind"] == "APIGroupList"
    await client.aclose()
    with pytest.raises(KubeConfigError, match="missing"):
        ApiClient.connect(str(path), "missing")


async def test_a_token_file_that_appears_later_is_read_then(kube: KubeAPI, tmp_path: Path) -> None:
    import yaml

    token = tmp_path / "token"
    path = kube.kubeconfig(tmp_path / "kubeconfig", token=None)
    config = yaml.safe_load(path.read_text())
    config["users"][0]["user"]["tokenFile"] = str(token)
    path.write_text(yaml.safe_dump(config))
    kube.create(obj("v1", "Service", "a"))
    client = ApiClient.connect(str(path))
    provider = KubernetesProvider(client, FAST)
    published = Published()
    try:
        async with asyncio.TaskGroup() as tasks:
            task = tasks.create_task(provider.run(published))
            await asyncio.sleep(0.5)
            assert not published.loaded and "not found" in provider.health.last_error  # retried, not crashed
            token.write_text("test-token\n")  # the kubelet mounts the projected token
            assert names(await published.next(), "Service") == ["a"]
            task.cancel()
    finally:
        await client.aclose()


async def test_the_routers_own_pods_are_in_the_snapshot_for_status_and_dns(
    kube: KubeAPI, tmp_path: Path
) -> None:
    for name, namespace, app in (
        ("r1", "ingress", "passerelle"),
        ("other", "ingress", "web"),
        ("r2", "default", "passerelle"),
    ):
        kube.create(
            {
                **obj("v1", "Pod", name, namespace),
                "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/name": app}},
            }
        )
    options = WatchOptions(throttle=0.05, pods=(("ingress", "app.kubernetes.io/name=passerelle"),))
    async with running(kube, tmp_path, options) as (_, published):
        first = await published.next()
        assert [
            (o["metadata"]["namespace"], o["metadata"]["name"]) for o in first.snapshot.of_kind("Pod")
        ] == [("ingress", "r1")]


async def test_a_named_secret_that_is_not_tls_is_read_again_every_period(
    kube: KubeAPI, tmp_path: Path
) -> None:
    ingress = obj("networking.k8s.io/v1", "Ingress", "web", spec={"tls": [{"secretName": "later"}]})
    kube.create(ingress)
    options = WatchOptions(throttle=0.05, backoff=Backoff(base=0.05, cap=0.2), secret_period=0.3)
    async with running(kube, tmp_path, options) as (provider, published):
        first = await published.next()
        assert names(first, "Secret") == []  # missing (404): published without it
        kube.create(tls_secret("later", "Opaque"))
        await published.until(lambda s: names(s, "Secret") == ["later"])  # the next round's GET
        kube.delete("v1", "Secret", "default", "later")
        await published.until(lambda s: names(s, "Secret") == [])
        kube.create(tls_secret("later"))  # now a TLS Secret: the TLS watch has it
        await published.until(lambda s: names(s, "Secret") == ["later"])
        watches = [r for r in kube.requests() if r.resource == "secrets" and r.verb == "watch"]
        assert all("metadata.name" not in unquote(r.query) for r in watches)


def _rv(query: str) -> int:
    return int(parse_qs(query)["resourceVersion"][0])


async def test_a_bookmark_moves_the_version_a_watch_resumes_from(kube: KubeAPI, tmp_path: Path) -> None:
    kube.create(obj("v1", "Node", "n1", None))
    async with running(kube, tmp_path) as (_, published):
        await published.next()
        node_watches = lambda: [r for r in kube.requests() if r.resource == "nodes" and r.verb == "watch"]  # noqa: E731
        for i in range(3):  # the cluster's version moves on; nothing a Node watch selects changes
            kube.create(obj("v1", "Service", f"s{i}"))
        await asyncio.sleep(1.5)  # a BOOKMARK (every second) carries the new version
        kube.stop()  # a watch is in the request log once it has ended
        [first] = node_watches()
        kube.start()
        async with asyncio.timeout(10):
            while kube.watches() < 8:  # every reflector is watching again (8 kinds)
                await asyncio.sleep(0.05)
        kube.stop()
        kube.start()
        assert _rv(node_watches()[1].query) > _rv(first.query)  # resumed from the bookmark's version
        assert sum(1 for r in kube.requests() if r.resource == "nodes" and r.verb == "list") == 1


async def test_an_http_410_on_a_watch_request_relists(kube: KubeAPI, tmp_path: Path) -> None:
    kube.create(obj("v1", "Service", "a"))
    async with running(kube, tmp_path) as (provider, published):
        await published.next()
        kube.stop()
        kube.delete("v1", "Service", "default", "a")  # while the watch is down: only a list can tell
        kube.inject(410, verb="watch", resource="services")  # the status line, not an ERROR event
        kube.start()
        await published.until(lambda s: names(s, "Service") == [])
        watches = [r for r in kube.requests() if r.resource == "services" and r.verb == "watch"]
        assert 410 in [r.status for r in watches] and provider.health.relists_total >= 1
        assert sum(1 for r in kube.requests() if r.resource == "services" and r.verb == "list") == 2


async def test_an_expired_continue_token_mid_list_is_gone(kube: KubeAPI, tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        kube.create(obj("v1", "Service", name))
    client = ApiClient.connect(str(kube.kubeconfig(tmp_path / "kubeconfig")))
    try:
        page = await client.get("/api/v1/services", {"limit": "1"})
        token = page["metadata"]["continue"]
        kube.create(obj("v1", "Service", "d"))
        kube.expire()  # compacted between two pages
        with pytest.raises(Gone):  # the reflector lists again from the start (as on any 410)
            await client.get("/api/v1/services", {"limit": "1", "continue": token})
    finally:
        await client.aclose()
