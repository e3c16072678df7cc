"""The ctypes seam to OpenSSL, for the three things Python's `ssl` does not expose.

1. Verifying without a CA (clientAuthType RequestClientCert, RequireAnyClientCert): a verify
   callback that accepts any chain, set with `SSL_CTX_set_verify`. CPython keeps a context's verify
   callback when its `verify_mode` changes later, so the two do not fight.
2. Applying the chosen context's verify mode to a handshake in progress. Switching
   `SSLObject.context` in the SNI callback calls `SSL_set_SSL_CTX`, which takes the certificate
   and the CA store of the new context but keeps the verify mode the connection was created with
   (measured; nginx's SNI callback calls SSL_set_verify for the same reason).
3. Reading the protocol version already negotiated when the SNI callback runs, turning the
   server session cache off and on (see contexts.py on resumption), and setting several key
   exchange groups (`SSL_CTX_set1_groups_list`; `set_ecdh_curve` takes one).
4. A ClientHello callback (`SSL_CTX_set_client_hello_cb`, which runs before the SNI callback and
   before the key exchange group is chosen; `ClientHelloHook`): it notes handshakes that offer
   ALPN `acme-tls/1` (TLS-ALPN-01, RFC 8737: Python's SNI callback cannot see the offer), and
   sets a host's curvePreferences on the connection (a context switched to by SNI is too late).

Python objects are reached through CPython's struct layout: `PySSLContext` starts with the
`SSL_CTX *`, `PySSLSocket` with a weakref and then the `SSL *`, right after the object header
(`object.__basicsize__`; stable since 3.7). Free-threaded and debug builds lay objects out
otherwise and are refused. Nothing is loaded at import: only configurations that need the seam
(contexts.TlsStatic.needs_openssl) bind it, and every failure is one OpenSSLBindingError. A wrong
layout could crash the process rather than raise, so the control plane runs `check()` first in a
short child process (`probe`): a crash there is a startup error, not a worker dying in a loop.
"""

from __future__ import annotations

import functools
import signal
import ssl
import struct
import subprocess
import sys
import sysconfig
from collections.abc import Callable, Sequence

VERIFY_NONE = 0x00
VERIFY_PEER = 0x01
VERIFY_FAIL_IF_NO_PEER_CERT = 0x02
NO_VERIFY: tuple[int, int | None] = (VERIFY_NONE, None)  # a fresh server context's (flags, callback)
_SSL_CTRL_SET_SESS_CACHE_MODE = 44
_SSL_CTRL_SET_GROUPS_LIST = 92  # SSL_CTX_set1_groups_list is this SSL_CTX_ctrl (ssl.h)
_SSL_SESS_CACHE_OFF = 0
_SSL_SESS_CACHE_SERVER = 2  # OpenSSL's default for a server context
# OpenSSL 3's default key exchange groups (ssl/t1_lib.c supported_groups_default), restored when
# an entry point's option stops naming curves.
DEFAULT_GROUPS = ("X25519", "prime256v1", "X448", "secp521r1", "secp384r1")
_HEAD = object.__basicsize__  # PyObject_HEAD: 16 bytes on a standard 64-bit build
_WORD = struct.calcsize("P")  # a pointer
_WHY = "TLS client authentication, per-host TLS versions and curvePreferences cannot be served"

# The child process `probe` runs: exit 3 with the message on a refusal, a signal on a crash.
PROBE = (
    "import sys\n"
    "from passerelle.tls import openssl\n"
    "try:\n"
    "    openssl.check()\n"
    "except openssl.OpenSSLBindingError as e:\n"
    "    sys.stdout.write(str(e))\n"
    "    sys.exit(3)\n"
)


class OpenSSLBindingError(RuntimeError):
    """This Python's ssl module cannot be reached through ctypes; the message is one line."""


def _accept_any(preverify_ok: int, store: int | None) -> int:
    return 1  # any chain, self-signed or unknown: the option asked for a certificate, not a CA


class _Binding:
    """libssl's functions as CPython's _ssl module links them, and the accept-any callback."""

    __slots__ = ("lib", "accept_any", "_callback", "c_void_p", "ctypes")

    def __init__(self) -> None:
        import _ssl
        import ctypes

        self.lib = ctypes.CDLL(_ssl.__file__)  # AttributeError when _ssl is built in
        for name, args, res in (
            ("SSL_CTX_set_verify", [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p], None),
            ("SSL_CTX_get_verify_mode", [ctypes.c_void_p], ctypes.c_int),
            ("SSL_CTX_get_verify_callback", [ctypes.c_void_p], ctypes.c_void_p),
            ("SSL_set_verify", [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p], None),
            ("SSL_get_verify_mode", [ctypes.c_void_p], ctypes.c_int),
            ("SSL_get_SSL_CTX", [ctypes.c_void_p], ctypes.c_void_p),
            ("SSL_version", [ctypes.c_void_p], ctypes.c_int),
            ("SSL_CTX_ctrl", [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p], ctypes.c_long),
            (
                "SSL_client_hello_get0_ext",
                [
                    ctypes.c_void_p,
                    ctypes.c_uint,
                    ctypes.POINTER(ctypes.c_void_p),
                    ctypes.POINTER(ctypes.c_size_t),
                ],
                ctypes.c_int,
            ),
            ("SSL_CTX_set_client_hello_cb", [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p], None),
            ("SSL_ctrl", [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_char_p], ctypes.c_long),
        ):
            fn = getattr(self.lib, name)
            fn.argtypes = args
            fn.restype = res
        callback_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)
        self._callback = callback_type(_accept_any)  # kept as long as the binding: OpenSSL holds it
        self.accept_any = ctypes.cast(self._callback, ctypes.c_void_p).value
        self.c_void_p = ctypes.c_void_p
        self.ctypes = ctypes


