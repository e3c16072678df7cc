"""Configuration changes: applied within a second, never dropping a request, never losing the last good state."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx

from tests.integration.harness import Backends, Router, echo, endpoint_slice, ingress, rule, service


def test_a_file_change_is_served_within_one_second(
    backends: Backends, make_router: Callable[..., Router]
) -> None:
    port = backends.whoami("new")
    router = make_router([service("new"), endpoint_slice("new", [port])])
    with httpx.Client(base_url=router.base, headers={"Host": "new.test"}) as client:
        assert client.get("/").status_code == 404
        router.write("ingress.yaml", [ingress("new", [rule("new.test", ("/", "Prefix", "new"))])])
        written = time.monotonic()
        while client.get("/").status_code != 200:
            assert time.monotonic() - written < 1.0, "not applied within 1 s"
            time.sleep(0.01)


def test_reloads_under_a_steady_request_stream_fail_no_request(
    backends: Backends, make_router: Callable[..., Router]
) -> None:
    a, b = backends.whoami("steady-a"), backends.whoami("steady-b")
    base = [
        service("steady"),
        endpoint_slice("steady", [a]),
        ingress("steady", [rule("steady.test", ("/", "Prefix", "steady"))]),
    ]
    router = make_router(base)
    failures: list[str] = []
    counts = {"ok": 0}
    stop = threading.Event()

    def hammer() -> None:
        with httpx.Client(base_url=router.base, headers={"Host": "steady.test"}, timeout=5) as client:
            while not stop.is_set():
                try:
                    response = client.get("/p")
                    if response.status_code != 200:
                        failures.append(f"{response.status_code} {response.text[:100]}")
                    else:
                        counts["ok"] += 1
                except httpx.HTTPError as e:
                    failures.append(repr(e))

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for n in range(15):
            version = router.version()
            # alternate the endpoints and add unrelated routes: every reload changes the tables
            slices = [endpoint_slice("steady", [a] if n % 2 else [a, b])]
            extra = [ingress(f"x{i}", [rule(f"x{i}.test", ("/", "Prefix", "steady"))]) for i in range(n)]
            router.write("objects.yaml", base[:1] + slices + base[2:] + extra)
            router.wait_version(version)
            time.sleep(0.1)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not failures, failures[:5]
    assert counts["ok"] > 200


def test_a_broken_file_keeps_the_last_good_configuration(
    backends: Backends, make_router: Callable[..., Router]
) -> None:
    port = backends.whoami("good")
    router = make_router([service("good"), endpoint_slice("good", [port])])
    router.write("ingress.yaml", [ingress("good", [rule("good.test", ("/", "Prefix", "good"))])])
    router.wait_version(1)
    router.write(
        "ingress.yaml", "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: good\nspec: [\n"
    )
    time.sleep(0.6)
    assert echo(httpx.get(f"{router.base}/", headers={"Host": "good.test"}))["pod"] == "good"
    problems = router.problems()
    assert any(p["object"] == "File ingress.yaml" and "line" in p["message"] for p in problems), problems

    # an Ingress the API server would reject keeps its last valid version serving
    bad = ingress("good", [rule("good.test", ("no-slash", "Prefix", "good"))])
    router.write("ingress.yaml", [bad])
    router.wait_problem("Ingress default/good", "must be an absolute path")
    assert echo(httpx.get(f"{router.base}/", headers={"Host": "good.test"}))["pod"] == "good"
