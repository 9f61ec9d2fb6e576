"""Refusing a second `serve` on a port another one already serves.

The gateways bind with SO_REUSEPORT so that `serve --workers N` can put N processes on one
port; the same option lets an unrelated second `serve` bind it silently and start a second
set of actors over the same inbox, or borrow actors that die with their owner. Before it
starts anything, a `serve` that is not such a worker binds the address once *without*
SO_REUSEPORT: the kernel refuses that while any process listens there, reuse-port or not.
"""

from __future__ import annotations

import errno
import socket


class PortTaken(RuntimeError):
    """Another process already listens on the address this `serve` was given."""


def refuse_if_served(host: str, port: int) -> None:
    """Raise PortTaken when something listens on host:port (port 0 is always free)."""
    if port == 0:
        return
    for family, kind, proto, _, address in socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    ):
        with socket.socket(family, kind, proto) as probe:
            # SO_REUSEADDR, as asyncio sets it: a port left in TIME_WAIT is not "served".
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                raise PortTaken(message(host, port)) from exc


def message(host: str, port: int) -> str:
    return (
        f"{host or '*'}:{port} is already served by another process. A second `serve` on "
        "the same address would run a second set of actors over the same inbox. "
        "Several gateways on one host: `wa-support serve --workers N`; gateways on "
        "several hosts: `wa-support serve --ray-address ADDR` on each host; or give this "
        "one another PORT."
    )
