"""Command line: argv and PASSERELLE_* environment variables -> actions, nothing else."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click

from passerelle import __version__
from passerelle.compiled import decide


def _fail(message: str) -> NoReturn:
    click.echo(f"passerelle: {message}", err=True)
    sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """passerelle: a Kubernetes ingress controller and edge router."""


@main.command()
@click.option(
    "-c", "--config", "config", type=click.Path(path_type=Path), default="passerelle.yaml",
    envvar="PASSERELLE_CONFIG", show_default=True, help="Static configuration file.",
)  # fmt: skip
@click.option(
    "--log-level", envvar="PASSERELLE_LOG_LEVEL", help="DEBUG, INFO, WARNING or ERROR (overrides log.level)."
)
def run(config: Path, log_level: str | None) -> NoReturn:
    """Run the router in the foreground."""
    import logging
    import os

    from passerelle.app import StartupError
    from passerelle.app import run as run_app
    from passerelle.observability.logging import configure
    from passerelle.settings import SettingsError, load_settings

    try:
        settings = load_settings(config)
        configure((log_level or settings.log.level).upper(), settings.log.format)
        run_app(settings)
    except (StartupError, SettingsError) as e:
        _fail(str(e))
    except ValueError as e:
        _fail(str(e))
    # Stopped cleanly: workers gone, sockets closed, Lease released. Leave without the interpreter's
    # finalization, which joins every thread still running pure work (a translation or a DNS plan
    # cancelled mid-way, in asyncio.to_thread) and frees the heap object by object: up to seconds
    # on a loaded node, inside the pod's grace period, for nothing.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


@main.command()
@click.argument("directory", type=click.Path(path_type=Path))
@click.option(
    "--ingress-class", "classes", multiple=True, help="Class names served (default: passerelle, traefik)."
)
@click.option(
    "-c",
    "--config",
    "config_file",
    type=click.Path(path_type=Path),
    default=None,
    help="Static configuration whose entry points (names, TLS) placement uses (default: one plain `web`).",
)
@click.option(
    "--format", "style", type=click.Choice(["text", "json", "github"]), default="text", show_default=True,
    help="text: file:line lines; json: as /api/problems; github: workflow annotations.",
)  # fmt: skip
@click.option("--strict", is_flag=True, help="Exit 1 on warnings too.")
def check(
    directory: Path, classes: tuple[str, ...], config_file: Path | None, style: str, strict: bool
) -> None:
    """Translate a directory of manifests offline; print every problem; exit 1 on errors."""
    import dataclasses
    import json

    from passerelle.api.text import problem_lines
    from passerelle.api.views import problem_json
    from passerelle.kube.ingress import IngressOptions, translate
    from passerelle.kube.manifests import ManifestsProvider
    from passerelle.model import Severity
    from passerelle.settings import SettingsError, load_settings

    if not directory.is_dir():
        _fail(f"{directory}: not a directory")
    options = IngressOptions()
    if config_file is not None:
        try:
            options = load_settings(config_file).ingress_options()
        except SettingsError as e:
            _fail(str(e))
    if classes:
        options = dataclasses.replace(options, ingress_classes=classes)
    loaded = ManifestsProvider(directory, watch=False).load()
    config, problems = translate(loaded.snapshot, options)
    problems = loaded.problems + problems
    errors = sum(p.severity is Severity.ERROR for p in problems)
    if style == "json":
        items = [problem_json(p, loaded.origins) for p in problems]
        click.echo(json.dumps({"routers": len(config.routers), "services": len(config.services),
                               "problems": items}, indent=2))  # fmt: skip
    else:
        for line in problem_lines(problems, loaded.origins, style=style, root=str(directory)):
            click.echo(line)
        click.echo(f"{len(config.routers)} routers, {len(config.services)} services, {errors} errors, "
                   f"{len(problems) - errors} warnings")  # fmt: skip
    sys.exit(1 if errors or (strict and problems) else 0)


@main.command()
@click.argument("url")
@click.option(
    "-c", "--config", "config", type=click.Path(path_type=Path), default="passerelle.yaml",
    envvar="PASSERELLE_CONFIG", show_default=True, help="Static configuration (its manifests are read).",
)  # fmt: skip
@click.option("-X", "--method", default="GET", show_default=True, help="Request method.")
@click.option(
    "-H", "--header", "headers", multiple=True, help="A request header, `Name: value` (repeatable)."
)
@click.option("--entrypoint", default="", help="The entry point the request arrives on (default: by URL).")
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON, as /api/explain.")
def explain(
    url: str, config: Path, method: str, headers: tuple[str, ...], entrypoint: str, as_json: bool
) -> None:
    """Which entry point, certificate, router, middlewares and endpoints a request for URL gets.

    Offline: the manifests the configuration points at, translated as `run` would. Exit 0 when the
    request is proxied or redirected, 1 when passerelle answers it with an error status (400 for a
    Host that cannot be redirected, 404, 421, 503) or it reaches no entry point, 2 when the
    question or the configuration is wrong (a manifests directory that is not there too)."""
    import json

    from passerelle.api.explain import ExplainError, Question, parse_header
    from passerelle.api.offline import offline_view
    from passerelle.api.text import explanation_lines
    from passerelle.settings import SettingsError, load_settings

    try:
        view = offline_view(load_settings(config))
        question = Question(
            url=url, method=method, headers=tuple(parse_header(h) for h in headers), entrypoint=entrypoint
        )
        answer = view.explainer.explain(question)
    except (SettingsError, ExplainError) as e:
        _fail(str(e))
    if as_json:
        click.echo(json.dumps(answer, indent=2))
    else:
        click.echo("\n".join(explanation_lines(answer)))
    result = answer["result"]
    proxied = result["action"] == "proxy"  # status None: the backend answers
    sys.exit(0 if proxied or (result["status"] is not None and result["status"] < 400) else 1)


@main.command()
@click.option(
    "-c", "--config", "config", type=click.Path(path_type=Path), default="passerelle.yaml",
    envvar="PASSERELLE_CONFIG", show_default=True, help="Static configuration file (with dnsSync).",
)  # fmt: skip
@click.option("--dry-run", is_flag=True, help="Read the zones and print the plan; change nothing.")
@click.option(
    "--force", is_flag=True, help="Apply deletions past dnsSync.maxDeletePercent (after reading the plan)."
)
def dnssync(config: Path, dry_run: bool, force: bool) -> None:
    """Reconcile DNS once from the manifests (print the plan with --dry-run); exit 1 on errors.

    With providers.kubernetes the running router does it (POST on its loopback API, in its pod):
    --dry-run plans on any replica, --force reconciles once past maxDeletePercent on the leader."""
    import asyncio

    from passerelle.app import dns_sync
    from passerelle.dnssync.plan import describe
    from passerelle.kube.ingress import translate
    from passerelle.kube.manifests import ManifestsProvider
    from passerelle.settings import SettingsError, load_settings

    try:
        settings = load_settings(config)
    except SettingsError as e:
        _fail(str(e))
    if settings.dnsSync is not None and settings.providers.kubernetes is not None:
        if dry_run == force:
            _fail("with providers.kubernetes the leader reconciles by itself: give --dry-run or --force")
        _dnssync_in_cluster(settings.api.address, "/api/dnssync/force" if force else "/api/dnssync/plan")
    try:
        sync = dns_sync(settings)
    except SettingsError as e:
        _fail(str(e))
    if sync is None or settings.providers.manifests is None:
        _fail(f"{config}: needs dnsSync and providers.manifests (or providers.kubernetes)")
    loaded = ManifestsProvider(Path(settings.providers.manifests.directory), watch=False).load()
    sync.observe(loaded.snapshot)
    sync.serve(translate(loaded.snapshot, settings.ingress_options())[0])
    outcome = asyncio.run(sync.reconcile(write=not dry_run, force=force))
    assert outcome.plan is not None
    click.echo(f"{sync.provider.describe()}{' (dry run: nothing written)' if dry_run else ''}")
    for line in describe(outcome.plan, sync.options):
        click.echo(line)
    if not dry_run:
        click.echo(f"applied {outcome.applied} changes")
    for error in outcome.errors:
        click.echo(f"error: {error}", err=True)
    sys.exit(1 if outcome.errors else 0)


def _router_api(address: str) -> tuple[str, int]:
    """Where to reach the running router's API (`api.address`; a wildcard bind: its loopback)."""
    from passerelle.settings import SettingsError, split_address

    try:
        host, port = split_address(address)
    except SettingsError as e:
        _fail(str(e))
    return {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host), port


