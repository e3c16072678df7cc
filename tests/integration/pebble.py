"""A real ACME CA for tests: Debian's `pebble`, with `pebble-challtestsrv` as its DNS server.

Every name resolves to 127.0.0.1 (challtestsrv's default A answer; no AAAA), and Pebble validates
HTTP-01 on `http_port` and TLS-ALPN-01 on `tls_port`: the ports of the passerelle entry points
under test. Pebble's own HTTPS certificate is made with trustme; `ca_file` is the file to trust.
`root()` is the root that signs issued certificates, from Pebble's management endpoint.
PEBBLE_VA_NOSLEEP skips Pebble's random validation delay, PEBBLE_WFE_NONCEREJECT=0 its random
badNonce refusals, PEBBLE_ALTERNATE_ROOTS the alternate chains it offers, and PEBBLE_AUTHZREUSE=0 its reuse of valid authorizations (each order is
validated again, so renewals and replicas are really exercised).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path
from typing import BinaryIO

import httpx
import trustme

from tests.integration.harness import free_port


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Pebble:
    def __init__(
        self,
        workdir: Path,
        *,
        http_port: int,
        tls_port: int,
        validity: int | None = None,
        eab: dict[str, str] | None = None,
        alternate_roots: int = 0,
    ) -> None:
        """eab: kid -> base64url HMAC key, and accounts must be bound to one; alternate_roots: how
        many more chains (to other roots) Pebble offers besides the default one."""
        for binary in ("pebble", "pebble-challtestsrv"):
            if shutil.which(binary) is None:
                raise RuntimeError(
                    f"{binary} is not installed (Debian package pebble; scripts/test installs it)"
                )
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.management = free_port()
        self.dns = free_udp_port()
        self.challtest_management = free_port()
        ca = trustme.CA()
        server = ca.issue_cert("127.0.0.1", "localhost")
        self.ca_file = workdir / "pebble-https-ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        server.cert_chain_pems[0].write_to_path(str(workdir / "pebble-cert.pem"))
        server.private_key_pem.write_to_path(str(workdir / "pebble-key.pem"))
        config: dict[str, object] = {
            "listenAddress": f"127.0.0.1:{self.port}",
            "managementListenAddress": f"127.0.0.1:{self.management}",
            "certificate": str(workdir / "pebble-cert.pem"),
            "privateKey": str(workdir / "pebble-key.pem"),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": bool(eab),
            "externalAccountMACKeys": eab or {},
        }
        self._alternate_roots = alternate_roots
        if validity is not None:
            config["certificateValidityPeriod"] = validity
        self.config = workdir / "pebble-config.json"
        self.config.write_text(json.dumps({"pebble": config}))
        self._processes: list[subprocess.Popen[bytes]] = []
        self._client = httpx.Client(verify=ssl.create_default_context(cafile=str(self.ca_file)), timeout=5)

    @property
    def directory(self) -> str:
        return f"https://127.0.0.1:{self.port}/dir"

    def start(self, timeout: float = 30.0) -> Pebble:
        with (self.workdir / "pebble.log").open("ab") as log:
            self._spawn(log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self._client.get(self.directory).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"pebble did not start:\n{self.log()}")

    def _spawn(self, log: BinaryIO) -> None:
        self._processes.append(
            subprocess.Popen(
                [
                    "pebble-challtestsrv",
                    "-dns01", f"127.0.0.1:{self.dns}",
                    "-http01", "", "-https01", "", "-tlsalpn01", "",
                    "-management", f"127.0.0.1:{self.challtest_management}",
                    "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )  # fmt: skip
        env = {
            **os.environ,
            "PEBBLE_VA_NOSLEEP": "1",
            "PEBBLE_WFE_NONCEREJECT": "0",
            "PEBBLE_AUTHZREUSE": "0",
            "PEBBLE_ALTERNATE_ROOTS": str(self._alternate_roots),
        }
        self._processes.append(
            subprocess.Popen(
                ["pebble", "-config", str(self.config), "-dnsserver", f"127.0.0.1:{self.dns}"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        )

    def root(self, index: int = 0) -> str:
        """The PEM root that issued certificates chain to (`index` > 0: an alternate root)."""
        response = self._client.get(f"https://127.0.0.1:{self.management}/roots/{index}")
        response.raise_for_status()
        return response.text

    def log(self) -> str:
        path = self.workdir / "pebble.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        self._client.close()
        for process in self._processes:
            process.terminate()
        for process in self._processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._processes.clear()
