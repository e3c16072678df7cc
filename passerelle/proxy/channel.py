"""The control plane <-> worker channel: length-prefixed JSON messages over a stream socket.

Each message is a 4-byte big-endian length and a JSON object with a `type`. A configuration version
travels as `begin` (version; `base`, the version it changes, or null for a whole version; whether
TLS state follows), then frames of at most FRAME_ITEMS items each, then `commit`: small frames, so a
worker decodes a version of 20,000 routers slice by slice between requests. A whole version is
`routers`, `middlewares` and `services` frames. A change set (model/delta.py) is `routers` and
`services` frames with the new and changed ones, `removed` (router and service names), and `hosts`
frames: [host, names of its routers in order] for each host it touches. The TLS state is left out
when it did not change; otherwise a `tls` frame (host options, client CAs) and `certificates` frames
of at most CERTIFICATE_ITEMS certificates with their keys (a few KiB each) travel too. Before any
version, `static` carries the static TLS state (control/distribute.py). `drain` asks the worker to
finish; a worker answers `ready` once, then `applied` or `rejected` for each version.
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Callable
from typing import Any

from passerelle.model import DynamicConfig, TlsConfig, codec
from passerelle.model.delta import Delta

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


def config_frames(number: int, config: DynamicConfig, *, with_tls: bool = True) -> list[Message]:
    """The frames that carry one whole configuration version."""
    frames = [_begin(number, None, with_tls), *_tls_frames(number, config.tls if with_tls else None)]
    frames += _items(number, "routers", [codec.dump_router(r) for r in config.routers])
    if config.middlewares:  # few, and they travel with the routers that name them
        items = [codec.dump_middleware(m) for m in config.middlewares]
        frames.append({"type": "middlewares", "version": number, "items": items})
    frames += _items(number, "services", [codec.dump_service(s) for s in config.services])
    frames.append({"type": "commit", "version": number})
    return frames


def delta_frames(number: int, base: int, delta: Delta, tls: TlsConfig | None) -> list[Message]:
    """The frames that carry version `number` as `delta` on version `base` (`tls` None: unchanged)."""
    frames = [_begin(number, base, tls is not None), *_tls_frames(number, tls)]
    frames += _items(number, "routers", [codec.dump_router(r) for r in delta.routers])
    frames += _items(number, "services", [codec.dump_service(s) for s in delta.services])
    removed = {"routers": list(delta.removed_routers), "services": list(delta.removed_services)}
    frames.append({"type": "removed", "version": number, **removed})
    frames += _items(number, "hosts", [[host, list(names)] for host, names in delta.hosts.items()])
    frames.append({"type": "commit", "version": number})
    return frames


def _begin(number: int, base: int | None, with_tls: bool) -> Message:
    return {"type": "begin", "version": number, "base": base, "tls": with_tls}


def _tls_frames(number: int, tls: TlsConfig | None) -> list[Message]:
    if tls is None:
        return []
    rest = codec.dump_tls(TlsConfig(hosts=tls.hosts, client_cas=tls.client_cas, options=tls.options))
    frames: list[Message] = [{"type": "tls", "version": number, "tls": rest}]
    for i in range(0, len(tls.certificates), CERTIFICATE_ITEMS):
        items = [
            codec.dump_certificate(c, with_keys=True) for c in tls.certificates[i : i + CERTIFICATE_ITEMS]
        ]
        frames.append({"type": "certificates", "version": number, "items": items})
    return frames


def _items(number: int, kind: str, items: list[Any]) -> list[Message]:
    return [
        {"type": kind, "version": number, "items": items[i : i + FRAME_ITEMS]}
        for i in range(0, len(items), FRAME_ITEMS)
    ]
