#!/usr/bin/env python3
"""Throughput/latency benchmark: passerelle against nginx (and HAProxy, Caddy when installed).

Everything runs on loopback: an nginx backend serves /small (13 bytes) and /64k (65536 bytes),
each proxy forwards to it, and wrk drives every target in turn, interleaved across rounds.
Run from the repository root:  .venv/bin/python benchmarks/run.py   (see benchmarks/README.md)
Stdlib only; needs nginx, wrk and taskset (util-linux) on PATH.
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
from string import Template

REPO = Path(__file__).resolve().parent.parent
PASSERELLE = REPO / ".venv" / "bin" / "passerelle"
HOST = "bench.local"
SMALL_BODY = "Hello, World!"
SERVER_CPU, WRK_CPU = "0", "1"  # backend and proxies share CPU 0, wrk has CPU 1 (see README)
SCENARIOS = {  # name -> (path, connections (None: --connections), wrk threads)
    "small": ("/small", None, 2),
    "64k": ("/64k", None, 2),
    "1conn": ("/small", 1, 1),
}


# -- configurations: string.Template ($name) so that nginx and Caddy braces stay readable ------------

NGINX_MAIN = """${user}daemon off;
worker_processes 1;
pid $dir.pid;
error_log $dir-error.log warn;
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
    location = /64k { default_type application/octet-stream; root $tmp/www; }
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
MANIFESTS = """apiVersion: v1
kind: Service
metadata: {name: backend}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: backend-1, labels: {kubernetes.io/service-name: backend}}
addressType: IPv4
ports: [{name: http, port: $backend}]
endpoints: [{addresses: ["127.0.0.1"]}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: bench}
spec:
  rules:
  - host: $host
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: backend, port: {name: http}}}}
"""
PASSERELLE_CONF = """entryPoints:
  web: {address: "127.0.0.1:$port"}
providers:
  manifests: {directory: $tmp/manifests, watch: true}
api: {address: "127.0.0.1:$api"}
log: {level: WARNING}
"""
HAPROXY_CONF = """global
  nbthread 1
  maxconn 10000
defaults
  mode http
  http-reuse always
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend web
  bind 127.0.0.1:$port
  default_backend app
backend app
  server s1 127.0.0.1:$backend
"""
CADDYFILE = """{
  admin off
  auto_https off
}
http://$host:$port {
  bind 127.0.0.1
  reverse_proxy 127.0.0.1:$backend
}
"""


def write(path: Path, template: str, **values) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(Template(template).substitute(values, host=HOST, small=SMALL_BODY))
    return str(path)


# One function per target: write its configuration, return (argv, extra environment, readiness URL).


def nginx_argv(tmp: Path, name: str, body: str) -> list[str]:
    """An nginx config with every file it writes in tmp; as root, workers must stay root to read tmp."""
    for sub in ("cb", "px", "fc", "uw", "sc"):
        (tmp / name / sub).mkdir(parents=True, exist_ok=True)
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf = write(tmp / f"{name}.conf", NGINX_MAIN, user=user, dir=tmp / name, body=body)
    return ["nginx", "-p", str(tmp), "-e", f"{tmp}/{name}-error.log", "-c", conf]


def backend_spec(tmp: Path, port: int, _backend: int):
    (tmp / "www").mkdir()
    (tmp / "www" / "64k").write_bytes(b"x" * 65536)
    body = Template(BACKEND_BODY).substitute(port=port, small=SMALL_BODY, tmp=tmp)
    return nginx_argv(tmp, "backend", body), None, None


def nginx_spec(tmp: Path, port: int, backend: int):
    body = Template(NGINX_PROXY_BODY).substitute(port=port, backend=backend, host=HOST)
    return nginx_argv(tmp, "nginx", body), None, None


