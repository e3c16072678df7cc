#!/usr/bin/env python3
"""Throughput/latency benchmark: passerelle against nginx (and HAProxy, Caddy when installed).

Everything runs on loopback: an nginx backend serves /small (13 bytes) and /64k (65536 bytes),
each proxy forwards to it, and wrk drives every target in turn, interleaved across rounds. Every proxy
runs once per worker count (--workers), passerelle also once per number of Ingresses (--routes), and
--reload adds a scenario that reloads the proxies' configuration every second while wrk runs; the
tls and tls64k scenarios send the same requests over https, every proxy terminating TLS 1.3 with one
certificate generated at start.
Run from the repository root:  .venv/bin/python benchmarks/run.py   (see benchmarks/README.md)
Stdlib only; needs nginx, wrk and taskset (util-linux) on PATH, and openssl for the TLS scenarios.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from string import Template

REPO = Path(__file__).resolve().parent.parent
PASSERELLE = REPO / ".venv" / "bin" / "passerelle"
SMALL_BODY = "Hello, World!"
SERVER_CPU, WRK_CPU = 0, 1  # 1 worker: backend and proxies share CPU 0, wrk has CPU 1 (see README)
SCENARIOS = {  # name -> (path, connections (None: --connections), wrk threads)
    "small": ("/small", None, 2),
    "64k": ("/64k", None, 2),
    "1conn": ("/small", 1, 1),
    "reload": ("/small", None, 2),  # small, while the proxy reloads its configuration every second
    "tls": ("/small", None, 2),  # small over https, to each proxy's TLS listener
    "tls64k": ("/64k", None, 2),  # 64k over https
}
TLS_SCENARIOS = {"tls", "tls64k"}  # the proxies get a TLS listener only when one of these runs
RELOAD_PERIOD = 1.0  # seconds between two reloads in the reload scenario
# TLS, the same for every proxy (see README, "TLS"): TLS 1.3 only, ALPN http/1.1, one ECDSA P-256
# certificate for *.bench.local, and one cipher suite and one group. passerelle (Python's ssl) and
# Caddy (Go) cannot restrict TLS 1.3 suites, so wrk offers only these (an OpenSSL config in its
# environment) and every server has to pick them; nginx and HAProxy are configured with them as well.
TLS_SUITE, TLS_GROUP = "TLS_AES_128_GCM_SHA256", "X25519"
TLS_CERT = "self-signed ECDSA P-256 (SHA-256), CN bench.local, SAN *.bench.local and bench.local"
OPENSSL_CLIENT_CONF = f"""openssl_conf = openssl_init
[openssl_init]
ssl_conf = ssl_module
[ssl_module]
system_default = bench_tls
[bench_tls]
MinProtocol = TLSv1.3
Ciphersuites = {TLS_SUITE}
Groups = {TLS_GROUP}
"""
# wrk sends the URL's host as SNI, and resolves it: the URL names the bench host (so that SNI picks
# the bench certificate, as a real client would), and this script connects to 127.0.0.1 instead.
WRK_RESOLVE_LUA = """wrk.resolve = function(host, service)
  wrk.addrs = wrk.lookup("127.0.0.1", service)
end
"""


def host_of(routes: int) -> str:
    """The Host wrk sends: the last of passerelle's Ingress hosts h0.bench.local ... h<routes-1>."""
    return f"h{routes - 1}.bench.local"


# -- configurations: string.Template ($name) so that nginx and Caddy braces stay readable ------------

NGINX_MAIN = """${user}daemon off;
worker_processes $workers;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $dir/cb; proxy_temp_path $dir/px; fastcgi_temp_path $dir/fc;
  uwsgi_temp_path $dir/uw; scgi_temp_path $dir/sc;
$body}
"""
BACKEND_BODY = """  sendfile on;
  server {
    listen 127.0.0.1:$port;
    location = /small { default_type text/plain; return 200 "$small"; }
    location = /64k { default_type application/octet-stream; root $www; }
  }
"""
NGINX_PROXY_BODY = """  upstream backend { server 127.0.0.1:$backend; keepalive 64; }
  server {
    listen 127.0.0.1:$port;
    server_name $host;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
"""
NGINX_TLS_SERVER = """  server {
    listen 127.0.0.1:$tls_port ssl;
    server_name $host;
    ssl_certificate $cert;
    ssl_certificate_key $key;
    ssl_protocols TLSv1.3;
    ssl_conf_command Ciphersuites $suite;
    ssl_ecdh_curve $group;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
"""
ROUTE = """apiVersion: v1
kind: Service
metadata: {name: svc-$i}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: svc-$i-1, labels: {kubernetes.io/service-name: svc-$i}}
addressType: IPv4
ports: [{name: http, port: $backend}]
endpoints: [{addresses: ["127.0.0.1"]}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: ing-$i$annotations}
spec:$tls
  rules:
  - host: h$i.bench.local
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: svc-$i, port: {name: http}}}}
"""
ROUTE_TLS = {  # with TLS, each Ingress is served on both entry points and names the bench Secret
    "annotations": ", annotations: {passerelle.io/entrypoints: 'web,websecure'}",
    "tls": "\n  tls: [{hosts: [h$i.bench.local], secretName: bench-tls}]",
}
TLS_SECRET = """apiVersion: v1
kind: Secret
metadata: {name: bench-tls}
type: kubernetes.io/tls
data: {tls.crt: $crt, tls.key: $key}
"""
EXTRA_INGRESS = """apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: reload-extra}
spec:
  rules:
  - host: reload.bench.local
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: svc-0, port: {name: http}}}}
"""
PASSERELLE_CONF = """entryPoints:
  web: {address: "127.0.0.1:$port"}$tls_entry
providers:
  manifests: {directory: $manifests, watch: true}
$tls_conf
api: {address: "127.0.0.1:$api"}
log: {level: WARNING}
workers: $workers
graceTimeout: 2s
$metrics"""
PASSERELLE_TLS_ENTRY = """
  websecure: {address: "127.0.0.1:$tls_port", tls: {}}"""
