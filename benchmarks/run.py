#!/usr/bin/env python3
"""Throughput/latency benchmark: passerelle against nginx (and HAProxy, Caddy when installed).

Everything runs on loopback: an nginx backend serves /small (13 bytes) and /64k (65536 bytes);
each proxy forwards to it; wrk drives each target in turn, interleaved across rounds.
Run from the repository root:  .venv/bin/python benchmarks/run.py  (see benchmarks/README.md).
Stdlib only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HOST = "bench.local"
SMALL_BODY = "Hello, World!"
# Proxies and the backend share CPU 0; wrk gets CPU 1 to itself (see README, "Pinning").
SERVER_CPU, WRK_CPU = "0", "1"
SCENARIOS = {  # name -> (path, connections or None for --connections, wrk threads)
    "small": ("/small", None, 2),
    "64k": ("/64k", None, 2),
    "1conn": ("/small", 1, 1),
}
TEMP_DIRS = "client_body_temp_path {t}/cb; proxy_temp_path {t}/px; fastcgi_temp_path {t}/fc; " \
            "uwsgi_temp_path {t}/uw; scgi_temp_path {t}/sc;"


# -- configuration files -------------------------------------------------------------------------

def nginx_main(tmp: Path, name: str, http_body: str) -> str:
    user = "user root;\n" if os.geteuid() == 0 else ""
    return (f"{user}daemon off;\nworker_processes 1;\npid {tmp}/{name}.pid;\n"
            f"error_log {tmp}/{name}-error.log warn;\nevents {{ worker_connections 4096; }}\n"
            f"http {{\n  access_log off;\n  keepalive_requests 1000000;\n"
            f"  {TEMP_DIRS.format(t=tmp / name)}\n{http_body}}}\n")


def backend_conf(tmp: Path, port: int) -> str:
    www = tmp / "www"
    www.mkdir(exist_ok=True)
    (www / "64k").write_bytes(b"x" * 65536)
    return nginx_main(tmp, "backend", f"""  sendfile on;
  server {{
    listen 127.0.0.1:{port};
    location = /small {{ default_type text/plain; return 200 "{SMALL_BODY}"; }}
    location = /64k {{ default_type application/octet-stream; root {www}; }}
  }}
""")


def nginx_proxy_conf(tmp: Path, port: int, backend: int) -> str:
    return nginx_main(tmp, "nginx", f"""  upstream backend {{ server 127.0.0.1:{backend}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port};
    server_name {HOST};
    location / {{
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
""")


def haproxy_conf(port: int, backend: int) -> str:
    return f"""global
  nbthread 1
  maxconn 10000
defaults
  mode http
  http-reuse always
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend web
  bind 127.0.0.1:{port}
  default_backend app
backend app
  server s1 127.0.0.1:{backend}
"""


def caddyfile(port: int, backend: int) -> str:
    return f"""{{
  admin off
  auto_https off
}}
http://{HOST}:{port} {{
  bind 127.0.0.1
  reverse_proxy 127.0.0.1:{backend}
}}
"""


def passerelle_files(tmp: Path, port: int, api: int, backend: int) -> Path:
    manifests = tmp / "manifests"
    manifests.mkdir(exist_ok=True)
    (manifests / "bench.yaml").write_text(f"""apiVersion: v1
kind: Service
metadata: {{name: backend}}
spec: {{ports: [{{name: http, port: 80}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: backend-1, labels: {{kubernetes.io/service-name: backend}}}}
addressType: IPv4
ports: [{{name: http, port: {backend}}}]
endpoints: [{{addresses: ["127.0.0.1"]}}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: bench}}
spec:
  rules:
  - host: {HOST}
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: backend, port: {{name: http}}}}}}}}
""")
    config = tmp / "passerelle.yaml"
    config.write_text(f"""entryPoints:
  web: {{address: "127.0.0.1:{port}"}}
providers:
  manifests: {{directory: {manifests}, watch: true}}