def passerelle_spec(tmp: Path, port: int, backend: int):
    api = free_port()
    write(tmp / "manifests" / "bench.yaml", MANIFESTS, backend=backend)
    conf = write(tmp / "passerelle.yaml", PASSERELLE_CONF, port=port, api=api, tmp=tmp)
    return [str(PASSERELLE), "run", "-c", conf], None, f"http://127.0.0.1:{api}/ping"


def haproxy_spec(tmp: Path, port: int, backend: int):
    conf = write(tmp / "haproxy.cfg", HAPROXY_CONF, port=port, backend=backend)
    return ["haproxy", "-db", "-f", conf], None, None


def caddy_spec(tmp: Path, port: int, backend: int):
    conf = write(tmp / "Caddyfile", CADDYFILE, port=port, backend=backend)
    env = {"GOMAXPROCS": "1", "XDG_DATA_HOME": f"{tmp}/caddy", "XDG_CONFIG_HOME": f"{tmp}/caddy"}
    return ["caddy", "run", "--config", conf, "--adapter", "caddyfile"], env, None


# (name, binary, spec): the backend first, then the proxies; a proxy whose binary is missing is skipped
TARGETS = [
    ("backend", "nginx", backend_spec),
    ("passerelle", str(PASSERELLE), passerelle_spec),
    ("nginx", "nginx", nginx_spec),
    ("haproxy", "haproxy", haproxy_spec),
    ("caddy", "caddy", caddy_spec),
]
REFERENCES = ("nginx", "caddy")  # ratios of req/s are computed against these, when present