PASSERELLE_TLS_CONF = """tls:
  options:
    default: {minVersion: VersionTLS13, alpnProtocols: [http/1.1]}"""
HAPROXY_CONF = """global
  nbthread $workers
  maxconn 4096  # a global maxconn of 10000 needs more file descriptors than this sandbox allows
defaults
  mode http
  http-reuse always
  # Retry a request whose pooled connection the backend had closed, as nginx (proxy_next_upstream
  # error) and passerelle (one retry of a stale pooled connection) do.
  retries 2
  retry-on conn-failure empty-response
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend web
  bind 127.0.0.1:$port
  default_backend app
$tls_frontend
backend app
  server s1 127.0.0.1:$backend
"""
HAPROXY_TLS_FRONTEND = """frontend websecure
  bind 127.0.0.1:$tls_port ssl crt $pem alpn http/1.1 ssl-min-ver TLSv1.3 ciphersuites $suite curves $group
  default_backend app
"""
CADDYFILE = """{
  admin off
  auto_https off$tls_servers
}
http://$host:$port {
  bind 127.0.0.1
  reverse_proxy 127.0.0.1:$backend
}
$tls_site"""
CADDY_TLS_SERVERS = """
  servers 127.0.0.1:$tls_port {
    protocols h1
  }"""
CADDY_TLS_SITE = """https://$host:$tls_port {
  bind 127.0.0.1
  tls $cert $key {
    protocols tls1.3
    curves x25519
  }
  reverse_proxy 127.0.0.1:$backend
}
"""


def write(path: Path, template: str, **values) -> str:
    write_atomic(path, Template(template).substitute(values))
    return str(path)