api: {{address: "127.0.0.1:{api}"}}
log: {{level: WARNING}}
""")
    return config


# -- processes -----------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(tmp: Path, name: str, argv: list[str], env: dict | None = None) -> subprocess.Popen:
    """Start a server pinned to SERVER_CPU, in its own session, output to <tmp>/<name>.out."""
    out = open(tmp / f"{name}.out", "wb")
    return subprocess.Popen(["taskset", "-c", SERVER_CPU, *argv], stdout=out, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, **(env or {})})


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the process group we created, then SIGKILL it if it lingers."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(wait)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def wait_http(url: str, proc: subprocess.Popen, name: str, timeout: float = 20.0) -> bytes:
    """Poll url until it answers 200 (with Host: bench.local); return the body."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"{name} exited with code {proc.returncode}; see its log in the temp dir")
        try:
            req = urllib.request.Request(url, headers={"Host": HOST})
            with urllib.request.urlopen(req, timeout=2) as resp:
                if resp.status == 200:
                    return resp.read()
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{name} did not answer 200 on {url} within {timeout:g}s")
        time.sleep(0.1)


def family(pid: int) -> list[int]:
    """pid and all its descendants (nginx master + worker, for instance)."""
    pids = [pid]
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                pids += family(int(child))
    except FileNotFoundError:
        pass
    return pids


def rss_kib(pid: int) -> int:
    """VmRSS of pid plus all its descendants, in KiB."""
    total = 0
    for p in family(pid):
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except FileNotFoundError:
            continue
        total += int(re.search(r"^VmRSS:\s+(\d+)", status, re.M).group(1))
    return total


