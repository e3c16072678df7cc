from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.bind import Bind
from tests.integration.harness import Backends, Router
from tests.kubeapi.fixtures import kubeapi

__all__ = ["backends", "bind", "kubeapi", "make_router"]


@pytest.fixture
def bind(tmp_path: Path) -> Iterator[Bind]:
    """A BIND with the zone example.test and nothing else in it (test files that want records of
    their own in the zone define their own `bind`)."""
    server = Bind(tmp_path / "bind")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def backends() -> Iterator[Backends]:
    pool = Backends()
    yield pool
    pool.close()


@pytest.fixture
def make_router(tmp_path: Path) -> Iterator[Callable[..., Router]]:
    """Start routers; each is stopped at teardown, and must stop cleanly on SIGTERM."""
    started: list[Router] = []

    def make(objects: list[dict[str, Any]] | None = None, *, config: dict[str, Any] | None = None) -> Router:
        router = Router(tmp_path / f"router{len(started)}", config=config)
        if objects:
            router.write("objects.yaml", objects)
        started.append(router)
        return router.start()

    yield make
    for router in started:
        code = router.stop()
        assert code == 0, f"passerelle exited with {code} on SIGTERM:\n{router.log()}"