def write_atomic(path: Path, text: str) -> None:
    """Write a hidden temporary file next to path, then rename it: a watcher never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


@dataclass
class Target:
    """One server under test: a proxy with a given number of workers (and, for passerelle, of Ingresses)."""

    name: str
    workers: int
    routes: int | None  # Ingresses in passerelle's manifests; None for the backend and the other proxies
    host: str  # the Host header wrk sends
    dir: Path  # its configuration, temporary files and logs
    port: int = 0
    tls_port: int = 0  # its TLS listener, when a TLS scenario runs (0: none, as for the backend)
    proc: subprocess.Popen | None = None
    api: str | None = None  # passerelle's API base URL

    @property
    def label(self) -> str:
        return f"{self.name} w{self.workers}" + (f" r{self.routes}" if self.routes else "")


@dataclass(frozen=True)
class TLS:
    """The bench certificate (ECDSA P-256, for *.bench.local and bench.local) and the files using it."""

    cert: Path  # PEM certificate
    key: Path  # PEM private key
    pem: Path  # both, for HAProxy's crt
    client_conf: Path  # OPENSSL_CONF for wrk: TLS 1.3, TLS_SUITE, TLS_GROUP
    lua: Path  # wrk script: connect to 127.0.0.1 whatever the URL's host


def make_tls(tmp: Path) -> TLS:
    """One self-signed ECDSA P-256 certificate for every proxy, generated with openssl."""
    d = tmp / "tls"
    d.mkdir()
    tls = TLS(d / "cert.pem", d / "key.pem", d / "both.pem", d / "openssl-client.cnf", d / "resolve.lua")
    argv = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 7".split()
    argv += ["-subj", "/CN=bench.local", "-addext", "subjectAltName=DNS:*.bench.local,DNS:bench.local"]
    subprocess.run([*argv, "-keyout", tls.key, "-out", tls.cert], check=True, capture_output=True)
    tls.pem.write_bytes(tls.cert.read_bytes() + tls.key.read_bytes())
    tls.client_conf.write_text(OPENSSL_CLIENT_CONF)
    tls.lua.write_text(WRK_RESOLVE_LUA)
    return tls


# One function per target: write its configuration, return (argv, extra environment, API base URL).
# With tls (a TLS scenario runs), a proxy also listens on t.tls_port and terminates TLS there.


def nginx_argv(t: Target, body: str) -> list[str]:
    """An nginx config with every file it writes in t.dir; as root, workers must stay root to read it."""
    for sub in ("cb", "px", "fc", "uw", "sc"):
        (t.dir / sub).mkdir(parents=True, exist_ok=True)
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf = write(t.dir / "nginx.conf", NGINX_MAIN, user=user, dir=t.dir, workers=t.workers, body=body)
    return ["nginx", "-p", str(t.dir), "-e", f"{t.dir}/error.log", "-c", conf]


def backend_spec(t: Target, _backend: int, _tls: TLS | None):
    (t.dir / "www").mkdir(parents=True)
    (t.dir / "www" / "64k").write_bytes(b"x" * 65536)
    body = Template(BACKEND_BODY).substitute(port=t.port, small=SMALL_BODY, www=t.dir / "www")
    return nginx_argv(t, body), None, None


def nginx_spec(t: Target, backend: int, tls: TLS | None):
    body = Template(NGINX_PROXY_BODY).substitute(port=t.port, backend=backend, host=t.host)
    if tls:
        body += Template(NGINX_TLS_SERVER).substitute(
            tls_port=t.tls_port, host=t.host, cert=tls.cert, key=tls.key, suite=TLS_SUITE, group=TLS_GROUP
        )
    return nginx_argv(t, body), None, None


def passerelle_spec(t: Target, backend: int, tls: TLS | None):
    """t.routes Ingresses (each with its Service and EndpointSlice) in routes.yaml, and an empty reload.yaml.
    With tls: a TLS entry point, and every Ingress on both entry points with the bench Secret in spec.tls."""
    api, manifests = free_port(), t.dir / "manifests"
    extra = ROUTE_TLS if tls else {"annotations": "", "tls": ""}
    route = Template(ROUTE).safe_substitute(extra)  # ROUTE_TLS holds $i too
    documents = [Template(route).substitute(i=i, backend=backend) for i in range(t.routes)]
    if tls:
        crt, key = (base64.b64encode(f.read_bytes()).decode() for f in (tls.cert, tls.key))
        documents.insert(0, Template(TLS_SECRET).substitute(crt=crt, key=key))
    write_atomic(manifests / "routes.yaml", "---\n".join(documents))
    write_atomic(manifests / "reload.yaml", "")
    conf = write(
        t.dir / "passerelle.yaml",
        PASSERELLE_CONF,
        port=t.port,
        api=api,
        manifests=manifests,
        workers=t.workers,
        tls_entry=Template(PASSERELLE_TLS_ENTRY).substitute(tls_port=t.tls_port) if tls else "",
        tls_conf=PASSERELLE_TLS_CONF if tls else "",
        metrics="metrics: {prometheus: false}" if t.name == NO_METRICS else "",
    )
    return [str(PASSERELLE), "run", "-c", conf], None, f"http://127.0.0.1:{api}"


def haproxy_spec(t: Target, backend: int, tls: TLS | None):
    frontend = ""
    if tls:
        frontend = Template(HAPROXY_TLS_FRONTEND).substitute(
            tls_port=t.tls_port, pem=tls.pem, suite=TLS_SUITE, group=TLS_GROUP
        )
    conf = write(
        t.dir / "haproxy.cfg",
        HAPROXY_CONF,
        port=t.port,
        backend=backend,
        workers=t.workers,
        tls_frontend=frontend,
    )
    return ["haproxy", "-db", "-f", conf], None, None


def caddy_spec(t: Target, backend: int, tls: TLS | None):
    servers = site = ""
    if tls:
        servers = Template(CADDY_TLS_SERVERS).substitute(tls_port=t.tls_port)
        site = Template(CADDY_TLS_SITE).substitute(
            host=t.host, tls_port=t.tls_port, cert=tls.cert, key=tls.key, backend=backend
        )
    conf = write(
        t.dir / "Caddyfile",
        CADDYFILE,
        host=t.host,
        port=t.port,
        backend=backend,
        tls_servers=servers,
        tls_site=site,
    )
    env = {
        "GOMAXPROCS": str(t.workers),
        "XDG_DATA_HOME": f"{t.dir}/caddy",
        "XDG_CONFIG_HOME": f"{t.dir}/caddy",
    }
    return ["caddy", "run", "--config", conf, "--adapter", "caddyfile"], env, None


# (name, binary, spec): the backend first, then the proxies; a proxy whose binary is missing is skipped
TARGETS = [
    ("backend", "nginx", backend_spec),
    ("passerelle", str(PASSERELLE), passerelle_spec),
    ("passerelle-nometrics", str(PASSERELLE), passerelle_spec),  # only with --metrics-off
    ("nginx", "nginx", nginx_spec),
    ("haproxy", "haproxy", haproxy_spec),
    ("caddy", "caddy", caddy_spec),
]
SPECS = {name: spec for name, _, spec in TARGETS}
REFERENCES = ("nginx", "caddy")  # ratios of req/s are computed against these, when present
NO_METRICS = "passerelle-nometrics"  # passerelle with `metrics: {prometheus: false}`: what metrics cost


def plan(tmp: Path, args) -> list[Target]:
    """The backend, then every installed proxy once per worker count; passerelle once per route count too."""
    base_host = host_of(min(args.routes))
    targets = [Target("backend", 1, None, base_host, tmp / "backend")]
    for name, binary, _ in TARGETS[1:]:
        if not shutil.which(binary):
            print(f"note: {binary} not found, skipping {name}")
            continue
        if name == NO_METRICS and not args.metrics_off:
            continue
        for workers in args.workers:
            for routes in args.routes if name.startswith("passerelle") else [None]:
                host = host_of(routes) if routes else base_host
                suffix = f"-r{routes}" if routes else ""
                targets.append(Target(name, workers, routes, host, tmp / f"{name}-w{workers}{suffix}"))
    return targets


# -- processes -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_cpus(workers: int) -> set[int]:
    """1 worker: CPU 0 (wrk has CPU 1). More workers cannot fit on one CPU: every CPU (see README)."""
    return {SERVER_CPU} if workers == 1 else set(range(os.cpu_count() or 1))


def launch(t: Target, backend: int, tls: TLS | None) -> None:  # backend: its port (0 for the backend)
    """Write t's configuration and start it in its own process group, output to <dir>/server.out;
    with 1 worker it runs under taskset on SERVER_CPU, its worker processes and threads inherit that."""
    t.dir.mkdir(parents=True, exist_ok=True)
    t.port = free_port()
    if tls and t.name != "backend":
        t.tls_port = free_port()
    argv, env, t.api = SPECS[t.name](t, backend, tls)
    if t.workers == 1:
        argv = ["taskset", "-c", str(SERVER_CPU), *argv]
    with open(t.dir / "server.out", "wb") as out:
        t.proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the process group we created (nginx master and workers, passerelle and its workers, ...),
    SIGCONT it in case it is paused; SIGKILL whatever is left of the group after 5 s."""
    for sig in (signal.SIGTERM, signal.SIGCONT):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        proc.poll()  # reap the leader, or the group never looks empty
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)  # noqa: TID251 (a script, not the event loop)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def pause(t: Target) -> None:
    """SIGSTOP t's processes: an idle target's background work must not run during another's
    measurement (passerelle's manifests polling costs ~40% of a CPU at 10,000 Ingresses, see README)."""
    os.killpg(t.proc.pid, signal.SIGSTOP)


