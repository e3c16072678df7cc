"""The control plane <-> worker channel: length-prefixed JSON messages over a stream socket.

Each message is a 4-byte big-endian length and a JSON object with a `type`. The control plane sends
`config` (a versioned DynamicConfig) and `drain`; a worker answers `applied` or `rejected` for each
version. The channel carries only whole snapshots, never deltas, so a worker that missed a message
is brought up to date by the next one.
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Callable
from typing import Any

_LENGTH = struct.Struct(">I")
Message = dict[str, Any]


class Channel(asyncio.Protocol):
    def __init__(self, on_message: Callable[[Message], None], on_closed: Callable[[], None]) -> None:
        self._on_message = on_message
        self._on_closed = on_closed
        self._buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        while len(buffer) >= 4:
            (length,) = _LENGTH.unpack_from(buffer)
            if len(buffer) < 4 + length:
                return
            message = json.loads(bytes(buffer[4 : 4 + length]))
            del buffer[: 4 + length]
            self._on_message(message)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._on_closed()

    def send(self, message: Message) -> bool:
        """False when the other side is gone."""
        if self.transport is None or self.transport.is_closing():
            return False
        body = json.dumps(message, separators=(",", ":")).encode()
        self.transport.write(_LENGTH.pack(len(body)) + body)
        return True

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
