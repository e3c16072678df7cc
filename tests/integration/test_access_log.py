"""The access log's `fields.headers` and `filters` on a real router, and SIGUSR1 (logrotate):
the file is reopened, no line lost or written twice."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.integration.harness import Backends, Router, endpoint_slice, ingress, rule, service, wait_for


def objects(backend: int) -> list[dict[str, Any]]:
    return [
        service("app"),
        endpoint_slice("app", [backend]),
        ingress("app", [rule("app.test", ("/", "Prefix", "app"))]),
    ]


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_headers_are_redacted_and_filters_keep_only_what_they_match(
    backends: Backends, make_router: Callable[..., Router], tmp_path: Path
) -> None:
    access = tmp_path / "access.log"
    config = {
        "accessLog": {
            "filePath": str(access),
            "fields": {
                "names": {"ClientAddr": "drop"},
                "headers": {"names": {"User-Agent": "keep", "authorization": "redact"}},
            },
            "filters": {"statusCodes": ["400-404"]},
        }
    }
    router = make_router(objects(backends.whoami("pod")), config=config)
    secret = {"Authorization": "Bearer s3cret", "User-Agent": "probe/1", "Cookie": "a=1"}
    assert httpx.get(router.base, headers={"Host": "app.test", **secret}).status_code == 200  # filtered out
    assert httpx.get(f"{router.base}/x", headers={"Host": "nope.test", **secret}).status_code == 404
    wait_for(lambda: len(lines(access)) == 1, "one access log line")
    [line] = lines(access)
    assert line["DownstreamStatus"] == 404 and line["RequestPath"] == "/x"
    assert line["request_User-Agent"] == "probe/1" and line["request_Authorization"] == "REDACTED"
    assert "request_Cookie" not in line and "ClientAddr" not in line and "s3cret" not in json.dumps(line)


def test_sigusr1_reopens_the_file_for_logrotate(
    backends: Backends, make_router: Callable[..., Router], tmp_path: Path
) -> None:
    access, rotated = tmp_path / "access.log", tmp_path / "access.log.1"
    config = {"workers": 1, "accessLog": {"filePath": str(access), "bufferingSize": 1}}
    router = make_router(objects(backends.whoami("pod")), config=config)
    sent = 0

    def request() -> None:
        nonlocal sent
        sent += 1
        assert httpx.get(f"{router.base}/{sent}", headers={"Host": "app.test"}).status_code == 200

    request()
    wait_for(lambda: len(lines(access)) == 1, "the first line")
    os.rename(access, rotated)  # logrotate: move the file, then signal
    assert router.process is not None
    os.kill(router.process.pid, signal.SIGUSR1)  # to the control plane, which tells its workers

    def reopened() -> bool:
        request()
        return access.exists()

    wait_for(reopened, "a new access.log after SIGUSR1")
    request()
    wait_for(lambda: len(lines(rotated)) + len(lines(access)) == sent, f"{sent} lines in both files")
    paths = [line["RequestPath"] for line in lines(rotated) + lines(access)]
    assert paths == [f"/{n}" for n in range(1, sent + 1)]  # each once, in order, none lost
    assert lines(access) and router.process.poll() is None  # the signal did not stop anything