def _api_call(host: str, port: int, method: str, path: str, *, timeout: float) -> tuple[int, bytes]:
    """One request to the router's API, a POST with the header actions need; OSError if unreachable."""
    import http.client

    from passerelle.api.server import ACTION_HEADER

    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request(method, path, headers={ACTION_HEADER: "1"} if method == "POST" else {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _dnssync_in_cluster(address: str, path: str) -> NoReturn:
    """POST `path` to the running router's API (dnssync/actions.py), print what it answers."""
    import json

    host, port = _router_api(address)
    try:
        status, body = _api_call(host, port, "POST", path, timeout=120)  # zone transfers may take a while
    except OSError as e:
        _fail(f"cannot reach the router's API on {host}:{port}: {e.strerror or e}")
    try:
        answer = dict(json.loads(body))
    except ValueError:
        _fail(f"POST {path} on {host}:{port}: {status} {body.decode(errors='replace').strip()}")
    if "plan" not in answer:
        _fail(f"POST {path} on {host}:{port}: {status}: {answer.get('message', answer)}")
    dry = bool(answer.get("dryRun"))
    click.echo(f"{answer.get('provider', '')}{' (dry run: nothing written)' if dry else ' (forced)'}")
    for line in answer["plan"]:
        click.echo(line)
    if not dry:
        click.echo(f"applied {answer.get('applied', 0)} changes")
    for error in answer.get("errors") or ():
        click.echo(f"error: {error}", err=True)
    sys.exit(1 if answer.get("errors") else 0)


@main.command()
@click.option(
    "-c", "--config", "config", type=click.Path(path_type=Path), default="passerelle.yaml",
    envvar="PASSERELLE_CONFIG", show_default=True, help="Static configuration of the running router.",
)  # fmt: skip
@click.option(
    "--wait/--no-wait", default=True, show_default=True, help="Follow the drain until the router exits."
)
def drain(config: Path, wait: bool) -> None:
    """Drain the running router: out of DNS, wait the TTL, /ping 503, then stop (docs/dns-sync.md).

    With --wait, exits 1 when the node could not be taken out of DNS (unknown node name, timeout)
    and 3 when it stayed in DNS as the last eligible node."""
    import json
    import time

    from passerelle.settings import SettingsError, load_settings

    try:
        host, port = _router_api(load_settings(config).api.address)
    except SettingsError as e:
        _fail(str(e))

    def call(method: str) -> dict[str, object]:
        status, body = _api_call(host, port, method, "/api/drain", timeout=5)
        if status not in (200, 202):
            _fail(f"POST /api/drain on {host}:{port}: {status} {body.decode(errors='replace').strip()}")
        return dict(json.loads(body))

    try:
        status = call("POST")
    except OSError as e:
        _fail(f"cannot reach the router's API on {host}:{port}: {e.strerror or e}")
    click.echo("drain: requested")
    if not wait:
        return
    shown: set[str] = set()
    dns = ""
    failed = False
    while True:
        since = status.get("since")
        entered = sorted(since.items(), key=lambda item: item[1]) if isinstance(since, dict) else []
        for phase, _ in entered:  # every phase entered, in order, even the short ones between two polls
            if phase not in shown:
                shown.add(phase)
                click.echo(f"drain: {phase}")
            if phase == "leaving-dns" and not dns and status.get("dns"):
                dns, failed = str(status["dns"]), bool(status.get("dnsFailed"))
                label = "FAILED" if failed else "KEPT IN DNS" if dns == "kept" else "ok"
                click.echo(f"drain: dns {label} ({dns}): {status.get('dnsDetail', '')}", err=failed)
                if status.get("annotation") == "failed":
                    failed = True
                    click.echo(
                        f"drain: pod annotation FAILED: {status.get('annotationDetail', '')}", err=True
                    )
        time.sleep(0.2)  # noqa: TID251 -- a command-line loop in its own process: no event loop to block
        try:
            status = call("GET")
        except OSError:
            click.echo("drain: router stopped")
            sys.exit(1 if failed else 3 if dns == "kept" else 0)


@main.command()
def version() -> None:
    """Print the version, and whether the hot-path modules run compiled."""
    click.echo(f"passerelle {__version__}")
    click.echo(f"hot path: {decide()[1]}")


@main.command()
@click.option("--listen", default="127.0.0.1:8081", show_default=True, help="host:port to listen on.")
@click.option("--name", default="whoami", show_default=True, help="Pod name reported in answers.")
@click.option("--namespace", default="default", show_default=True, help="Namespace reported in answers.")
def whoami(listen: str, name: str, namespace: str) -> None:
    """Run a small echo backend (for demos and tests)."""
    import asyncio

    import uvloop

    from passerelle.settings import SettingsError, split_address
    from passerelle.whoami import serve_whoami

    try:
        host, port = split_address(listen)
    except SettingsError as e:
        _fail(str(e))

    async def serve() -> None:
        try:
            server = await serve_whoami(host, port, pod=name, namespace=namespace)
        except OSError as e:
            _fail(f"cannot listen on {listen}: {e.strerror or e}")
        click.echo(f"whoami {name} listening on {listen}", err=True)
        async with server:
            await asyncio.Event().wait()

    try:
        uvloop.run(serve())
    except KeyboardInterrupt:
        pass
