"""Real processes on loopback: a passerelle router and echo backends, for integration tests.

`Router` runs `python -m passerelle run` as a child process with its own config and manifests
directory, exactly as a user would, and waits for `/ping`. `Backends` runs `passerelle whoami`
echo servers on an event loop in a background thread of the test process, one port each.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterable
from pathlib import Path
from typing import Any

import httpx
import yaml

from passerelle.whoami import serve_whoami

# Ports for listeners a test starts: below the kernel's ephemeral range (32768-60999 by default),
# which bind(0) and every outgoing connection draw from, so that a port handed out here is not
# taken by someone's connection before the process meant to listen on it binds it. Drawn at
# random (several test runs may share the machine) and never twice in one run.
_LISTEN_PORTS = (20000, 32767)
_handed_out: set[int] = set()
_draw = random.Random(os.getpid() ^ time.time_ns())


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on now, for a listener a test is about to start."""
    while True:
        port = _draw.randint(*_LISTEN_PORTS)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port


class Backends:
    """Echo servers (and any other asyncio servers a test needs) on one background event loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._servers: list[asyncio.AbstractServer] = []

    def call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)

    def whoami(self, pod: str, namespace: str = "default") -> int:
        """Start an echo server; returns its port."""
        server = self.call(serve_whoami("127.0.0.1", 0, pod=pod, namespace=namespace))
        self._servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    def serve(self, factory: Callable[[], Coroutine[Any, Any, asyncio.AbstractServer]]) -> int:
        server = self.call(factory())
        self._servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    def close(self) -> None:
        async def close_all() -> None:
            for server in self._servers:
                server.close()

        self.call(close_all())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        self.loop.close()


def service(
    name: str, port: int = 80, *, namespace: str = "default", port_name: str = "http"
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"ports": [{"name": port_name, "port": port}]},
    }


def endpoint_slice(
    service_name: str,
    ports: Iterable[int],
    *,
    namespace: str = "default",
    port_name: str = "http",
    suffix: str = "1",
) -> dict[str, Any]:
    """An EndpointSlice with one ready endpoint per backend port (all on 127.0.0.1).

    A slice carries one port number for all its endpoints, so backends on different ports get one
    slice each, as pods with different container ports would.
    """
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "List",
        "items": [
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": f"{service_name}-{suffix}-{i}",
                    "namespace": namespace,
                    "labels": {"kubernetes.io/service-name": service_name},
                },
                "addressType": "IPv4",
                "ports": [{"name": port_name, "port": port}],
                "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}],
            }
            for i, port in enumerate(ports)
        ],
    }


def ingress(name: str, rules: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = dict(spec)
    if rules is not None:
        body["rules"] = rules
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": name}, "spec": body}


def rule(host: str | None, *paths: tuple[str, str, str]) -> dict[str, Any]:
    """paths: (path, pathType, service) with the service's port named `http`."""
    out: dict[str, Any] = {
        "http": {
            "paths": [
                {"path": p, "pathType": t, "backend": {"service": {"name": s, "port": {"name": "http"}}}}
                for p, t, s in paths
            ]
        }
    }
    if host is not None:
        out["host"] = host
    return out


class Router:
    """A passerelle process with its own config and manifests directory."""

    def __init__(
        self, workdir: Path, *, config: dict[str, Any] | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.workdir = workdir
        self.env = dict(env or {})  # extra environment of the process ($POD_NAME, ...)
        self.manifests = workdir / "manifests"
        self.manifests.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.api_port = free_port()
        settings: dict[str, Any] = {
            "entryPoints": {"web": {"address": f"127.0.0.1:{self.port}"}},
            "providers": {"manifests": {"directory": str(self.manifests), "watch": True}},
            "api": {"address": f"127.0.0.1:{self.api_port}"},
            "log": {"level": "INFO"},
            "graceTimeout": "2s",
        }
        for key, value in (config or {}).items():
            if key == "entryPoints":
                for name, entry in value.items():
                    settings["entryPoints"].setdefault(name, {}).update(entry)
            else:
                settings[key] = value
        self.api_port = int(settings["api"]["address"].rpartition(":")[2])  # a test may choose its own
        self.config_path = workdir / "passerelle.yaml"
        self.config_path.write_text(yaml.safe_dump(settings))
        self.log_path = workdir / "passerelle.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._api = httpx.Client(base_url=f"http://127.0.0.1:{self.api_port}", timeout=5)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write(self, name: str, objects: list[dict[str, Any]] | str) -> None:
        """Write a manifest file atomically (rename), as an editor or a GitOps sync would."""
        text = objects if isinstance(objects, str) else yaml.safe_dump_all(objects)
        tmp = self.manifests / f".{name}.tmp"
        tmp.write_text(text)
        tmp.rename(self.manifests / name)

    def start(self, timeout: float = 15.0) -> Router:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "passerelle", "run", "-c", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"passerelle exited with {self.process.returncode}:\n{self.log()}")
            try:
                if self._api.get("/ping", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"passerelle did not answer /ping within {timeout:g}s:\n{self.log()}")

    def api(self, path: str) -> Any:
        return self._api.get(path).json()

    def version(self) -> int:
        return int(self.api("/api/rawdata").get("version", 0))

    def wait_version(self, after: int, timeout: float = 5.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            version = self.version()
            if version > after:
                return version
            time.sleep(0.02)
        raise AssertionError(f"no configuration newer than v{after} within {timeout}s:\n{self.log()}")

    def problems(self) -> list[dict[str, str]]:
        return list(self.api("/api/problems"))

    def wait_problem(self, obj: str, contains: str, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(p["object"] == obj and contains in p["message"] for p in self.problems()):
                return
            time.sleep(0.02)
        raise AssertionError(f"no problem on {obj} containing {contains!r}: {self.problems()}")

    def workers(self) -> list[dict[str, Any]]:
        return list(self.api("/api/workers"))

    def rss_peak_kib(self) -> dict[int, int]:
        """Peak resident memory (VmHWM) of the control plane and of every worker, by pid."""
        assert self.process is not None
        pids = [self.process.pid] + [w["pid"] for w in self.workers()]
        peaks = {}
        for pid in pids:
            status = Path(f"/proc/{pid}/status").read_text()
            peaks[pid] = int(
                next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))
            )
        return peaks

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> int:
        self._api.close()
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"passerelle did not stop within 10s of SIGTERM:\n{self.log()}") from None


def echo(response: httpx.Response) -> dict[str, Any]:
    """The JSON an echo backend answered, with a readable failure when it is something else."""
    try:
        return dict(json.loads(response.content))
    except ValueError:
        raise AssertionError(f"not an echo answer: {response.status_code} {response.text[:200]!r}") from None


def raw(port: int, data: bytes, *, timeout: float = 5.0) -> bytes:
    """Send bytes on a connection of their own, read until the server closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
        return out


def dechunk(body: bytes) -> tuple[bytes, bytes]:
    """(data, trailer section) of a chunked body."""
    data = b""
    while True:
        line, _, body = body.partition(b"\r\n")
        size = int(line, 16)
        if not size:
            return data, body
        data, body = data + body[:size], body[size + 2 :]


def wait_for(check: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    """Poll `check` until it holds; AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError(f"not within {timeout}s: {what}")
