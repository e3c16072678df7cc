"""`ping: {address}`: a listener serving only /ping, so the API can stay on loopback in a cluster."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.integration.harness import Router, free_port
from tests.kubeapi import KubeAPI


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


def test_the_ping_listener_answers_503_until_the_first_configuration(
    kubeapi: Callable[..., KubeAPI], tmp_path: Path
) -> None:
    api = kubeapi()
    api.inject(
        500, verb="list", resource="services", times=3
    )  # ~1.4 s of retries (6 backed off past the 15 s start timeout)
    port = free_port()
    config = {
        "providers": {"kubernetes": {"kubeconfig": str(api.kubeconfig(tmp_path / "kubeconfig"))}},
        "ping": {"address": f"127.0.0.1:{port}"},
    }
    router = Router(tmp_path / "r", config=config)
    starting = threading.Thread(target=router.start)  # returns once the API's /ping is 200
    starting.start()
    seen: list[int] = []
    deadline = time.monotonic() + 30
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=2) as ping:
            while starting.is_alive() or not seen or seen[-1] != 200:
                try:
                    seen.append(ping.get("/ping").status_code)
                except httpx.TransportError:
                    pass  # not listening yet
                if time.monotonic() > deadline:
                    break
                time.sleep(0.02)
        starting.join()
        assert 503 in seen and seen[-1] == 200, seen[-5:]  # the same answers as the API's /ping
        assert set(seen) == {503, 200}
    finally:
        starting.join()
        assert router.stop() == 0