# -- processes -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(tmp: Path, name: str, argv: list[str], env: dict | None) -> subprocess.Popen:
    """Start a server pinned to SERVER_CPU, in its own process group, output to <tmp>/<name>.out."""
    with open(tmp / f"{name}.out", "wb") as out:
        return subprocess.Popen(
            ["taskset", "-c", SERVER_CPU, *argv],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the process group we created (nginx master and worker, ...), SIGKILL if it lingers."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
            proc.wait(5)
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            pass


def wait_http(url: str, proc: subprocess.Popen, name: str, timeout: float = 20.0) -> bytes:
    """Poll url (with Host: bench.local) until it answers 200; return the body."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"{name} exited with code {proc.returncode} (its output is in the temp dir)")
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers={"Host": HOST}), timeout=2) as r:
                if r.status == 200:
                    return r.read()
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{name} did not answer 200 on {url} within {timeout:g}s")
        time.sleep(0.1)  # noqa: TID251 (a script, not the event loop)


def start_targets(tmp: Path, procs: list) -> dict[str, tuple[int, subprocess.Popen]]:
    """Start the backend and every installed proxy, check both paths; return name -> (port, process)."""
    targets, backend = {}, 0
    for name, binary, spec in TARGETS:
        if not shutil.which(binary):
            print(f"note: {binary} not found, skipping {name}")
            continue
        port = free_port()
        backend = backend or port
        argv, env, ready_url = spec(tmp, port, backend)
        proc = start(tmp, name, argv, env)
        procs.append(proc)
        if ready_url:
            wait_http(ready_url, proc, name)
        for path, size in (("/small", len(SMALL_BODY)), ("/64k", 65536)):
            body = wait_http(f"http://127.0.0.1:{port}{path}", proc, name)
            if len(body) != size:
                raise SystemExit(f"{name} {path}: expected {size} bytes, got {len(body)}")
        targets[name] = (port, proc)
        print(f"started {name:<10} pid {proc.pid:<7} port {port}")
    return targets


# -- /proc: memory and CPU -----------------------------------------------------------------------


def family(pid: int) -> list[int]:
    """pid and all its descendants."""
    pids = [pid]
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                pids += family(int(child))
    except FileNotFoundError:
        pass
    return pids


def usage(pid: int) -> tuple[int, float]:
    """(VmRSS in KiB, user + system CPU seconds so far) of pid plus all its descendants."""
    rss = ticks = 0
    for p in family(pid):
        try:
            status = Path(f"/proc/{p}/status").read_text()
            stat = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        rss += int(re.search(r"^VmRSS:\s+(\d+)", status, re.M).group(1))
        ticks += int(stat[11]) + int(stat[12])  # utime, stime
    return rss, ticks / os.sysconf("SC_CLK_TCK")


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


def run_wrk(port: int, path: str, conns: int, threads: int, duration: int) -> dict:
    argv = f"taskset -c {WRK_CPU} wrk -t{threads} -c{conns} -d{duration}s --latency".split()
    argv += ["-H", f"Host: {HOST}", f"http://127.0.0.1:{port}{path}"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_wrk(done.stdout)


# -- measurement and report ----------------------------------------------------------------------


def measure(target: tuple, path: str, conns: int, threads: int, duration: int) -> dict:
    """One wrk run; plus the target's RSS at the end, its CPU use, and each CPU's busy time."""
    port, proc = target
    cpu, machine = usage(proc.pid)[1], cpu_times()
    result = run_wrk(port, path, conns, threads, duration)
    rss, cpu_end = usage(proc.pid)
    cpu = cpu_end - cpu
    return {
        **result,
        "rss_kib": rss,
        "cpu_pct": 100 * cpu / duration,
        "busy": busy_pct(machine, cpu_times()),
        "cpu_us_per_req": 1e6 * cpu / max(1.0, result["rps"] * duration),
    }


def print_run(r: dict) -> None:
    busy = r["busy"]
    steal = max(busy["cpu0_steal"], busy["cpu1_steal"])
    note = f" steal {steal:.0f}%" if steal >= 5 else ""  # the hypervisor took the CPU away
    note += f"  ERRORS {r['errors']}" if r["errors"] else ""
    print(
        f"round {r['round']} {r['scenario']:<6} {r['target']:<10} {r['rps']:>9.0f} req/s "
        f"p50 {r['p50_ms']:.3f} ms p99 {r['p99_ms']:.3f} ms "
        f"busy cpu0 {busy['cpu0']:.0f}% cpu1 {busy['cpu1']:.0f}%{note}",
        flush=True,
    )


def bench(targets: dict, args) -> list[dict]:
    runs, names = [], list(targets)
    for rnd in range(1, args.rounds + 1):
        order = names[rnd - 1 :] + names[: rnd - 1]  # rotate, so that no target always goes first
        for scenario in args.scenarios:
            path, conns, threads = SCENARIOS[scenario]
            for name in order:
                if targets[name][1].poll() is not None:
                    raise SystemExit(f"{name} died (exit code {targets[name][1].returncode}) in round {rnd}")
                runs.append(measure(targets[name], path, conns or args.connections, threads, args.duration))
                runs[-1].update(round=rnd, scenario=scenario, target=name)
                print_run(runs[-1])
    return runs


def summarize(runs: list[dict], scenarios: list[str], names: list[str]) -> list[dict]:
    """Medians across rounds; ratios of req/s to each reference computed per round, then medianed."""
    rows = []
    for scenario in scenarios:
        by = {n: [r for r in runs if r["scenario"] == scenario and r["target"] == n] for n in names}
        for name, mine in by.items():
            row = {
                "scenario": scenario,
                "target": name,
                "rss_mib": max(r["rss_kib"] for r in mine) / 1024,
                "errors": [r["errors"] for r in mine if r["errors"]],
            }
            for key in ("rps", "p50_ms", "p99_ms", "cpu_pct", "cpu_us_per_req"):
                row[key] = statistics.median(r[key] for r in mine)
            for cpu in ("cpu0", "cpu1"):
                row[f"{cpu}_busy"] = statistics.median(r["busy"][cpu] for r in mine)
            for ref in (r for r in REFERENCES if r in names):
                base = {r["round"]: r["rps"] for r in by[ref]}
                row[f"vs_{ref}"] = statistics.median(r["rps"] / base[r["round"]] for r in mine)
            rows.append(row)
    return rows


COLUMNS = [  # (heading, key, alignment and width, number format)
    ("scenario", "scenario", "<8", ""),
    ("target", "target", "<10", ""),
    ("req/s", "rps", ">9", ".0f"),
    ("p50 ms", "p50_ms", ">7", ".3f"),
    ("p99 ms", "p99_ms", ">7", ".3f"),
    ("RSS MiB", "rss_mib", ">7", ".1f"),
    ("CPU %", "cpu_pct", ">5", ".0f"),
    ("us/req", "cpu_us_per_req", ">6", ".1f"),
    ("cpu0%", "cpu0_busy", ">5", ".0f"),
    ("cpu1%", "cpu1_busy", ">5", ".0f"),
]


def print_table(rows: list[dict]) -> None:
    cols = COLUMNS + [(k, k, ">8", ".2f") for k in rows[0] if k.startswith("vs_")]
    print("\n" + " ".join(format(head, width) for head, _, width, _ in cols))
    for row in rows:
        print(" ".join(format(row[key], width + fmt) for _, key, width, fmt in cols))
    errors = [f"{row['scenario']} {row['target']}: {e}" for row in rows for e in row["errors"]]
    print("\n".join(f"wrk errors: {e}" for e in errors) or "wrk errors: none (no non-2xx, no socket errors)")


VERSIONS = {"nginx": "nginx -v", "wrk": "wrk -v", "haproxy": "haproxy -v", "caddy": "caddy version"}


def first_line(argv: list[str]) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (done.stdout + done.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return None


def machine_info() -> dict:
    info = {"cpus": os.cpu_count(), "kernel": platform.release(), "python": platform.python_version()}
    info["cpu"] = re.search(r"model name\s*:\s*(.*)|$", Path("/proc/cpuinfo").read_text()).group(1)
    info["passerelle"] = first_line([str(PASSERELLE), "version"])
    return info | {name: first_line(cmd.split()) for name, cmd in VERSIONS.items()}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=int, default=10, help="seconds per wrk run (default 10)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    p.add_argument("--connections", type=int, default=50, help="wrk connections (default 50)")
    p.add_argument("--scenarios", default="small,64k,1conn", help="comma-separated, from: small,64k,1conn")
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
    raise KeyboardInterrupt  # Ctrl-C and SIGTERM both end in main's cleanup


def show_logs(tmp: Path, ok: bool) -> None:
    """Print the nginx error logs when not empty; after a failure, every server's output too."""
    for log in sorted(tmp.glob("*error.log")) + ([] if ok else sorted(tmp.glob("*.out"))):
        if log.stat().st_size:
            print(f"--- {log.name}:\n{log.read_text(errors='replace')[-3000:]}", file=sys.stderr)


def main() -> None:
    args = parse_args()
    missing = [b for b in ("nginx", "wrk", "taskset") if not shutil.which(b)]
    if missing:
        sys.exit(f"error: {' and '.join(missing)} not found; install with: apt-get install -y nginx wrk")
    if not PASSERELLE.exists():
        sys.exit(f"error: {PASSERELLE} not found; create the virtualenv and pip install -e . first")
    if (os.cpu_count() or 1) < 2:
        sys.exit("error: needs at least 2 CPUs (servers on CPU 0, wrk on CPU 1)")
    for sig in (signal.SIGINT, signal.SIGTERM):  # SIGINT too: a background job inherits it ignored
        signal.signal(sig, interrupt)
    if (load := os.getloadavg()[0]) > 0.5:
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
        report = {
            "started": started.isoformat(timespec="seconds"),
            "machine": machine_info(),
            "options": {k: getattr(args, k) for k in ("duration", "rounds", "connections", "scenarios")},
            "loadavg": {"before": load, "after": os.getloadavg()[0]},
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
