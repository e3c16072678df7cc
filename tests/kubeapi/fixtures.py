"""The `kubeapi` fixture: start test API servers, each closed at teardown. Imported by the
conftest of every test package that needs one (tests/kubeapi, tests/integration)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

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


DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def deploy_rules(namespace: str = "passerelle") -> list[dict[str, Any]]:
    """deploy/'s RBAC (10-rbac.yaml, 15-acme-rbac.yaml) as the test API server's rules: the
    ClusterRoles' everywhere, the Roles' only in `namespace`, the router's own (deploy/ binds
    them in `passerelle`; a test whose router runs as a pod of another namespace names that one)."""
    rules: list[dict[str, Any]] = []
    for path in sorted(DEPLOY.glob("*rbac*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc["kind"] == "ClusterRole":
                rules += doc["rules"]
            elif doc["kind"] == "Role":
                rules += [{**rule, "namespaces": [namespace]} for rule in doc["rules"]]
    return rules
