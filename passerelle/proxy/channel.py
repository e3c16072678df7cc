"""The control plane <-> worker channel: length-prefixed JSON messages over a stream socket.

Each message is a 4-byte big-endian length and a JSON object with a `type`. A configuration version
travels as `begin` (version, and whether routers follow), `routers` and `services` frames of at most
FRAME_ITEMS items each, and `commit`: small frames, so a worker decodes a version of 20,000 routers
slice by slice between requests. Routers are left out when they did not change since the version
the worker holds (an endpoint change sends only services), and so is the TLS state when it did
not change; otherwise a `tls` frame (host options, client CAs) and `certificates` frames of at
most CERTIFICATE_ITEMS certificates with their keys (a few KiB each) travel too. Before any version,
`static` carries the static TLS state (control/distribute.py). `drain` asks the worker to finish; a
worker answers `ready` once, then `applied` or `rejected` for each version.
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Callable
from typing import Any

from passerelle.model import DynamicConfig, TlsConfig, codec

_LENGTH = struct.Struct(">I")
FRAME_ITEMS = 200
CERTIFICATE_ITEMS = 50
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


def config_frames(
    number: int, config: DynamicConfig, *, with_routers: bool, with_tls: bool = True
) -> list[Message]:
    """The frames that carry one configuration version."""
    frames: list[Message] = [{"type": "begin", "version": number, "routers": with_routers, "tls": with_tls}]
    if with_tls:
        tls = config.tls
        rest = codec.dump_tls(TlsConfig(hosts=tls.hosts, client_cas=tls.client_cas))
        frames.append({"type": "tls", "version": number, "tls": rest})
        for i in range(0, len(tls.certificates), CERTIFICATE_ITEMS):
            items = [
                codec.dump_certificate(c, with_keys=True) for c in tls.certificates[i : i + CERTIFICATE_ITEMS]
            ]
            frames.append({"type": "certificates", "version": number, "items": items})
    if with_routers:
        routers = config.routers
        for i in range(0, len(routers), FRAME_ITEMS):
            items = [codec.dump_router(r) for r in routers[i : i + FRAME_ITEMS]]
            frames.append({"type": "routers", "version": number, "items": items})
        if config.middlewares:  # few, and they travel with the routers that name them
            items = [codec.dump_middleware(m) for m in config.middlewares]
            frames.append({"type": "middlewares", "version": number, "items": items})
    services = config.services
    for i in range(0, len(services), FRAME_ITEMS):
        items = [codec.dump_service(s) for s in services[i : i + FRAME_ITEMS]]
        frames.append({"type": "services", "version": number, "items": items})
    frames.append({"type": "commit", "version": number})
    return frames