@functools.cache  # successes only: a failure is raised again, with its message, on every call
def _binding() -> _Binding:
    if sys.implementation.name != "cpython":
        raise OpenSSLBindingError(f"{sys.implementation.name} is not CPython: {_WHY}")
    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        raise OpenSSLBindingError(
            f"this Python is a free-threaded build, whose objects are laid out otherwise: {_WHY}"
        )
    if hasattr(sys, "gettotalrefcount"):
        raise OpenSSLBindingError(
            f"this Python is a debug build, whose objects are laid out otherwise: {_WHY}"
        )
    try:
        return _Binding()
    except (ImportError, AttributeError, OSError) as e:
        raise OpenSSLBindingError(
            f"cannot reach OpenSSL through this Python's _ssl module ({type(e).__name__}: {e}): {_WHY}"
        ) from None


def _pointer(address: int) -> int:
    return int(_binding().c_void_p.from_address(address).value or 0)


def context_pointer(context: ssl.SSLContext) -> int:
    return _pointer(id(context) + _HEAD)


def connection_pointer(ssl_object: ssl.SSLObject) -> int:
    inner = ssl_object._sslobj  # type: ignore[attr-defined]
    return _pointer(id(inner) + _HEAD + _WORD)  # after the weakref to the Python socket


def check() -> None:
    """Prove the struct layout on a fresh context and connection; raise OpenSSLBindingError if wrong.

    A wrong layout may crash instead: the control plane calls this through `probe` first."""
    lib = _binding().lib
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    conn = context.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_side=True)
    ctx_ptr = context_pointer(context)
    if not ctx_ptr or lib.SSL_get_SSL_CTX(connection_pointer(conn)) != ctx_ptr:
        raise OpenSSLBindingError(
            f"this Python's ssl objects are not laid out as expected ({ssl.OPENSSL_VERSION}): {_WHY}"
        )


def probe(*, argv: Sequence[str] | None = None, timeout: float = 30.0) -> None:
    """Run check() in a child process, so that a crash is an error here; OpenSSLBindingError if not ok."""
    command = list(argv) if argv is not None else [sys.executable, "-c", PROBE]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise OpenSSLBindingError(f"the OpenSSL binding check could not run ({e}): {_WHY}") from None
    if done.returncode == 0:
        return
    if done.returncode < 0:
        try:
            name = signal.Signals(-done.returncode).name
        except ValueError:
            name = f"signal {-done.returncode}"
        raise OpenSSLBindingError(
            f"the OpenSSL binding check crashed ({name}): this Python's ssl objects are not laid out as "
            f"expected ({ssl.OPENSSL_VERSION}); {_WHY}"
        )
    said = (done.stdout.strip() or done.stderr.strip()).splitlines()
    raise OpenSSLBindingError(
        said[-1] if said else f"the OpenSSL binding check failed (exit {done.returncode})"
    )


def set_verify(context: ssl.SSLContext, mode: int, *, accept_any: bool) -> None:
    """The context's verify flags, with the accept-any callback or OpenSSL's own chain check."""
    binding = _binding()
    binding.lib.SSL_CTX_set_verify(context_pointer(context), mode, binding.accept_any if accept_any else None)


def verify_of(context: ssl.SSLContext) -> tuple[int, int | None]:
    """(flags, callback) a context verifies with, to hand to adopt_verify per handshake."""
    lib, ptr = _binding().lib, context_pointer(context)
    return int(lib.SSL_CTX_get_verify_mode(ptr)), lib.SSL_CTX_get_verify_callback(ptr)


def adopt_verify(ssl_object: ssl.SSLObject, verify: tuple[int, int | None]) -> None:
    _binding().lib.SSL_set_verify(connection_pointer(ssl_object), verify[0], verify[1])


def connection_verify_mode(ssl_object: ssl.SSLObject) -> int:
    return int(_binding().lib.SSL_get_verify_mode(connection_pointer(ssl_object)))


def negotiated_version(ssl_object: ssl.SSLObject) -> int:
    """The protocol version (0x0303 = TLS 1.2); already chosen when the SNI callback runs."""
    return int(_binding().lib.SSL_version(connection_pointer(ssl_object)))


def set_session_cache(context: ssl.SSLContext, on: bool) -> None:
    mode = _SSL_SESS_CACHE_SERVER if on else _SSL_SESS_CACHE_OFF
    _binding().lib.SSL_CTX_ctrl(context_pointer(context), _SSL_CTRL_SET_SESS_CACHE_MODE, mode, None)


