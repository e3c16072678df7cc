"""ACME Renewal Information (RFC 9773): the certificate's identifier, the CA's answer, the schedule (pure).

A CA that offers `renewalInfo` in its directory answers `GET <renewalInfo>/<id>` with a suggested
window (`{"suggestedWindow": {"start": ..., "end": ...}}`) and a Retry-After saying when to ask
again. The client picks a uniformly random time inside the window (§4.3, so that certificates
issued together are not renewed together); a window already over means "renew now". Retry-After
is kept within [MIN_RETRY, MAX_RETRY] (§4.3: clients set reasonable limits), DEFAULT_RETRY when
absent. A window that does not parse, or ends before it starts, is an error (§4.2): the caller
keeps its own schedule (renewBefore) and asks again later.
"""

from __future__ import annotations

import base64
import datetime
from collections.abc import Mapping
from typing import Any

from cryptography import x509

DEFAULT_RETRY = 6 * 3600.0  # seconds, when the CA sends no Retry-After (§4.3)
MIN_RETRY = 60.0
MAX_RETRY = 86400.0


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def certificate_id(cert: x509.Certificate) -> str:
    """§4.1: base64url(AKI keyIdentifier) "." base64url(the serial's DER INTEGER value bytes)."""
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    if aki.key_identifier is None:
        raise ValueError("the certificate's Authority Key Identifier has no keyIdentifier")
    serial = cert.serial_number
    value = serial.to_bytes((serial.bit_length() + 8) // 8, "big", signed=True)  # room for the sign bit
    return f"{_b64(aki.key_identifier)}.{_b64(value)}"


def suggested_window(body: Mapping[str, Any]) -> tuple[datetime.datetime, datetime.datetime]:
    window = body.get("suggestedWindow") if isinstance(body, Mapping) else None
    if not isinstance(window, Mapping):
        raise ValueError("renewalInfo has no suggestedWindow")
    try:
        start, end = (datetime.datetime.fromisoformat(str(window[k])) for k in ("start", "end"))
    except (KeyError, ValueError):
        raise ValueError(f"renewalInfo suggestedWindow is not two RFC 3339 times: {dict(window)}") from None
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("renewalInfo suggestedWindow times have no time zone")
    if end < start:
        raise ValueError(f"renewalInfo suggestedWindow ends ({end}) before it starts ({start})")
    return start.astimezone(datetime.UTC), end.astimezone(datetime.UTC)


def schedule(
    window: tuple[datetime.datetime, datetime.datetime],
    now: datetime.datetime,
    *,
    retry_after: float | None,
    draw: float,
) -> tuple[datetime.datetime, datetime.datetime]:
    """(when to renew, when to ask again). `draw` in [0, 1) picks the time inside the window; a
    window in the past gives `now` (renew at once)."""
    start, end = window
    renew_at = max(now, start + (end - start) * draw)
    wait = DEFAULT_RETRY if retry_after is None else min(MAX_RETRY, max(MIN_RETRY, retry_after))
    return renew_at, now + datetime.timedelta(seconds=wait)
