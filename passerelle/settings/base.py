"""The pieces every settings module uses: the strict model base, durations, the error type."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def _duration(value: Any) -> Any:
    if isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError(f"{value!r} is not a duration (examples: 30s, 1m, 500ms)")
        return float(match.group(1)) * _UNITS[match.group(2)]
    return value


Duration = Annotated[float, BeforeValidator(_duration), Field(ge=0)]


class StrictModel(BaseModel):
    """A settings section: unknown keys are errors, values are frozen once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def namespaced(value: str) -> str:
    if value and (value.count("/") != 1 or not all(value.split("/"))):
        raise ValueError(f"{value!r} must be namespace/name")
    return value


def reason(error: Exception) -> str:
    if isinstance(error, OSError):
        return f"{error.filename}: {error.strerror}" if error.filename else str(error.strerror or error)
    return str(error)


class SettingsError(Exception):
    """The static configuration is unusable; the message is for the operator, one line per error."""


def split_address(address: str) -> tuple[str, int]:
    """ ":8080" -> ("", 8080); "127.0.0.1:80"; "[::1]:80" -> ("::1", 80)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise SettingsError(f"address {address!r} must be host:port or :port")
    return host.strip("[]"), int(port)
