"""The ctypes seam (passerelle/tls/openssl.py) in real processes: the control plane's probe turns a
crash or a refusal into one startup error, and configurations that do not need the seam start
without it (here made unloadable by a sitecustomize in every process passerelle starts)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from passerelle.tls import openssl
from tests.integration.harness import Backends, Router, endpoint_slice, free_port, ingress, rule, service
from tests.integration.test_tls import CA, call, tls_secret

NO_SSL_SYMBOLS = """\
import ctypes

_real = ctypes.CDLL


class _NoSsl(_real):  # the seam's one way in: CDLL(_ssl.__file__)
    def __init__(self, name, *args, **kwargs):
        if name and "_ssl" in str(name):
            raise OSError("this test made _ssl unloadable")
        super().__init__(name, *args, **kwargs)


ctypes.CDLL = _NoSsl
"""


def test_the_probe_passes_on_this_python() -> None:
    openssl.probe()


def test_a_crash_in_the_probe_is_an_error_not_a_crash() -> None:
    crash = [sys.executable, "-c", "import ctypes; ctypes.string_at(0)"]
    with pytest.raises(openssl.OpenSSLBindingError, match=r"crashed \(SIGSEGV\).*cannot be served"):
        openssl.probe(argv=crash)


def test_a_wrong_layout_is_refused_or_crashes_but_never_passes() -> None:
    shifted = [
        sys.executable,
        "-c",
        "from passerelle.tls import openssl\nopenssl._HEAD += 8\n" + openssl.PROBE,
    ]
    with pytest.raises(openssl.OpenSSLBindingError) as error:
        openssl.probe(argv=shifted)
    assert "\n" not in str(error.value)


def test_without_the_seam_http_and_tls_without_client_auth_serve_and_client_auth_is_refused(
    backends: Backends, make_router: Callable[..., Router], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(NO_SSL_SYMBOLS)
    monkeypatch.setenv("PYTHONPATH", str(site))
    port = backends.whoami("seam")
    objects = [
        service("seam"),
        endpoint_slice("seam", [port]),
        tls_secret("s", CA.issue_cert("s.test")),
        ingress("s", [rule("s.test", ("/", "Prefix", "seam"))], tls=[{"secretName": "s"}]),
        ingress("plain", [rule("plain.test", ("/", "Prefix", "seam"))]),
    ]
    plain = make_router(objects)  # HTTP only
    assert plain.workers()[0]["restarts"] == 0
    import httpx

    assert httpx.get(f"{plain.base}/", headers={"Host": "plain.test"}).status_code == 200
    tls_port = free_port()
    secure = make_router(
        objects, config={"entryPoints": {"websecure": {"address": f"127.0.0.1:{tls_port}", "tls": {}}}}
    )
    answer = call(tls_port, "s.test")
    assert answer.names == ["s.test"] and answer.status == 200
    assert secure.workers()[0]["restarts"] == 0
    guarded = Router(
        tmp_path / "guarded",
        config={
            "entryPoints": {"websecure": {"address": f"127.0.0.1:{free_port()}", "tls": {}}},
            "tls": {"options": {"default": {"clientAuth": {"clientAuthType": "RequireAnyClientCert"}}}},
        },
    )
    try:
        with pytest.raises(RuntimeError, match="cannot reach OpenSSL through this Python's _ssl module"):
            guarded.start()
    finally:
        guarded.stop()
