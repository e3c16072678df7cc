"""TSIG key checks shared by the settings (at load) and the rfc2136 provider (at start).

No dnspython here: settings load in every process, dnspython only where DNS sync runs.
"""

from __future__ import annotations

import base64
import binascii

# The algorithms rfc2136.py maps to dnspython's.
ALGORITHMS = ("hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224", "hmac-sha1", "hmac-md5")


def secret_error(key_name: str, secret: str) -> str:
    """Why `secret` cannot sign for `key_name` ("" when it can, or when unsigned)."""
    if not key_name:
        return ""
    if not secret:
        return f"TSIG key {key_name!r} has no secret"
    try:
        base64.b64decode(secret, validate=True)
    except binascii.Error:
        return "the TSIG secret is not base64 (as in BIND's key clause)"
    return ""