def resume(t: Target) -> None:
    """SIGCONT t's processes, and wait until a request goes through."""
    os.killpg(t.proc.pid, signal.SIGCONT)
    for attempt in range(3):  # a connection pooled before the pause may have been closed meanwhile
        try:
            get(f"http://127.0.0.1:{t.port}/small", t.host)
            return
        except OSError:
            if attempt == 2:
                raise


def get(url: str, host: str = "localhost", timeout: float = 10) -> bytes:
    """GET url with that Host header; raises OSError unless it answers 200."""
    with urllib.request.urlopen(urllib.request.Request(url, headers={"Host": host}), timeout=timeout) as r:
        if r.status != 200:
            raise OSError(f"{url}: status {r.status}")
        return r.read()


def get_tls(t: Target, path: str, tls: TLS, timeout: float = 10) -> bytes:
    """GET path over https from t's TLS listener, with SNI and Host t.host, verifying the bench
    certificate (so: the bench certificate was served for that name), TLS 1.3, and ALPN http/1.1
    although h2 is offered too; raises OSError unless all of that holds and the answer is 200."""
    context = ssl.create_default_context(cafile=str(tls.cert))
    context.set_alpn_protocols(["h2", "http/1.1"])
    request = f"GET {path} HTTP/1.1\r\nHost: {t.host}\r\nConnection: close\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", t.tls_port), timeout=timeout) as raw:
        with context.wrap_socket(raw, server_hostname=t.host) as conn:
            if conn.version() != "TLSv1.3" or conn.selected_alpn_protocol() != "http/1.1":
                raise OSError(f"{t.label}: {conn.version()}, ALPN {conn.selected_alpn_protocol()!r}")
            conn.sendall(request)
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200 "):
        raise OSError(f"https {path}: {head[:40]!r}")
    if b"\r\ntransfer-encoding:" in head.lower():
        raise OSError(f"https {path}: chunked, expected a Content-Length body")
    return body


def wait_until(what: str, t: Target, probe: Callable, timeout: float, every: float = 0.1):
    """Call probe() until it returns something true (an OSError counts as not yet) and return that;
    exit if t dies or the timeout expires."""
    deadline = time.monotonic() + timeout
    while True:
        if t.proc.poll() is not None:
            raise SystemExit(f"{t.label} exited with code {t.proc.returncode} (its output is in {t.dir})")
        with contextlib.suppress(OSError):
            if value := probe():
                return value
        if time.monotonic() > deadline:
            raise SystemExit(f"{t.label}: {what} not reached within {timeout:g}s")
        time.sleep(every)  # noqa: TID251 (a script, not the event loop)


def api(t: Target, path: str):
    return json.loads(get(f"{t.api}{path}", timeout=30))


def routers_applied(t: Target) -> bool:
    return len(api(t, "/api/rawdata").get("routers", [])) >= t.routes


def check(t: Target, tls: TLS | None) -> None:
    """Wait until t serves: for passerelle, until every worker applied all its routers; then fetch both
    paths through it (with the Host wrk will send) and check the body sizes, over https too if tls."""
    started = time.monotonic()
    if t.api:  # parsing 10,000 Ingresses takes a while (see README)
        wait_until(f"{t.routes} routers applied", t, lambda: routers_applied(t), 60 + 0.05 * t.routes, 1)
    for path, size in (("/small", len(SMALL_BODY)), ("/64k", 65536)):
        url = f"http://127.0.0.1:{t.port}{path}"
        body = wait_until(f"200 on {path}", t, lambda url=url: get(url, t.host, timeout=2), timeout=20)
        if len(body) != size:
            raise SystemExit(f"{t.label} {path}: expected {size} bytes, got {len(body)}")
        if tls and t.tls_port:
            body = wait_until(
                f"200 on https {path}", t, lambda path=path: get_tls(t, path, tls, timeout=2), timeout=20
            )
            if len(body) != size:
                raise SystemExit(f"{t.label} https {path}: expected {size} bytes, got {len(body)}")
    print(
        f"started {t.label:<22} pid {t.proc.pid:<7} port {t.port:<5} ready in {time.monotonic() - started:.1f}s"
    )


def start_targets(tmp: Path, args, procs: list, tls: TLS | None) -> list[Target]:
    """Start the backend, then every proxy at once (passerelle's big configurations load in parallel)."""
    backend, *proxies = targets = plan(tmp, args)
    for t in targets:
        launch(t, backend.port, tls)
        procs.append(t.proc)
        if t is backend:
            check(backend, None)
    for t in proxies:
        check(t, tls)
    for t in proxies:
        pause(t)  # each proxy runs only during its own measurements
    return targets


# -- /proc: memory and CPU -----------------------------------------------------------------------


