"""openssl: the seam binds lazily and every way it cannot bind is one OpenSSLBindingError."""

from __future__ import annotations

import _ssl
import ctypes
import ssl
import sys
import sysconfig
from collections.abc import Iterator
from typing import Any

import pytest

from passerelle.tls import openssl


@pytest.fixture(autouse=True)
def fresh_binding() -> Iterator[None]:
    openssl._binding.cache_clear()
    yield
    openssl._binding.cache_clear()


def test_the_layout_checks_out_on_this_python() -> None:
    assert openssl._HEAD == object.__basicsize__
    openssl.check()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    assert openssl.verify_of(context) == openssl.NO_VERIFY


def test_a_free_threaded_build_is_refused_up_front(monkeypatch: pytest.MonkeyPatch) -> None:
    real = sysconfig.get_config_var
    monkeypatch.setattr(
        sysconfig, "get_config_var", lambda name: 1 if name == "Py_GIL_DISABLED" else real(name)
    )
    with pytest.raises(openssl.OpenSSLBindingError, match="free-threaded build"):
        openssl.check()


def test_a_debug_build_is_refused_up_front(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "gettotalrefcount", lambda: 0, raising=False)
    with pytest.raises(openssl.OpenSSLBindingError, match="debug build"):
        openssl.check()


def test_an_unloadable_or_built_in_ssl_module_is_one_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise OSError("cannot open shared object file")

    monkeypatch.setattr(ctypes, "CDLL", refuse)
    with pytest.raises(openssl.OpenSSLBindingError, match=r"^cannot reach OpenSSL .*OSError"):
        openssl.set_verify(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), openssl.VERIFY_PEER, accept_any=True)
    monkeypatch.undo()
    monkeypatch.delattr(_ssl, "__file__")  # _ssl built into the interpreter
    with pytest.raises(openssl.OpenSSLBindingError, match="AttributeError"):
        openssl.check()
