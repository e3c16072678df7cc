"""The command line as an operator meets it: clear one-line errors and exit codes, no tracebacks."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import yaml

from tests.integration.harness import Backends, Router, echo, free_port

REPO = Path(__file__).resolve().parents[2]


def passerelle(*args: str, cwd: Path | None = None, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "passerelle", *args], capture_output=True, text=True, cwd=cwd, timeout=timeout
    )


def test_version() -> None:
    result = passerelle("version")
    assert result.returncode == 0 and result.stdout.startswith("passerelle 0.")
    assert "hot path: compiled with mypyc" in result.stdout  # what the suite's routers run


def test_missing_config_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = passerelle("run", "-c", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"passerelle: {tmp_path / 'nope.yaml'}: config file not found"


def test_unknown_key_and_wrong_type_name_the_key_and_line(tmp_path: Path) -> None:
    config = tmp_path / "passerelle.yaml"
    config.write_text(
        "entryPoints:\n  web:\n    address: ':8080'\n    adress: ':8081'\n"
        "providers:\n  manifests:\n    directory: m\n    watch: maybe\n"
    )
    result = passerelle("run", "--config", str(config))
    assert result.returncode == 2
    assert f"{config}:4: entryPoints.web.adress: unknown key" in result.stderr
    assert f"{config}:8: providers.manifests.watch: " in result.stderr
    assert "Traceback" not in result.stderr


def test_port_in_use_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        (tmp_path / "m").mkdir()
        config = tmp_path / "passerelle.yaml"
        config.write_text(
            f"entryPoints: {{web: {{address: '127.0.0.1:{port}'}}}}\n"
            f"providers: {{manifests: {{directory: m}}}}\napi: {{address: '127.0.0.1:{free_port()}'}}\n"
        )
        result = passerelle("run", "-c", str(config))
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port} (entry point web): " in result.stderr
    assert "in use" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_check_accepts_the_quickstart() -> None:
    result = passerelle("check", str(REPO / "examples" / "quickstart" / "manifests"))
    assert result.returncode == 0, result.stdout
    assert "3 routers, 3 services, 0 errors" in result.stdout


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        (
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: x}\nspec:\n  rules:\n"
            "  - http: {paths: [{path: /a, pathType: Prefix, backend: {service: {name: nope, port: {number: 80}}}}]}\n",
            "objects.yaml:1: error: Ingress default/x: Service default/nope not found",
        ),
        ("kind: [\n", "error: File objects.yaml: cannot be parsed"),
    ],
    ids=["missing-service", "broken-yaml"],
)
def test_check_reports_problems_with_their_file_and_exits_1(
    tmp_path: Path, manifest: str, expected: str
) -> None:
    (tmp_path / "objects.yaml").write_text(manifest)
    result = passerelle("check", str(tmp_path))
    assert result.returncode == 1
    assert expected in result.stdout


def test_check_places_routers_on_the_configured_entry_points(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "objects.yaml").write_text(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\n"
        "metadata: {name: x, annotations: {traefik.ingress.kubernetes.io/router.entrypoints: websecure}}\n"
        "spec:\n  tls: [{secretName: x}]\n  rules:\n"
        "  - http: {paths: [{path: /a, pathType: Prefix, backend: {service: {name: nope, port: {number: 80}}}}]}\n"
    )
    without = passerelle("check", str(manifests))
    assert "warning: Ingress default/x: router.entrypoints: no entry point named websecure" in without.stdout
    config = tmp_path / "passerelle.yaml"
    config.write_text("entryPoints:\n  web: {address: ':80'}\n  websecure: {address: ':443', tls: {}}\n")
    with_config = passerelle("check", "-c", str(config), str(manifests))
    assert "no entry point named" not in with_config.stdout
    assert "Service default/nope not found" in with_config.stdout
    (tmp_path / "bad.yaml").write_text("entryPoints: {web: {adress: ':80'}}\n")
    bad = passerelle("check", "-c", str(tmp_path / "bad.yaml"), str(manifests))
    assert bad.returncode == 2 and "entryPoints.web.adress: unknown key" in bad.stderr


def test_an_unreadable_default_certificate_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "key.pem").write_text("not a key")
    config = tmp_path / "passerelle.yaml"
    config.write_text(
        f"entryPoints: {{websecure: {{address: '127.0.0.1:{free_port()}', tls: {{}}}}}}\n"
        f"providers: {{manifests: {{directory: m}}}}\napi: {{address: '127.0.0.1:{free_port()}'}}\n"
        "tls: {defaultCertificate: {certFile: missing.pem, keyFile: key.pem}}\n"
    )
    result = passerelle("run", "-c", str(config))
    assert result.returncode == 2
    missing = tmp_path / "missing.pem"
    assert (
        result.stderr.strip() == f"passerelle: tls.defaultCertificate: {missing}: No such file or directory"
    )
    assert "Traceback" not in result.stderr


def test_the_quickstart_serves_what_its_instructions_promise(
    backends: Backends, make_router: Callable[..., Router]
) -> None:
    """scripts/quickstart's curl lines, on the example's own manifests (ports moved to free ones)."""
    a, b = backends.whoami("whoami-a"), backends.whoami("whoami-b")
    example = REPO / "examples" / "quickstart"
    static = yaml.safe_load((example / "passerelle.yaml").read_text())
    port = free_port()
    static["entryPoints"]["websecure"]["address"] = f"127.0.0.1:{port}"
    router = make_router(config={"entryPoints": {"websecure": static["entryPoints"]["websecure"]}})
    version = router.version()
    for path in sorted((example / "manifests").glob("*.yaml")):
        text = path.read_text().replace("9101", str(a)).replace("9102", str(b))
        router.write(path.name, text)
    router.wait_version(version)
    for _ in range(100):  # both files written: every router and every service's endpoints
        services = router.api("/api/rawdata")["services"]
        if len(services) == 3 and all(s["servers"] for s in services):
            break
        time.sleep(0.05)
    assert echo(httpx.get(f"{router.base}/hello", headers={"Host": "whoami.localhost"}))["pod"] == "whoami-a"
    assert echo(httpx.get(f"{router.base}/b/anything"))["pod"] == "whoami-b"
    assert echo(httpx.get(f"{router.base}/elsewhere"))["pod"] == "whoami-a"
    tls = httpx.get(f"https://127.0.0.1:{port}/b/tls", verify=False)
    assert echo(tls)["pod"] == "whoami-b" and echo(tls)["headers"]["X-Forwarded-Proto"] == ["https"]
    assert router.problems() == []


def _ingress(name: str, service: str, host: str = "a.test") -> str:
    return (
        f"apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}}}\nspec:\n  rules:\n"
        f"  - host: {host}\n    http: {{paths: [{{path: /, pathType: Prefix, "
        f"backend: {{service: {{name: {service}, port: {{number: 80}}}}}}}}]}}\n"
    )


def test_check_is_usable_in_ci(tmp_path: Path) -> None:
    """Warnings alone pass (unless --strict), any error fails; every line names file:line and object."""
    service = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}]}\n"
    (tmp_path / "a.yaml").write_text(service + "---\n" + _ingress("ok", "web"))
    warned = passerelle("check", str(tmp_path))
    assert warned.returncode == 0, warned.stdout
    assert (
        "a.yaml:6: warning: Ingress default/ok: Service default/web port 80 has no ready endpoints"
        in warned.stdout
    )
    assert passerelle("check", "--strict", str(tmp_path)).returncode == 1
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.yaml").write_text("# a comment\n" + _ingress("broken", "missing", host="b.test"))
    failed = passerelle("check", str(tmp_path))
    assert failed.returncode == 1
    assert "sub/b.yaml:2: error: Ingress default/broken: Service default/missing not found" in failed.stdout
    assert failed.stdout.strip().endswith("2 routers, 2 services, 1 errors, 1 warnings")
    github = passerelle("check", "--format", "github", str(tmp_path)).stdout.splitlines()
    assert (
        f"::error file={tmp_path}/sub/b.yaml,line=2,title=Ingress default/broken::Service default/missing not found"
        in github
    )
    as_json = json.loads(passerelle("check", "--format", "json", str(tmp_path)).stdout)
    assert as_json["routers"] == 2
    assert {(p["object"], p["severity"], p["file"]) for p in as_json["problems"]} == {
        ("Ingress default/ok", "warning", "a.yaml:6"),
        ("Ingress default/broken", "error", "sub/b.yaml:2"),
    }


def test_explain_offline_on_the_quickstart() -> None:
    config = str(REPO / "examples" / "quickstart" / "passerelle.yaml")
    served = passerelle("explain", "http://whoami.localhost:8080/hello", "-c", config)
    assert served.returncode == 0, served.stderr
    lines = served.stdout.splitlines()
    assert lines[0] == "answer:      proxied to default/whoami:80 (round robin: 127.0.0.1:9101)"
    assert "entry point: web, port 8080: it serves http on port 8080" in lines
    assert "router:      default-demo-whoami-localhost: Host(`whoami.localhost`) && PathPrefix(`/`)" in lines
    assert "             from Ingress default/demo (ingress.yaml:4)" in lines
    assert any(line.startswith("  PathPrefix(`/b`) (Ingress default/demo): path: ") for line in lines)
    tls = passerelle("explain", "https://127.0.0.1:8443/b/x", "-c", config)
    assert tls.returncode == 0 and "certificate: CN=PASSERELLE DEFAULT CERT" in tls.stdout
    assert "no SNI (the URL's host is an IP address): the default certificate" in tls.stdout
    assert "router:      default-demo-any-b: PathPrefix(`/b`)" in tls.stdout
    host_first = passerelle("explain", "http://whoami.localhost:8080/b/x", "-c", config)
    assert "precedence: default-demo-whoami-localhost has a more specific host" in host_first.stdout


def test_explain_exit_codes(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "a.yaml").write_text(_ingress("x", "missing"))
    config = tmp_path / "passerelle.yaml"
    config.write_text("entryPoints: {web: {address: ':8080'}}\nproviders: {manifests: {directory: m}}\n")
    unavailable = passerelle("explain", "http://a.test:8080/", "-c", str(config))
    assert unavailable.returncode == 1 and unavailable.stdout.startswith(
        "answer:      503 Service default/missing not found"
    )
    not_found = passerelle("explain", "http://b.test:8080/", "-c", str(config), "--json")
    assert not_found.returncode == 1 and json.loads(not_found.stdout)["result"]["status"] == 404
    unreachable = passerelle("explain", "https://a.test/", "-c", str(config))
    assert unreachable.returncode == 1 and "no entry point terminates TLS" in unreachable.stdout
    bad = passerelle("explain", "a.test/", "-c", str(config))
    assert (
        bad.returncode == 2
        and bad.stderr.strip() == "passerelle: url 'a.test/' must be an http:// or https:// URL"
    )
    missing = passerelle("explain", "http://a.test/", "-c", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and "config file not found" in missing.stderr


def test_explain_exit_code_follows_the_status(tmp_path: Path) -> None:
    """A redirect is exit 0, but a redirect that cannot be made (400: a Host unfit for a Location) is 1."""
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "a.yaml").write_text(_ingress("x", "missing"))
    config = tmp_path / "passerelle.yaml"
    config.write_text(
        "entryPoints:\n"
        "  web: {address: ':8080', http: {redirections: {entryPoint: {to: websecure}}}}\n"
        "  websecure: {address: ':8443', tls: {}}\n"
        "providers: {manifests: {directory: m}}\n"
    )
    redirected = passerelle("explain", "http://a.test:8080/x", "-c", str(config), "--json")
    assert redirected.returncode == 0, redirected.stdout
    assert json.loads(redirected.stdout)["result"]["location"] == "https://a.test:8443/x"
    refused = passerelle("explain", "http://a.test:8080/x", "-H", "Host: a b", "-c", str(config), "--json")
    result = json.loads(refused.stdout)["result"]
    assert (result["action"], result["status"], refused.returncode) == ("redirect", 400, 1)


def test_explain_without_the_manifests_directory_is_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "passerelle.yaml"
    config.write_text("entryPoints: {web: {address: ':8080'}}\nproviders: {manifests: {directory: nope}}\n")
    missing = passerelle("explain", "http://a.test:8080/", "-c", str(config))
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr.strip() == f"passerelle: manifests directory {tmp_path / 'nope'}: not a directory"


STUCK_THREAD = """
import concurrent.futures, sys, time
import passerelle.app

def stopped_with_work_in_a_thread(settings):  # what asyncio.to_thread leaves behind when cancelled
    concurrent.futures.ThreadPoolExecutor(1).submit(time.sleep, 120)
    print("router stopped", flush=True)

passerelle.app.run = stopped_with_work_in_a_thread
from passerelle.cli import main
main(["run", "-c", sys.argv[1]])
"""


def test_a_stopped_router_exits_without_waiting_for_work_left_in_threads(tmp_path: Path) -> None:
    """`passerelle run` after a clean stop: pure work cancelled mid-way (a translation, a DNS plan,
    in asyncio.to_thread) still runs in its thread; the process leaves without joining it (the
    interpreter's exit would wait the full 120 s, inside the pod's grace period)."""
    config = tmp_path / "passerelle.yaml"
    config.write_text(f"providers: {{manifests: {{directory: {tmp_path}}}}}\n")
    done = subprocess.run(
        [sys.executable, "-c", STUCK_THREAD, str(config)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0 and done.stdout == "router stopped\n", done