def family(pid: int) -> list[int]:
    """pid and all its descendants, pid first."""
    pids = [pid]
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                pids += family(int(child))
    except FileNotFoundError:
        pass
    return pids


def usage(pid: int) -> tuple[list[int], float]:
    """VmRSS in KiB of pid and of each live descendant (pid first), and the CPU seconds (user + system)
    they used so far, including that of the descendants they reaped (nginx's workers after a reload)."""
    rss, ticks = [], 0
    for p in family(pid):
        try:
            status = Path(f"/proc/{p}/status").read_text()
            stat = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        ticks += sum(int(x) for x in stat[11:15])  # utime, stime, cutime, cstime
        if m := re.search(r"^VmRSS:\s+(\d+)", status, re.M):  # a zombie has none
            rss.append(int(m.group(1)))
    return rss, ticks / os.sysconf("SC_CLK_TCK")


def pin(pid: int, cpus: set[int]) -> None:
    """Set the CPU affinity of every thread of pid and of its descendants."""
    for p in family(pid):
        with contextlib.suppress(FileNotFoundError):
            for task in Path(f"/proc/{p}/task").iterdir():
                with contextlib.suppress(ProcessLookupError):
                    os.sched_setaffinity(int(task.name), cpus)


def cpu_times() -> dict[str, tuple[int, int, int]]:
    """Per-CPU (busy, steal, total) jiffies from /proc/stat; busy = not idle, iowait or steal."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *vals = line.split()
        if re.fullmatch(r"cpu\d+", name):
            v = [int(x) for x in vals[:8]]  # user nice system idle iowait irq softirq steal
            out[name] = (sum(v) - v[3] - v[4] - v[7], v[7], sum(v))
    return out


def busy_pct(before: dict, after: dict) -> dict[str, float]:
    """Busy % of each CPU between two cpu_times() samples, and '<cpu>_steal': % taken by the hypervisor."""
    out = {}
    for cpu, (busy, steal, total) in before.items():
        span = max(1, after[cpu][2] - total)
        out[cpu] = round(100 * (after[cpu][0] - busy) / span, 1)
        out[f"{cpu}_steal"] = round(100 * (after[cpu][1] - steal) / span, 1)
    return out


# -- reloads -------------------------------------------------------------------------------------


def reload_step(t: Target) -> Callable[[int], None] | None:
    """One configuration reload of t (the n-th), or None for a target the reload scenario skips."""
    if t.name.startswith("passerelle"):  # add, then remove, an Ingress: every write is a new configuration
        path = t.dir / "manifests" / "reload.yaml"
        return lambda n: write_atomic(path, "" if n % 2 else EXTRA_INGRESS)
    if t.name == "nginx":  # nginx -s reload: new workers, the old ones finish their requests and exit
        return lambda _: os.kill(t.proc.pid, signal.SIGHUP)
    return None


class Reloader(threading.Thread):
    """Calls step(n) every RELOAD_PERIOD seconds while the `with` block runs; count says how often."""

    def __init__(self, step: Callable[[int], None]) -> None:
        super().__init__(daemon=True)
        self.step, self.count, self.error = step, 0, None
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(RELOAD_PERIOD):
            try:
                self.step(self.count)
            except Exception as e:
                self.error = e
                return
            self.count += 1

    def __enter__(self) -> Reloader:
        self.start()
        return self

    def __exit__(self, *_) -> None:
        self.done.set()
        self.join()
        if self.error:
            raise RuntimeError(f"reload failed: {self.error!r}")


def passerelle_state(t: Target) -> tuple[int, int]:
    """(newest configuration version every worker applied, total worker restarts), from /api/workers:
    /api/rawdata has the same version but is megabytes of JSON at 10,000 Ingresses."""
    workers = api(t, "/api/workers")
    return min(w["applied"] for w in workers), sum(w["restarts"] for w in workers)


def settled_state(t: Target, at_least: int) -> tuple[int, int]:
    """passerelle_state() once the version reaches at_least, or after 5 s (toggles can coalesce)."""
    deadline = time.monotonic() + 5
    while (state := passerelle_state(t))[0] < at_least and time.monotonic() < deadline:
        time.sleep(0.25)  # noqa: TID251 (a script, not the event loop)
    return state


# -- wrk -----------------------------------------------------------------------------------------


def to_ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def parse_wrk(out: str) -> dict:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    if not (rps and p50 and p99):
        raise RuntimeError(f"cannot parse wrk output:\n{out}")
    errors = {}
    if m := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out):
        errors["non2xx"] = int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        errors.update(zip(("connect", "read", "write", "timeout"), map(int, m.groups()), strict=True))
    return {
        "rps": float(rps.group(1)),
        "p50_ms": to_ms(p50.group(1)),
        "p99_ms": to_ms(p99.group(1)),
        "errors": {k: v for k, v in errors.items() if v},
    }


def run_wrk(t: Target, path: str, conns: int, threads: int, duration: int, tls: TLS | None = None) -> dict:
    """wrk against t's plain listener, or with tls against its TLS one (wrk's OpenSSL restricted to
    TLS 1.3, TLS_SUITE and TLS_GROUP by OPENSSL_CONF; SNI t.host, connecting to 127.0.0.1)."""
    argv = f"taskset -c {WRK_CPU} wrk -t{threads} -c{conns} -d{duration}s --latency".split()
    env = None
    if tls:
        argv += ["-s", str(tls.lua), "-H", f"Host: {t.host}", f"https://{t.host}:{t.tls_port}{path}"]
        env = {**os.environ, "OPENSSL_CONF": str(tls.client_conf)}
    else:
        argv += ["-H", f"Host: {t.host}", f"http://127.0.0.1:{t.port}{path}"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)  # only wrk exits meanwhile: its CPU time
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60, env=env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return parse_wrk(done.stdout) | {"wrk_cpu_pct": 100 * cpu / duration}


# -- measurement and report ----------------------------------------------------------------------


def measure(t: Target, backend: Target, scenario: str, args, tls: TLS | None) -> dict:
    """One wrk run against t; plus t's memory at the end, its CPU use, each CPU's busy time, and for
    passerelle the configuration versions its workers applied and the workers restarted meanwhile."""
    path, conns, threads = SCENARIOS[scenario]
    pin(backend.proc.pid, server_cpus(t.workers))  # the backend follows the pinning of the target
    version, restarts = passerelle_state(t) if t.api else (0, 0)
    cpu, machine = usage(t.proc.pid)[1], cpu_times()
    reloading = Reloader(reload_step(t)) if scenario == "reload" else contextlib.nullcontext()
    with reloading:
        over = tls if scenario in TLS_SCENARIOS else None
        result = run_wrk(t, path, conns or args.connections, threads, args.duration, over)
    rss, cpu_end = usage(t.proc.pid)
    busy, cpu = busy_pct(machine, cpu_times()), cpu_end - cpu
    run = {
        **result,
        "rss_kib": sum(rss),
        "rss_max_kib": max(rss),
        "rss_worker_kib": max(rss[1:] or rss),  # nginx, passerelle: the largest worker process
        "processes": len(rss),
        "cpu_pct": 100 * cpu / args.duration,
        "busy": busy,
        "cpu_us_per_req": 1e6 * cpu / max(1.0, result["rps"] * args.duration),
        "load1": os.getloadavg()[0],  # the machine's 1-minute load average at the end of the run
    }
    if scenario == "reload":
        run["reloads"] = reloading.count
    if t.api:  # versions: 0 unless reloading; a worker restart is an error
        version_after, restarts_after = settled_state(t, version + run.get("reloads", 0))
        run["versions"] = version_after - version
        if restarts_after > restarts:
            run["errors"]["worker_restarts"] = restarts_after - restarts
    return run


def print_run(r: dict) -> None:
    busy = r["busy"]
    steal = max(busy["cpu0_steal"], busy["cpu1_steal"])
    note = f" reloads {r['reloads']}" if "reloads" in r else ""
    note += f" versions {r['versions']}" if "reloads" in r and "versions" in r else ""
    note += f" steal {steal:.0f}%" if steal >= 5 else ""  # the hypervisor took the CPU away
    note += f" load {r['load1']:.2f}"
    note += f"  ERRORS {r['errors']}" if r["errors"] else ""
    routes = f"r{r['routes']}" if r["routes"] else "-"
    print(
        f"round {r['round']} {r['scenario']:<6} w{r['workers']} {routes:<6} {r['target']:<10} "
        f"{r['rps']:>9.0f} req/s p50 {r['p50_ms']:.3f} ms p99 {r['p99_ms']:.3f} ms "
        f"RSS {r['rss_kib'] / 1024:.1f} MiB busy cpu0 {busy['cpu0']:.0f}% cpu1 {busy['cpu1']:.0f}%{note}",
        flush=True,
    )


def bench(targets: list[Target], args, tls: TLS | None) -> list[dict]:
    runs, backend = [], targets[0]
    for rnd in range(1, args.rounds + 1):
        k = (rnd - 1) % len(targets)
        order = targets[k:] + targets[:k]  # rotate, so that no target always goes first
        for scenario in args.scenarios:
            for t in order:
                if scenario == "reload" and reload_step(t) is None:
                    continue
                if scenario in TLS_SCENARIOS and not t.tls_port:  # the backend serves plain HTTP only
                    continue
                if t.proc.poll() is not None:
                    raise SystemExit(f"{t.label} died (exit code {t.proc.returncode}) in round {rnd}")
                resume(t)
                runs.append(measure(t, backend, scenario, args, tls))
                if t is not backend:
                    pause(t)
                runs[-1].update(
                    round=rnd, scenario=scenario, target=t.name, workers=t.workers, routes=t.routes
                )
                print_run(runs[-1])
    return runs


def select(runs: list[dict], scenario: str, name: str, workers: int, routes: int | None) -> list[dict]:
    return [
        r
        for r in runs
        if (r["scenario"], r["target"], r["workers"], r["routes"]) == (scenario, name, workers, routes)
    ]


def ratio(mine: list[dict], base: list[dict], key: str) -> float | None:
    """Median over rounds of mine[key] / base[key], each pair taken from the same round."""
    by_round = {r["round"]: r[key] for r in base}
    values = [r[key] / by_round[r["round"]] for r in mine if by_round.get(r["round"])]
    return statistics.median(values) if values else None


def reload_summary(mine: list[dict], base: list[dict]) -> dict:
    """The reload scenario's runs against the same target's `small` runs (no reload) of the same rounds."""
    return {
        "reloads": sum(r["reloads"] for r in mine),
        "versions": sum(r["versions"] for r in mine) if "versions" in mine[0] else None,
        "non2xx": sum(r["errors"].get("non2xx", 0) for r in mine),
        "socket_errors": sum(
            r["errors"].get(k, 0) for r in mine for k in ("connect", "read", "write", "timeout")
        ),
        "p99_base_ms": statistics.median(r["p99_ms"] for r in base) if base else None,
        "p99_vs_base": ratio(mine, base, "p99_ms"),
        "rps_vs_base": ratio(mine, base, "rps"),
    }


def summarize(runs: list[dict], targets: list[Target], scenarios: list[str]) -> list[dict]:
    """Medians across rounds; ratios computed per round (same scenario, same worker count), then medianed:
    req/s against each reference proxy, and passerelle's against itself with the fewest routes."""
    rows, fewest = [], min((t.routes for t in targets if t.routes), default=None)
    for scenario in scenarios:
        for t in targets:
            if not (mine := select(runs, scenario, t.name, t.workers, t.routes)):
                continue
            row = {
                "scenario": scenario,
                "workers": t.workers,
                "routes": t.routes,
                "target": t.name,
                "rss_mib": max(r["rss_kib"] for r in mine) / 1024,
                "rss_max_mib": max(r["rss_max_kib"] for r in mine) / 1024,
                "rss_worker_mib": max(r["rss_worker_kib"] for r in mine) / 1024,
                "errors": [r["errors"] for r in mine if r["errors"]],
            }
            for key in ("rps", "p50_ms", "p99_ms", "cpu_pct", "cpu_us_per_req", "wrk_cpu_pct", "load1"):
                row[key] = statistics.median(r[key] for r in mine)
            for cpu in ("cpu0", "cpu1"):
                row[f"{cpu}_busy"] = statistics.median(r["busy"][cpu] for r in mine)
            for ref in REFERENCES:
                if ref_runs := select(runs, scenario, ref, t.workers, None):
                    row[f"vs_{ref}"] = ratio(mine, ref_runs, "rps")
            if t.name == "passerelle" and (off := select(runs, scenario, NO_METRICS, t.workers, t.routes)):
                row["vs_nometrics"] = ratio(mine, off, "rps")
            if t.routes and t.routes != fewest:
                row[f"vs_r{fewest}"] = ratio(mine, select(runs, scenario, t.name, t.workers, fewest), "rps")
            if scenario == "reload":
                row |= reload_summary(mine, select(runs, "small", t.name, t.workers, t.routes))
            rows.append(row)
    return rows


