"""`ping: {address}`: a listener serving only /ping, so the API can stay on loopback in a cluster."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from tests.integration.harness import Router, free_port


def test_the_ping_listener_serves_only_ping_with_the_apis_answers(make_router: Callable[..., Router]) -> None:
    port = free_port()
    router = make_router(config={"ping": {"address": f"127.0.0.1:{port}"}})
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as ping:
        answer = ping.get("/ping")
        assert (answer.status_code, answer.text) == (200, router._api.get("/ping").text)
        head = ping.head("/ping")
        assert head.status_code == 200 and head.content == b""
        for path in ("/api/rawdata", "/api/drain", "/dashboard/", "/"):
            assert ping.get(path).status_code == 404, path  # nothing of the API's
        assert ping.post("/ping").status_code == 405
        assert ping.post("/api/drain").status_code == 404  # the drain action is not here
        assert router._api.get("/api/drain").json()["phase"] == "serving"
        router._api.post("/api/drain")  # from loopback, on the API: drain (no DNS sync: refuse, stop)
        statuses = set()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                statuses.add(ping.get("/ping").status_code)
            except httpx.TransportError:
                break  # stopped
            time.sleep(0.01)
        assert 503 in statuses  # draining: 503, as the API's /ping
    assert router.process is not None
    assert router.process.wait(timeout=15) == 0  # the drain's own clean stop