def cpu_seconds(pid: int) -> float:
    """User + system CPU time consumed so far by pid and its descendants."""
    ticks = 0
    for p in family(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def nginx_argv(tmp: Path, name: str, conf: str) -> list[str]:
    (tmp / f"{name}.conf").write_text(conf)
    for sub in ("cb", "px", "fc", "uw", "sc"):
        (tmp / name / sub).mkdir(parents=True, exist_ok=True)
    return ["nginx", "-p", str(tmp), "-e", str(tmp / f"{name}-error.log"), "-c", str(tmp / f"{name}.conf")]


def start_targets(tmp: Path, procs: list) -> dict[str, tuple[int, subprocess.Popen]]:
    """Start the backend and every available proxy; return name -> (port, process)."""
    backend = free_port()
    specs = {"backend": (backend, nginx_argv(tmp, "backend", backend_conf(tmp, backend)), None, None)}

    port, api = free_port(), free_port()
    config = passerelle_files(tmp, port, api, backend)
    exe = str(REPO / ".venv" / "bin" / "passerelle")
    specs["passerelle"] = (port, [exe, "run", "-c", str(config)], None, f"http://127.0.0.1:{api}/ping")

    port = free_port()
    specs["nginx"] = (port, nginx_argv(tmp, "nginx", nginx_proxy_conf(tmp, port, backend)), None, None)

    if shutil.which("haproxy"):
        port = free_port()
        (tmp / "haproxy.cfg").write_text(haproxy_conf(port, backend))
        specs["haproxy"] = (port, ["haproxy", "-db", "-f", str(tmp / "haproxy.cfg")], None, None)
    else:
        print("note: haproxy not installed, skipping it")
    if shutil.which("caddy"):
        port = free_port()
        (tmp / "Caddyfile").write_text(caddyfile(port, backend))
        env = {"GOMAXPROCS": "1", "XDG_DATA_HOME": str(tmp / "caddy"), "XDG_CONFIG_HOME": str(tmp / "caddy")}
        argv = ["caddy", "run", "--config", str(tmp / "Caddyfile"), "--adapter", "caddyfile"]
        specs["caddy"] = (port, argv, env, None)
    else:
        print("note: caddy not installed, skipping it")

    targets = {}
    for name, (port, argv, env, ready_url) in specs.items():
        proc = start(tmp, name, argv, env)
        procs.append(proc)
        if ready_url:
            wait_http(ready_url, proc, name)
        for path, size in (("/small", len(SMALL_BODY)), ("/64k", 65536)):
            body = wait_http(f"http://127.0.0.1:{port}{path}", proc, name)
            if len(body) != size:
                raise SystemExit(f"{name}{path}: expected {size} bytes, got {len(body)}")
        targets[name] = (port, proc)
        print(f"started {name:<10} pid {proc.pid:<7} port {port}")
    return targets


# -- wrk -----------------------------------------------------------------------------------------

UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def to_ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * UNITS[unit]


def parse_wrk(out: str) -> dict:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    if not (rps and p50 and p99):
        raise RuntimeError(f"cannot parse wrk output:\n{out}")
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = {}
    if non2xx:
        errors["non2xx"] = int(non2xx.group(1))
    if sock:
        errors.update(zip(("connect", "read", "write", "timeout"), map(int, sock.groups())))
    return {"rps": float(rps.group(1)), "p50_ms": to_ms(p50.group(1)), "p99_ms": to_ms(p99.group(1)),
            "errors": {k: v for k, v in errors.items() if v}}


def run_wrk(port: int, path: str, conns: int, threads: int, duration: int) -> dict:
    argv = ["taskset", "-c", WRK_CPU, "wrk", f"-t{threads}", f"-c{conns}", f"-d{duration}s", "--latency",
            "-H", f"Host: {HOST}", f"http://127.0.0.1:{port}{path}"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_wrk(done.stdout)


# -- orchestration and report --------------------------------------------------------------------

def bench(targets: dict, args) -> list[dict]:
    runs, names = [], list(targets)
    for rnd in range(1, args.rounds + 1):
        order = names[rnd - 1:] + names[:rnd - 1]  # rotate so no target always runs first
        for scenario in args.scenarios:
            path, conns, threads = SCENARIOS[scenario]
            conns = conns or args.connections
            for name in order:
                port, proc = targets[name]
                if proc.poll() is not None:
                    raise SystemExit(f"{name} died (exit {proc.returncode}) before round {rnd}")
                cpu = cpu_seconds(proc.pid)
                result = run_wrk(port, path, conns, threads, args.duration)
                cpu = cpu_seconds(proc.pid) - cpu
                result.update(round=rnd, scenario=scenario, target=name, rss_kib=rss_kib(proc.pid),
                              cpu_pct=100 * cpu / args.duration,
                              cpu_us_per_req=1e6 * cpu / (result["rps"] * args.duration))
                runs.append(result)
                errs = f"  ERRORS {result['errors']}" if result["errors"] else ""
                print(f"round {rnd} {scenario:<6} {name:<10} {result['rps']:>10.0f} req/s "
                      f"p50 {result['p50_ms']:.3f} ms p99 {result['p99_ms']:.3f} ms{errs}", flush=True)
    return runs


def summarize(runs: list[dict], scenarios: list[str], names: list[str]) -> list[dict]:
    refs = [r for r in ("nginx", "caddy") if r in names]
    rows = []
    for scenario in scenarios:
        by = {n: [r for r in runs if r["scenario"] == scenario and r["target"] == n] for n in names}
        for name in names:
            mine = by[name]
            row = {"scenario": scenario, "target": name,
                   "rps": statistics.median(r["rps"] for r in mine),
                   "p50_ms": statistics.median(r["p50_ms"] for r in mine),
                   "p99_ms": statistics.median(r["p99_ms"] for r in mine),
                   "rss_mib": max(r["rss_kib"] for r in mine) / 1024,
                   "cpu_pct": statistics.median(r["cpu_pct"] for r in mine),
                   "cpu_us_per_req": statistics.median(r["cpu_us_per_req"] for r in mine),
                   "errors": [r["errors"] for r in mine if r["errors"]]}
            for ref in refs:
                base = {r["round"]: r["rps"] for r in by[ref]}
                row[f"vs_{ref}"] = statistics.median(r["rps"] / base[r["round"]] for r in mine)
            rows.append(row)
    return rows


def print_table(rows: list[dict]) -> None:
    refs = [k for k in rows[0] if k.startswith("vs_")]
    head = (f"{'scenario':<8} {'target':<10} {'req/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'RSS MiB':>7} "
            f"{'CPU %':>5} {'CPU us/req':>10}")
    print("\n" + head + "".join(f" {r:>9}" for r in refs))
    for row in rows:
        line = (f"{row['scenario']:<8} {row['target']:<10} {row['rps']:>9.0f} {row['p50_ms']:>7.3f} "
                f"{row['p99_ms']:>7.3f} {row['rss_mib']:>7.1f} {row['cpu_pct']:>5.0f} "
                f"{row['cpu_us_per_req']:>10.1f}")
        print(line + "".join(f" {row[r]:>9.2f}" for r in refs))
    for row in rows:
        for err in row["errors"]:
            print(f"wrk errors: {row['scenario']} {row['target']}: {err}")


def machine_info() -> dict:
    def version(argv):
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            return (done.stdout + done.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return None
    cpu = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text())
    return {"cpus": os.cpu_count(), "cpu": cpu and cpu.group(1), "kernel": platform.release(),
            "python": platform.python_version(), "nginx": version(["nginx", "-v"]),
            "wrk": version(["wrk", "-v"]), "haproxy": version(["haproxy", "-v"]),
            "caddy": version(["caddy", "version"]),
            "passerelle": version([str(REPO / ".venv" / "bin" / "passerelle"), "version"])}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=int, default=10, help="seconds per wrk run (default 10)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    p.add_argument("--connections", type=int, default=50, help="wrk connections (default 50)")
    p.add_argument("--scenarios", default="small,64k,1conn", help="comma-separated: small,64k,1conn")
    p.add_argument("--quick", action="store_true", help="smoke test: 2 s runs, 1 round")
    args = p.parse_args()
    if args.quick:
        args.duration, args.rounds = 2, 1
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown or not args.scenarios:
        p.error(f"unknown scenario(s) {unknown}; choose from {','.join(SCENARIOS)}")
    return args


def interrupt(*_) -> None:
    raise KeyboardInterrupt  # so that SIGTERM also goes through main's cleanup


def show_logs(tmp: Path, ok: bool) -> None:
    """Print nginx error logs if not empty; on failure, also every server's output."""
    for log in sorted(tmp.glob("*error.log")) + ([] if ok else sorted(tmp.glob("*.out"))):
        if log.stat().st_size:
            print(f"--- {log.name}:\n{log.read_text(errors='replace')[-3000:]}", file=sys.stderr)


def main() -> None:
    args = parse_args()
    missing = [b for b in ("nginx", "wrk", "taskset") if not shutil.which(b)]
    if missing:
        sys.exit(f"missing {', '.join(missing)}: install with: apt-get install -y nginx wrk")
    if (os.cpu_count() or 1) < 2:
        sys.exit("need at least 2 CPUs (servers on CPU 0, wrk on CPU 1)")
    signal.signal(signal.SIGTERM, interrupt)
    load = os.getloadavg()[0]
    if load > 0.5:
        print(f"warning: load average is {load:.2f}; other work on this machine will skew the figures")
    tmp, procs, ok = Path(tempfile.mkdtemp(prefix="passerelle-bench-")), [], False
    try:
        targets = start_targets(tmp, procs)
        started = dt.datetime.now()
        runs = bench(targets, args)
        rows = summarize(runs, args.scenarios, list(targets))
        print_table(rows)
        out = REPO / "benchmarks" / "results" / f"{started:%Y%m%d-%H%M%S}.json"
        out.parent.mkdir(exist_ok=True)
        options = {k: getattr(args, k) for k in ("duration", "rounds", "connections", "scenarios")}
        out.write_text(json.dumps({"started": started.isoformat(timespec="seconds"), "options": options,
                                   "machine": machine_info(),
                                   "loadavg": {"before": load, "after": os.getloadavg()[0]}, "summary": rows, "runs": runs}, indent=2))
        print(f"\nresults written to {out}")
        ok = True
    except KeyboardInterrupt:
        print("\ninterrupted, stopping everything", file=sys.stderr)
    finally:
        for proc in reversed(procs):
            stop(proc)
        show_logs(tmp, ok)
        if ok:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"logs kept in {tmp}", file=sys.stderr)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
