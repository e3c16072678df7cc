"""A data-plane worker process: `python -m passerelle.proxy.worker INIT_JSON`.

The control plane starts it with the listening sockets and one end of a socketpair already open
(their descriptors are in INIT_JSON). The worker serves the sockets, applies every configuration the
channel brings and answers `applied` or `rejected`, and never talks to anything else. It drains and
exits on a `drain` message, on SIGTERM, or when the channel closes (the control plane is gone).
SIGINT is ignored: a Ctrl-C reaches the control plane too, which drains the workers in order.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import socket
import sys
from typing import Any

from passerelle.memory import gc_paused
from passerelle.model import codec
from passerelle.observability.logging import configure
from passerelle.proxy.channel import Channel, Message
from passerelle.proxy.dataplane import Dataplane
from passerelle.proxy.options import EntryPointOptions, ForwardingOptions

log = logging.getLogger("passerelle.worker")


async def serve(init: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    entrypoints = [EntryPointOptions(**ep["options"]) for ep in init["entrypoints"]]
    sockets = {
        ep["options"]["name"]: [socket.socket(fileno=fd) for fd in ep["fds"]] for ep in init["entrypoints"]
    }
    dataplane = Dataplane(entrypoints, ForwardingOptions(**init["forwarding"]), loop)
    await dataplane.start(sockets=sockets)
    grace = float(init["grace"])
    done = asyncio.Event()

    def on_message(message: Message) -> None:
        nonlocal grace
        if message["type"] == "config":
            version = message["version"]
            try:
                with gc_paused():
                    dataplane.apply(codec.load(message["config"]))
            except Exception as e:  # a bad snapshot must not take the worker down: keep the last one
                log.exception("worker %d: configuration v%d rejected", init["index"], version)
                channel.send({"type": "rejected", "version": version, "error": str(e)})
            else:
                channel.send({"type": "applied", "version": version})
        elif message["type"] == "drain":
            grace = float(message.get("grace", grace))
            done.set()

    channel_socket = socket.socket(fileno=init["channel"])
    _, channel = await loop.connect_accepted_socket(lambda: Channel(on_message, done.set), channel_socket)
    loop.add_signal_handler(signal.SIGTERM, done.set)
    channel.send({"type": "ready"})
    await done.wait()
    await dataplane.stop(grace=grace)
    channel.close()


def main() -> None:
    import uvloop

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    init = json.loads(sys.argv[1])
    configure(init["log_level"])
    uvloop.run(serve(init))


if __name__ == "__main__":
    main()
