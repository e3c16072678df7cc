"""`metrics.prometheus.address`: a listener serving only /metrics; scrapes rendered off the event
loop; the series of a deleted Ingress go after the next configuration and scrape."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable
from typing import Any

import httpx
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from passerelle.api.server import Answer, serve_api
from passerelle.app import metrics_route
from passerelle.observability.aggregate import Totals
from passerelle.observability.metrics import Reloads, Sources
from tests.integration.harness import Backends, Router, endpoint_slice, free_port, ingress, rule, service


def routers_counted(text: str) -> set[str]:
    return {
        sample.labels["router"]
        for family in text_string_to_metric_families(text)
        if family.name == "passerelle_requests"
        for sample in family.samples
    }


def test_the_metrics_listener_serves_only_metrics(make_router: Callable[..., Router]) -> None:
    port = free_port()
    make_router(config={"metrics": {"prometheus": {"address": f"127.0.0.1:{port}"}}})
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as scraper:
        answer = scraper.get("/metrics")
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert "passerelle_config_reloads_total 1.0" in answer.text
        for path in ("/ping", "/api/rawdata", "/api/overview", "/dashboard/", "/", "/api/drain"):
            assert scraper.get(path).status_code == 404, path  # nothing of the API's
        assert scraper.post("/api/drain").status_code == 404
        assert scraper.post("/metrics").status_code == 405


def test_ping_and_metrics_may_share_one_address(make_router: Callable[..., Router]) -> None:
    port = free_port()
    address = f"127.0.0.1:{port}"
    make_router(config={"ping": {"address": address}, "metrics": {"prometheus": {"address": address}}})
    with httpx.Client(base_url=f"http://{address}", timeout=5) as client:
        assert client.get("/ping").status_code == 200
        assert client.get("/metrics").status_code == 200
        assert client.get("/api/rawdata").status_code == 404


def test_a_metrics_address_in_use_stops_the_start_with_its_name(make_router: Callable[..., Router]) -> None:
    router = make_router()
    taken = f"127.0.0.1:{router.api_port}"
    other = Router(router.workdir.parent / "other", config={"metrics": {"prometheus": {"address": taken}}})
    try:
        other.start(timeout=10)
    except RuntimeError as e:
        assert f"cannot listen on {taken} (metrics)" in str(e)
    else:
        other.stop()
        raise AssertionError("a second router started on an address in use")


def ingresses(backend: int, *names: str) -> list[dict[str, Any]]:
    """An Ingress `<name>` for host `<name>.test` to the Service `keep` (on `backend`), per name."""
    objects = [service("keep"), endpoint_slice("keep", [backend])]
    return objects + [ingress(name, [rule(f"{name}.test", ("/", "Prefix", "keep"))]) for name in names]


def test_a_deleted_ingress_series_go_after_the_next_configuration(
    backends: Backends, make_router: Callable[..., Router]
) -> None:
    backend = backends.whoami("pod")
    router = make_router(ingresses(backend, "keep", "gone"), config={"workers": 2})
    for host in ("keep.test", "gone.test"):
        assert httpx.get(router.base, headers={"Host": host}).status_code == 200
    scrape = lambda: httpx.get(f"http://127.0.0.1:{router.api_port}/metrics", timeout=5).text  # noqa: E731
    assert routers_counted(scrape()) == {"default-keep-keep-test", "default-gone-gone-test"}
    version = router.version()
    router.write("objects.yaml", ingresses(backend, "keep"))
    router.wait_version(version)
    assert "default-gone-gone-test" in routers_counted(scrape())  # its last counts, shown once
    assert routers_counted(scrape()) == {"default-keep-keep-test"}
    assert httpx.get(router.base, headers={"Host": "keep.test"}).status_code == 200
    assert routers_counted(scrape()) == {"default-keep-keep-test"}


class Stalled(Collector):
    """A collector that takes as long as the test wants: a very large registry."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.released: bool | None = None

    def collect(self) -> Iterable[Metric]:
        self.entered.set()
        self.released = self.release.wait(timeout=10)  # False: the test could not run meanwhile
        return ()


async def test_a_slow_scrape_does_not_stall_ping_on_the_same_loop() -> None:
    stalled = Stalled()

    async def collect() -> None:  # no workers here
        pass

    routes = {
        "/ping": lambda _: Answer(200, b"OK"),
        "/metrics": metrics_route(Sources(totals=Totals(()), reloads=Reloads(), extra=(stalled,)), collect),
    }
    server = await serve_api("127.0.0.1", 0, routes)
    port = server.sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            scraping = asyncio.ensure_future(client.get("/metrics"))
            while not stalled.entered.is_set():
                await asyncio.sleep(0.01)
            ping = await client.get("/ping")  # answered while the scrape is being rendered
            assert ping.status_code == 200 and stalled.released is None
            stalled.release.set()
            answer = await scraping
            assert answer.status_code == 200 and "passerelle_requests_total" in answer.text
            assert stalled.released is True
    finally:
        server.close()
