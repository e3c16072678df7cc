"""A real BIND 9 (Debian's `named`) on loopback for DNS sync tests: one dynamic zone, one TSIG key.

`Bind` writes a config into a temp directory (its own pid file, session key and journal, no rndc
control channel), starts `named -g` on a free port as a child process and waits until the zone
answers. `records()` reads what BIND serves with dnspython, the way a resolver would see it.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path

import dns.message
import dns.name
import dns.query
import dns.rdatatype
import dns.resolver
import dns.tsigkeyring
import dns.zone

from tests.integration.harness import free_port

NAMED = shutil.which("named") or "/usr/sbin/named"
KEY_NAME = "passerelle-key"


class Bind:
    def __init__(
        self,
        workdir: Path,
        zone: str = "example.test",
        *,
        extra_records: str = "",
        algorithm: str = "hmac-sha256",
        update_policy: str = "",  # BIND update-policy rules instead of allow-update (the key)
    ) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.zone = zone
        self.port = free_port()
        self.secret = base64.b64encode(secrets.token_bytes(32)).decode()
        self.algorithm = algorithm
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.dir / "named.log"
        (self.dir / "named.conf").write_text(
            f"""
options {{
  directory "{self.dir}";
  pid-file "{self.dir}/named.pid";
  session-keyfile "{self.dir}/session.key";
  listen-on port {self.port} {{ 127.0.0.1; }};
  listen-on-v6 {{ none; }};
  recursion no;
  dnssec-validation no;
  notify no;
}};
controls {{ }};
key "{KEY_NAME}" {{ algorithm {algorithm}; secret "{self.secret}"; }};
zone "{zone}" {{
  type primary;
  file "{zone}.db";
  {f"update-policy {{ {update_policy} }};" if update_policy else f'allow-update {{ key "{KEY_NAME}"; }};'}
  allow-transfer {{ key "{KEY_NAME}"; }};
}};
"""
        )
        (self.dir / f"{zone}.db").write_text(
            f"""$TTL 60
@ IN SOA ns.{zone}. hostmaster.{zone}. 1 60 60 600 5
@ IN NS ns.{zone}.
ns IN A 127.0.0.1
{extra_records}
"""
        )

    def start(self) -> Bind:
        if not os.path.exists(NAMED):
            raise RuntimeError("named not found: install Debian's bind9 (scripts/test does)")
        with self.log_path.open("ab") as log:
            # -g: foreground, log to stderr; -n 1: one worker thread (a shared 2-core machine);
            # -u root is only what the tests run as, named needs no privilege on a high port.
            args = [NAMED, "-g", "-n", "1", "-c", str(self.dir / "named.conf")]
            if os.geteuid() == 0:
                args += ["-u", "root"]
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"named exited with {self.process.returncode}:\n{self.log()}")
            try:
                self.query(self.zone, "SOA", timeout=0.2)
                return self
            except (dns.exception.DNSException, OSError):
                time.sleep(0.05)
        raise RuntimeError(f"named did not answer within 15s:\n{self.log()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def query(self, name: str, rtype: str, timeout: float = 2.0) -> dns.message.Message:
        request = dns.message.make_query(name, rtype)
        return dns.query.udp(request, "127.0.0.1", port=self.port, timeout=timeout)

    def addresses(self, name: str) -> set[str]:
        """The A and AAAA records BIND answers for `name` (a resolver's view)."""
        out: set[str] = set()
        for rtype in ("A", "AAAA"):
            response = self.query(name, rtype)
            for answer in response.answer:
                if answer.rdtype == dns.rdatatype.from_text(rtype):
                    out.update(rd.to_text() for rd in answer)
        return out

    def ttl(self, name: str, rtype: str = "A") -> int | None:
        for answer in self.query(name, rtype).answer:
            return int(answer.ttl)
        return None

    def txt(self, name: str) -> set[str]:
        out: set[str] = set()
        for answer in self.query(name, "TXT").answer:
            out.update(b"".join(rd.strings).decode() for rd in answer)
        return out

    def keyring(self) -> dict[dns.name.Name, dns.tsig.Key]:
        return dns.tsigkeyring.from_text({KEY_NAME: (self.algorithm, self.secret)})  # type: ignore[no-any-return]

    def settings(self) -> dict[str, object]:
        """The dnsSync.provider section that reaches this server."""
        return {
            "rfc2136": {
                "server": "127.0.0.1",
                "port": self.port,
                "tsigKeyName": KEY_NAME,
                "tsigSecret": self.secret,
                "tsigAlgorithm": self.algorithm,
                "timeout": "2s",
            }
        }
