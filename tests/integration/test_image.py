"""The image built from deploy/Containerfile, run as deploy/40-daemonset.yaml runs it, serves a cluster.

The cluster is the test API server (tests/kubeapi) over HTTPS with a service-account token and the
RBAC of deploy/10-rbac.yaml; the router inside the container finds it the in-cluster way
(`KUBERNETES_SERVICE_HOST`, the mounted token and CA). See tests/integration/container.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.container import CHECKOUT, IMAGE, Podman, deploy_objects, run_args
from tests.integration.harness import Backends, ingress, rule, service, wait_for
from tests.integration.test_kube_status import node, pod
from tests.integration.test_kubernetes import slice_for, with_ns
from tests.kubeapi import KubeAPI
from tests.kubeapi.fixtures import deploy_rules

NAMESPACE = "passerelle"
ACCOUNT = f"system:serviceaccount:{NAMESPACE}:passerelle"
POD = "passerelle-abcde"
HOST = "app.image.test"


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Podman:
    """The image, built once for this module (the base once per machine)."""
    tool = Podman.make(tmp_path_factory.mktemp("podman"))
    tool.ensure_base()
    tool.build()
    return tool


@pytest.fixture
def container(podman: Podman) -> Iterator[Callable[[list[str]], str]]:
    names: list[str] = []

    def start(args: list[str]) -> str:
        names.append(args[args.index("--name") + 1])
        podman("rm", "--force", "--time", "0", names[-1], check=False)  # left by an interrupted run
        podman(*args)
        return names[-1]

    yield start
    for name in names:
        podman("rm", "--force", "--time", "0", name, check=False)


def readable_dir(path: Path, files: dict[str, str]) -> Path:
    """A directory the container's user (not root) can read, as the kubelet's volumes are."""
    path.mkdir(parents=True)
    path.chmod(0o755)
    for name, text in files.items():
        (path / name).write_text(text)
        (path / name).chmod(0o644)
    return path


def test_the_image_runs_as_the_daemonset_says_and_serves_the_cluster(
    podman: Podman,
    container: Callable[[list[str]], str],
    kubeapi: Callable[..., KubeAPI],
    backends: Backends,
    tmp_path: Path,
) -> None:
    api = kubeapi(tls=True, tokens={"sa-token": ACCOUNT}, rules={ACCOUNT: deploy_rules()})
    assert api.ca is not None
    api.create(node("node-1", "192.0.2.10"))
    me = pod(POD, "node-1")
    me["metadata"]["namespace"] = NAMESPACE
    api.create(me)
    api.create(service("app"))
    api.create(slice_for("app", backends.whoami("app-pod")))
    api.create(with_ns(ingress("app", [rule(HOST, ("/", "Prefix", "app"))])))

    objects = deploy_objects()
    config = readable_dir(tmp_path / "config", objects["ConfigMap"]["data"])
    account = readable_dir(
        tmp_path / "account",
        {"token": "sa-token", "ca.crt": api.ca.cert_pem.bytes().decode(), "namespace": NAMESPACE},
    )
    env = {
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": str(api.port),
        "POD_NAME": POD,
        "POD_NAMESPACE": NAMESPACE,
        "NODE_NAME": "node-1",
    }
    name = container(
        run_args(
            objects["DaemonSet"],
            name=f"passerelle-image-test-{CHECKOUT}",
            config_dir=config,
            account_dir=account,
            env=env,
        )
    )

    def logs() -> str:
        done = podman("logs", name, check=False)
        return done.stdout + done.stderr

    ports = {
        p["name"]: p["containerPort"]
        for p in objects["DaemonSet"]["spec"]["template"]["spec"]["containers"][0]["ports"]
    }

    def ready() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{ports['ping']}/ping", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(ready, "the container's /ping", timeout=60)
        answer = httpx.get(f"http://127.0.0.1:{ports['web']}/", headers={"Host": HOST}, timeout=5)
        assert answer.status_code == 200 and answer.json()["pod"] == "app-pod"

        def counted() -> bool:  # on Prometheus's port; a worker's report may come after a busy second
            answer = httpx.get(f"http://127.0.0.1:{ports['metrics']}/metrics", timeout=5)
            return any(
                line.startswith("passerelle_requests_total{") and 'ingress="app"' in line
                for line in answer.text.splitlines()
            )

        wait_for(counted, "the request in /metrics", timeout=10)

        def published() -> list[str]:
            status = (api.get("networking.k8s.io/v1", "Ingress", "default", "app") or {}).get("status") or {}
            return [e.get("ip", "") for e in (status.get("loadBalancer") or {}).get("ingress") or []]

        wait_for(
            lambda: published() == ["192.0.2.10"], "Ingress status from inside the container", timeout=30
        )
        denied = [r for r in api.requests() if r.status in (401, 403)]
        assert not denied, denied[:5]  # in-cluster auth, and nothing deploy/10-rbac.yaml does not grant
        leases = api.objects("coordination.k8s.io/v1", "Lease")
        assert [lease["metadata"]["namespace"] for lease in leases] == [
            NAMESPACE
        ]  # it leads, in its namespace
    except BaseException:
        print(logs())
        raise
    # The kubelet's SIGTERM; the DaemonSet's grace period bounds the exit.
    grace = objects["DaemonSet"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    podman("stop", "--time", str(grace), name, timeout=grace + 30)
    exit_code = podman("inspect", name, "--format", "{{.State.ExitCode}}").stdout.strip()
    assert exit_code == "0", logs()


def test_the_image_runs_the_compiled_hot_path(podman: Podman) -> None:
    """Its build stage compiled the hot-path modules with mypyc (setup.py); the image runs them."""
    done = podman("run", "--rm", IMAGE, "version")
    assert "hot path: compiled with mypyc" in done.stdout, done.stdout + done.stderr
