"""Binding entry point addresses: the control plane binds, workers serve what they inherit.

Each worker gets its own sockets, bound to the same address with SO_REUSEPORT, so the kernel spreads
new connections evenly across workers (one shared socket would wake every worker for each
connection and pile them onto whichever wins). The control plane keeps its copies open, so a
restarted worker takes over the same sockets and their backlog.
"""

from __future__ import annotations

import socket

from passerelle.proxy.options import EntryPointOptions


class ListenError(OSError):
    """An entry point could not bind its address; the message is for the operator."""


def bind(options: EntryPointOptions, *, port: int | None = None) -> list[socket.socket]:
    """Listening sockets for an entry point: one per address family for ":port", one otherwise.

    `port` overrides the configured one (used after binding port 0, so every worker's sockets share
    the port the first bind chose).
    """
    wanted = options.port if port is None else port
    try:
        infos = socket.getaddrinfo(
            options.host or None, wanted, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as e:
        raise ListenError(
            e.errno, f"cannot listen on {options.host}:{wanted} (entry point {options.name}): {e.strerror}"
        ) from e
    sockets: list[socket.socket] = []
    seen = set()
    try:
        for family, kind, proto, _, address in infos:
            if (family, address) in seen:
                continue
            seen.add((family, address))
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # the IPv4 socket serves IPv4
            sock.bind(address)
            sock.listen(2048)
            sock.set_inheritable(True)
            sock.setblocking(False)
    except OSError as e:
        for sock in sockets:
            sock.close()
        where = f"{options.host}:{wanted}" if options.host else f":{wanted}"
        raise ListenError(
            e.errno, f"cannot listen on {where} (entry point {options.name}): {e.strerror or e}"
        ) from e
    return sockets


def port_of(sockets: list[socket.socket]) -> int:
    return int(sockets[0].getsockname()[1])