COLUMNS = [  # (heading, key, alignment and width, number format)
    ("scenario", "scenario", "<8", ""),
    ("W", "workers", ">2", ""),
    ("routes", "routes", ">6", ""),
    ("target", "target", "<20", ""),
    ("req/s", "rps", ">9", ".0f"),
    ("p50 ms", "p50_ms", ">7", ".3f"),
    ("p99 ms", "p99_ms", ">7", ".3f"),
    ("RSS MiB", "rss_mib", ">7", ".1f"),
    ("max MiB", "rss_max_mib", ">7", ".1f"),
    ("wkr MiB", "rss_worker_mib", ">7", ".1f"),
    ("CPU %", "cpu_pct", ">5", ".0f"),
    ("us/req", "cpu_us_per_req", ">6", ".1f"),
    ("cpu0%", "cpu0_busy", ">5", ".0f"),
    ("cpu1%", "cpu1_busy", ">5", ".0f"),
    ("wrk%", "wrk_cpu_pct", ">4", ".0f"),
    ("load", "load1", ">5", ".2f"),
]
RELOAD_COLUMNS = [
    ("reload", "scenario", "<8", ""),
    ("W", "workers", ">2", ""),
    ("routes", "routes", ">6", ""),
    ("target", "target", "<20", ""),
    ("reloads", "reloads", ">7", ""),
    ("versions", "versions", ">8", ""),
    ("non-2xx", "non2xx", ">7", ""),
    ("sock.err", "socket_errors", ">8", ""),
    ("p99 ms", "p99_ms", ">7", ".3f"),
    ("p99 no-reload", "p99_base_ms", ">13", ".3f"),
    ("p99 x", "p99_vs_base", ">6", ".2f"),
    ("req/s x", "rps_vs_base", ">7", ".2f"),
]


