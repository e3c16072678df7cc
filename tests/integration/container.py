"""The container image, built from deploy/Containerfile and run as deploy/ runs it, with podman.

No registry is reachable here, so the Containerfile's `FROM python:3.11-slim` cannot be pulled: the
base is built instead, once per machine, with debootstrap from Debian's archive (bookworm: its
`python3` is 3.11, with pip), and passed as the `BASE` build argument. Everything after `FROM` is
the Containerfile as users build it: the same `pip install` of the project from PyPI, user,
entry point and command.

The container is started the way the kubelet would start deploy/40-daemonset.yaml's: its args,
the downward-API environment, `securityContext` (user, read-only root, no capabilities, no
privilege escalation), the memory limit, the ConfigMap mounted at /etc/passerelle, an emptyDir on
/tmp, and a service account (token, ca.crt, namespace) with `KUBERNETES_SERVICE_HOST/PORT`, so
the router runs in-cluster mode. It shares the host's network (the DaemonSet's hostPorts map the
same container ports): a test API server and backends on loopback are reachable.

podman runs rootful with runc: crun refuses this machine's hybrid cgroup layout, and podman's
default ulimits ask for limits root may not raise here (no CAP_SYS_RESOURCE); `containers.conf`
below sets both.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
BASE = "localhost/passerelle-base:bookworm"
# One image tag per checkout: podman's images are the machine's, and two checkouts tested at once
# must not run each other's build.
CHECKOUT = hashlib.sha256(str(ROOT).encode()).hexdigest()[:8]
IMAGE = f"localhost/passerelle:test-{CHECKOUT}"
SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
PATH = "/usr/sbin:/usr/bin:/sbin:/bin"  # podman, runc and debootstrap live in /usr/sbin
CONTAINERS_CONF = '[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = "runc"\n'


class ContainerError(RuntimeError):
    """podman, buildah or debootstrap failed; the message has their output."""


def deploy_objects() -> dict[str, dict[str, Any]]:
    """deploy/*.yaml by kind (one DaemonSet and one ConfigMap are expected)."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted((ROOT / "deploy").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] in ("DaemonSet", "ConfigMap"):
                found[doc["kind"]] = doc
    return found


@dataclass
class Podman:
    """podman with this module's containers.conf (see the module docstring)."""

    conf: Path

    @classmethod
    def make(cls, directory: Path) -> Podman:
        if shutil.which("podman", path=PATH) is None or shutil.which("runc", path=PATH) is None:
            raise ContainerError("podman and runc are needed: apt-get install podman runc debootstrap")
        conf = directory / "containers.conf"
        conf.write_text(CONTAINERS_CONF)
        return cls(conf)

    def __call__(
        self, *args: str, timeout: float = 600, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["podman", *args],
            env={"PATH": PATH, "CONTAINERS_CONF": str(self.conf)},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise ContainerError(
                f"podman {' '.join(args[:2])} exited {done.returncode}:\n{done.stderr[-4000:]}"
            )
        return done

    def ensure_base(self) -> None:
        """A bookworm root file system with python3 and pip, imported as BASE (once per machine)."""
        if self("image", "exists", BASE, check=False).returncode == 0:
            return
        if shutil.which("debootstrap", path=PATH) is None:
            raise ContainerError("debootstrap is needed to build the base image: apt-get install debootstrap")
        with tempfile.TemporaryDirectory(prefix="passerelle-base-") as tmp:
            rootfs = Path(tmp) / "rootfs"
            done = subprocess.run(
                ["debootstrap", "--variant=minbase", "--include=python3,python3-pip,ca-certificates",
                 "bookworm", str(rootfs), "http://deb.debian.org/debian"],
                capture_output=True, text=True, timeout=900, env={**os.environ, "PATH": PATH},
            )  # fmt: skip
            if done.returncode != 0:
                raise ContainerError(f"debootstrap exited {done.returncode}:\n{done.stdout[-4000:]}")
            # As in the python images: `python` and `pip` install into the system interpreter.
            (rootfs / "usr/lib/python3.11/EXTERNALLY-MANAGED").unlink(missing_ok=True)
            (rootfs / "usr/bin/python").symlink_to("python3")
            # pip in the build reaches PyPI the way this machine does (its CA bundle).
            shutil.copy("/etc/ssl/certs/ca-certificates.crt", rootfs / "etc/ssl/certs/ca-certificates.crt")
            for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
                shutil.rmtree(rootfs / cache, ignore_errors=True)
            with subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE) as tar:
                imported = subprocess.run(
                    ["podman", "import", "-", BASE],
                    stdin=tar.stdout,
                    env={"PATH": PATH, "CONTAINERS_CONF": str(self.conf)},
                    capture_output=True,
                    text=True,
                    timeout=300,
                )
            if imported.returncode != 0:
                raise ContainerError(f"podman import exited {imported.returncode}:\n{imported.stderr}")

    def build(self) -> None:
        """deploy/Containerfile from the repository root, on BASE."""
        self(
            "build", "--network", "host", "--isolation", "chroot", "--build-arg", f"BASE={BASE}",
            "-f", str(ROOT / "deploy" / "Containerfile"), "-t", IMAGE, str(ROOT),
        )  # fmt: skip


def run_args(
    daemonset: dict[str, Any], *, name: str, config_dir: Path, account_dir: Path, env: dict[str, str]
) -> list[str]:
    """`podman run` arguments for the DaemonSet's container, as the kubelet would apply them."""
    pod = daemonset["spec"]["template"]["spec"]
    [container] = pod["containers"]
    security = container["securityContext"]
    args = ["run", "--detach", "--name", name, "--network", "host", "--user", f"{security['runAsUser']}"]
    if security.get("readOnlyRootFilesystem"):
        args.append("--read-only")
    for capability in security.get("capabilities", {}).get("drop", []):
        args += ["--cap-drop", capability]
    if security.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    if limit := container.get("resources", {}).get("limits", {}).get("memory"):
        args += ["--memory", limit.replace("Mi", "m").replace("Gi", "g")]
    volumes = {v["name"]: v for v in pod["volumes"]}
    for mount in container["volumeMounts"]:
        volume = volumes[mount["name"]]
        if "configMap" in volume:
            args += ["--volume", f"{config_dir}:{mount['mountPath']}:ro"]
        elif "emptyDir" in volume:
            args += ["--tmpfs", mount["mountPath"]]
        elif volume.get("secret", {}).get("optional"):  # absent, as the kubelet mounts it: empty
            args += ["--tmpfs", f"{mount['mountPath']}:ro"]
        else:
            raise ContainerError(f"volume {mount['name']}: only configMap, emptyDir, optional Secret")
    args += ["--volume", f"{account_dir}:{SERVICE_ACCOUNT}:ro"]
    for key, value in env.items():
        args += ["--env", f"{key}={value}"]
    return [*args, IMAGE, *container["args"]]
