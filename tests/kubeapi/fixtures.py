"""The `kubeapi` fixture: start test API servers, each closed at teardown. Imported by the
conftest of every test package that needs one (tests/kubeapi, tests/integration)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.kubeapi.server import KubeAPI


@pytest.fixture
def kubeapi() -> Iterator[Callable[..., KubeAPI]]:
    """Start test API servers; each is closed at teardown."""
    started: list[KubeAPI] = []

    def make(**kwargs: Any) -> KubeAPI:
        api = KubeAPI(**kwargs).start()
        started.append(api)
        return api

    yield make
    for api in started:
        api.close()