def cell(value, width: str, fmt: str) -> str:
    return format("-", width) if value is None else format(value, width + fmt)


def print_columns(rows: list[dict], cols: list[tuple]) -> None:
    print("\n" + " ".join(format(head, width) for head, _, width, _ in cols))
    for row in rows:
        print(" ".join(cell(row.get(key), width, fmt) for _, key, width, fmt in cols))


def label(row: dict) -> str:
    return f"{row['target']} w{row['workers']}" + (f" r{row['routes']}" if row["routes"] else "")


def print_table(rows: list[dict]) -> None:
    ratios = dict.fromkeys(k for row in rows for k in row if k.startswith("vs_"))
    print_columns(rows, COLUMNS + [(k, k, ">8", ".2f") for k in ratios])
    if reloads := [row for row in rows if row["scenario"] == "reload"]:
        print_columns(reloads, RELOAD_COLUMNS)
    errors = [f"{row['scenario']} {label(row)}: {e}" for row in rows for e in row["errors"]]
    print("\n".join(f"wrk errors: {e}" for e in errors) or "wrk errors: none (no non-2xx, no socket errors)")


VERSIONS = {"nginx": "nginx -v", "wrk": "wrk -v", "haproxy": "haproxy -v", "caddy": "caddy version"}


def first_line(argv: list[str], lines: int = 1) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return "; ".join((done.stdout + done.stderr).strip().splitlines()[:lines]) or None
    except (OSError, subprocess.TimeoutExpired):
        return None


