"""The ctypes seam to OpenSSL, for the three things Python's `ssl` does not expose.

1. Verifying without a CA (clientAuthType RequestClientCert, RequireAnyClientCert): a verify
   callback that accepts any chain, set with `SSL_CTX_set_verify`. CPython keeps a context's verify
   callback when its `verify_mode` changes later, so the two do not fight.
2. Applying the chosen context's verify mode to a handshake in progress. Switching
   `SSLObject.context` in the SNI callback calls `SSL_set_SSL_CTX`, which takes the certificate
   and the CA store of the new context but keeps the verify mode the connection was created with
   (measured; nginx's SNI callback calls SSL_set_verify for the same reason).
3. Reading the protocol version already negotiated when the SNI callback runs, and turning off the
   server session cache (see contexts.py on resumption).

Python objects are reached through CPython's struct layout: `PySSLContext` starts with the
`SSL_CTX *`, `PySSLSocket` with a weakref and then the `SSL *`, right after the object header
(stable since 3.7). `check()` proves the layout on a live pair before any of it is used.
"""

from __future__ import annotations

import _ssl
import ctypes
import ssl

_lib = ctypes.CDLL(_ssl.__file__)  # symbols of the libssl CPython's _ssl is linked against
_HEAD = ctypes.sizeof(ctypes.c_ssize_t) + ctypes.sizeof(ctypes.c_void_p)  # PyObject_HEAD

VERIFY_NONE = 0x00
VERIFY_PEER = 0x01
VERIFY_FAIL_IF_NO_PEER_CERT = 0x02
_SSL_CTRL_SET_SESS_CACHE_MODE = 44
_SSL_SESS_CACHE_OFF = 0

_VerifyCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)


def _accept_any(preverify_ok: int, store: int | None) -> int:
    return 1  # any chain, self-signed or unknown: the option asked for a certificate, not a CA


_ACCEPT_ANY = _VerifyCallback(_accept_any)  # kept for the life of the process: OpenSSL holds it
ACCEPT_ANY = ctypes.cast(_ACCEPT_ANY, ctypes.c_void_p).value

for _name, _args, _res in (
    ("SSL_CTX_set_verify", [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p], None),
    ("SSL_CTX_get_verify_mode", [ctypes.c_void_p], ctypes.c_int),
    ("SSL_CTX_get_verify_callback", [ctypes.c_void_p], ctypes.c_void_p),
    ("SSL_set_verify", [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p], None),
    ("SSL_get_verify_mode", [ctypes.c_void_p], ctypes.c_int),
    ("SSL_get_SSL_CTX", [ctypes.c_void_p], ctypes.c_void_p),
    ("SSL_version", [ctypes.c_void_p], ctypes.c_int),
    ("SSL_CTX_ctrl", [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p], ctypes.c_long),
):
    _fn = getattr(_lib, _name)
    _fn.argtypes = _args
    _fn.restype = _res


class OpenSSLBindingError(RuntimeError):
    """This Python's ssl objects are not laid out as expected; TLS client auth cannot be served."""


def context_pointer(context: ssl.SSLContext) -> int:
    return int(ctypes.c_void_p.from_address(id(context) + _HEAD).value or 0)


def connection_pointer(ssl_object: ssl.SSLObject) -> int:
    inner = ssl_object._sslobj  # type: ignore[attr-defined]
    return int(ctypes.c_void_p.from_address(id(inner) + _HEAD + ctypes.sizeof(ctypes.c_void_p)).value or 0)


def check() -> None:
    """Prove the struct layout on a fresh context and connection; raise OpenSSLBindingError if wrong."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    conn = context.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_side=True)
    ctx_ptr = context_pointer(context)
    if not ctx_ptr or _lib.SSL_get_SSL_CTX(connection_pointer(conn)) != ctx_ptr:
        raise OpenSSLBindingError(
            f"cannot reach OpenSSL through this Python's ssl module ({ssl.OPENSSL_VERSION})"
        )


def set_verify(context: ssl.SSLContext, mode: int, *, accept_any: bool) -> None:
    """The context's verify flags, with the accept-any callback or OpenSSL's own chain check."""
    _lib.SSL_CTX_set_verify(context_pointer(context), mode, ACCEPT_ANY if accept_any else None)


def verify_of(context: ssl.SSLContext) -> tuple[int, int | None]:
    """(flags, callback) a context verifies with, to hand to adopt_verify per handshake."""
    ptr = context_pointer(context)
    return int(_lib.SSL_CTX_get_verify_mode(ptr)), _lib.SSL_CTX_get_verify_callback(ptr)


def adopt_verify(ssl_object: ssl.SSLObject, verify: tuple[int, int | None]) -> None:
    _lib.SSL_set_verify(connection_pointer(ssl_object), verify[0], verify[1])


def connection_verify_mode(ssl_object: ssl.SSLObject) -> int:
    return int(_lib.SSL_get_verify_mode(connection_pointer(ssl_object)))


def negotiated_version(ssl_object: ssl.SSLObject) -> int:
    """The protocol version (0x0303 = TLS 1.2); already chosen when the SNI callback runs."""
    return int(_lib.SSL_version(connection_pointer(ssl_object)))


def disable_session_cache(context: ssl.SSLContext) -> None:
    _lib.SSL_CTX_ctrl(context_pointer(context), _SSL_CTRL_SET_SESS_CACHE_MODE, _SSL_SESS_CACHE_OFF, None)