def set_groups(context: ssl.SSLContext, groups: Sequence[str]) -> None:
    """The key exchange groups a context offers, in order (OpenSSL short names, as tls/options.py
    CURVES). `ssl` has only set_ecdh_curve, which takes one: a single group needs no binding."""
    if len(groups) == 1:
        context.set_ecdh_curve(groups[0])
        return
    binding = _binding()
    names = binding.ctypes.c_char_p(":".join(groups).encode())
    if binding.lib.SSL_CTX_ctrl(context_pointer(context), _SSL_CTRL_SET_GROUPS_LIST, 0, names) != 1:
        raise ValueError(f"OpenSSL refused the groups {':'.join(groups)}")


_TLSEXT_ALPN = 16  # RFC 7301 §3.1
_HELLO_SUCCESS = 1  # SSL_CLIENT_HELLO_SUCCESS
_WATCHED_MAX = 1024  # handshakes noted but never reaching the SNI callback (no SNI) are forgotten


class ClientHelloHook:
    """The ClientHello callback of a listening context (OpenSSL keeps one per context). It runs
    before the SNI callback, before the version is negotiated and the key exchange group chosen.

    Two duties, each off until asked for:
    - `watch(protocol)`: note the handshakes whose ClientHello offers ALPN `protocol`;
      `offered(ssl_object)` in the SNI callback says whether this one did (and forgets it). Only
      connections that offer it are noted: for acme-tls/1, the CA's validation requests.
    - `groups`: SNI name (lower-case) -> the key exchange groups this handshake must use
      (b"secp384r1:X25519"), or None; set on the connection (`SSL_set1_groups_list`), for hosts
      whose TLS option names other curves than the entry point's."""

    __slots__ = ("_protocol", "_noted", "_callback", "groups")

    def __init__(self, context: ssl.SSLContext) -> None:
        binding = _binding()
        ctypes = binding.ctypes
        self._protocol = b""
        self._noted: set[int] = set()
        self.groups: Callable[[str], bytes | None] | None = None
        callback_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
        self._callback = callback_type(self._on_hello)  # OpenSSL holds it as long as the context
        pointer = ctypes.cast(self._callback, ctypes.c_void_p).value
        binding.lib.SSL_CTX_set_client_hello_cb(context_pointer(context), pointer, None)

    def watch(self, protocol: bytes) -> None:
        self._protocol = protocol

    def _on_hello(self, ssl_pointer: int, _alert: int | None, _arg: int | None) -> int:
        if self._protocol:
            try:
                if self._protocol in _alpn_offer(ssl_pointer):
                    if len(self._noted) >= _WATCHED_MAX:
                        self._noted.clear()
                    self._noted.add(ssl_pointer)
                else:  # a new connection where a noted one that never reached SNI was
                    self._noted.discard(ssl_pointer)
            except Exception:  # never fail a handshake for this: it then just gets no challenge
                pass
        groups = self.groups
        if groups is not None:
            try:
                name = _server_name(ssl_pointer)
                wanted = groups(name) if name else None
                if wanted:
                    _binding().lib.SSL_ctrl(ssl_pointer, _SSL_CTRL_SET_GROUPS_LIST, 0, wanted)
            except Exception:  # never fail a handshake for this: it keeps the entry point's groups
                pass
        return _HELLO_SUCCESS

    def offered(self, ssl_object: ssl.SSLObject) -> bool:
        if not self._noted:
            return False
        pointer = connection_pointer(ssl_object)
        if pointer in self._noted:
            self._noted.discard(pointer)
            return True
        return False


_TLSEXT_SERVER_NAME = 0  # RFC 6066 §3


def _server_name(ssl_pointer: int) -> str:
    """The ClientHello's SNI host name, lower-case, or "" (in the ClientHello callback only)."""
    data = _extension(ssl_pointer, _TLSEXT_SERVER_NAME)
    # a 2-byte list length, then entries: type (0: host_name), 2-byte length, name
    if len(data) < 5 or data[2] != 0:
        return ""
    size = int.from_bytes(data[3:5], "big")
    return data[5 : 5 + size].decode("ascii", "replace").lower()


def _extension(ssl_pointer: int, kind: int) -> bytes:
    binding = _binding()
    ctypes = binding.ctypes
    out, length = ctypes.c_void_p(), ctypes.c_size_t()
    if not binding.lib.SSL_client_hello_get0_ext(ssl_pointer, kind, ctypes.byref(out), ctypes.byref(length)):
        return b""
    return ctypes.string_at(out.value, length.value) if out.value else b""


def _alpn_offer(ssl_pointer: int) -> list[bytes]:
    """The protocol names of the ClientHello's ALPN extension (in the ClientHello callback only)."""
    data = _extension(ssl_pointer, _TLSEXT_ALPN)
    names, i = [], 2  # a 2-byte list length, then 1-byte-length-prefixed names
    while i < len(data):
        size = data[i]
        names.append(data[i + 1 : i + 1 + size])
        i += 1 + size
    return names