def machine_info() -> dict:
    info = {"cpus": os.cpu_count(), "kernel": platform.release(), "python": platform.python_version()}
    info["cpu"] = re.search(r"model name\s*:\s*(.*)|$", Path("/proc/cpuinfo").read_text()).group(1)
    # and whether its hot path runs compiled (benchmarks/README.md, "Compiled hot path")
    info["passerelle"] = first_line([str(PASSERELLE), "version"], lines=2)
    return info | {name: first_line(cmd.split()) for name, cmd in VERSIONS.items()}


def numbers(p: argparse.ArgumentParser, option: str, text: str) -> list[int]:
    """'1,2' -> [1, 2]: distinct positive integers, in the order given."""
    try:
        values = list(dict.fromkeys(int(v) for v in text.split(",") if v.strip()))
    except ValueError:
        values = []
    if not values or min(values) < 1:
        p.error(f"{option}: expected comma-separated positive integers, got {text!r}")
    return values


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=int, default=10, help="seconds per wrk run (default 10)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    p.add_argument("--connections", type=int, default=50, help="wrk connections (default 50)")
    p.add_argument(
        "--scenarios", default="small,64k,1conn", help=f"comma-separated, from: {','.join(SCENARIOS)}"
    )
    p.add_argument("--workers", default="1,2", help="worker counts, comma-separated (default 1,2)")
    p.add_argument(
        "--routes", default="10", help="passerelle's numbers of Ingresses, comma-separated (default 10)"
    )
    p.add_argument("--reload", action="store_true", help="add the reload scenario (and small, its baseline)")
    p.add_argument(
        "--metrics-off",
        action="store_true",
        help="also run passerelle with metrics off (target passerelle-nometrics; column vs_nometrics)",
    )
    p.add_argument("--quick", action="store_true", help="smoke test: 2 s runs, 1 round")
    args = p.parse_args()
    if args.quick:
        args.duration, args.rounds = 2, 1
    args.workers = numbers(p, "--workers", args.workers)
    args.routes = numbers(p, "--routes", args.routes)
    args.scenarios = list(dict.fromkeys(s.strip() for s in args.scenarios.split(",") if s.strip()))
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown or not args.scenarios:
        p.error(f"unknown scenario(s) {unknown}; choose from {','.join(SCENARIOS)}")
    if args.reload and "reload" not in args.scenarios:
        args.scenarios.append("reload")
    if "reload" in args.scenarios and "small" not in args.scenarios:
        args.scenarios.insert(0, "small")  # the reload figures are read against small's
    return args


def interrupt(*_) -> None:
    raise KeyboardInterrupt  # Ctrl-C and SIGTERM both end in main's cleanup


def show_logs(tmp: Path, ok: bool) -> None:
    """Print the nginx error logs when not empty; after a failure, every server's output too."""
    for log in sorted(tmp.rglob("error.log")) + ([] if ok else sorted(tmp.rglob("server.out"))):
        if log.stat().st_size:
            text = log.read_text(errors="replace")[-3000:]
            print(f"--- {log.relative_to(tmp)}:\n{text}", file=sys.stderr)


def main() -> None:
    args = parse_args()
    missing = [b for b in ("nginx", "wrk", "taskset") if not shutil.which(b)]
    if missing:
        sys.exit(f"error: {' and '.join(missing)} not found; install with: apt-get install -y nginx wrk")
    if not PASSERELLE.exists():
        sys.exit(f"error: {PASSERELLE} not found; create the virtualenv and pip install -e . first")
    if TLS_SCENARIOS.intersection(args.scenarios) and not shutil.which("openssl"):
        sys.exit("error: the TLS scenarios need openssl; install with: apt-get install -y openssl")
    if (os.cpu_count() or 1) < 2:
        sys.exit("error: needs at least 2 CPUs (servers on CPU 0, wrk on CPU 1)")
    for sig in (signal.SIGINT, signal.SIGTERM):  # SIGINT too: a background job inherits it ignored
        signal.signal(sig, interrupt)
    if (load := os.getloadavg()[0]) > 0.5:
        print(f"warning: load average is {load:.2f}; other work on this machine will skew the figures")
    tmp, procs, ok = Path(tempfile.mkdtemp(prefix="passerelle-bench-")), [], False
    try:
        tls = make_tls(tmp) if TLS_SCENARIOS.intersection(args.scenarios) else None
        targets = start_targets(tmp, args, procs, tls)
        started = dt.datetime.now()
        runs = bench(targets, args, tls)
        rows = summarize(runs, targets, args.scenarios)
        print_table(rows)
        out = REPO / "benchmarks" / "results" / f"{started:%Y%m%d-%H%M%S}.json"
        out.parent.mkdir(exist_ok=True)
        options = ("duration", "rounds", "connections", "scenarios", "workers", "routes")
        report = {
            "started": started.isoformat(timespec="seconds"),
            "machine": machine_info(),
            "options": {k: getattr(args, k) for k in options},
            "loadavg": {"before": load, "after": os.getloadavg()[0]},
            "tls": tls and {"suite": TLS_SUITE, "group": TLS_GROUP, "certificate": TLS_CERT},
            "summary": rows,
            "runs": runs,
        }
        out.write_text(json.dumps(report, indent=2))
        print(f"\nresults written to {out.relative_to(REPO)}")
        ok = True
    except KeyboardInterrupt:
        print("\ninterrupted: stopping everything", file=sys.stderr)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C must not cut the cleanup short
            signal.signal(sig, signal.SIG_IGN)
        for proc in reversed(procs):
            stop(proc)
        show_logs(tmp, ok)
        if ok:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"configurations and logs kept in {tmp}", file=sys.stderr)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
